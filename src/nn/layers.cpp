#include "nn/layers.h"

#include <stdexcept>

namespace sdvsr::nn {

Activation activation_from_name(const std::string& name, const std::string& what) {
  if (name == "silu" || name == "swish") return Activation::kSiLU;
  if (name == "gelu") return Activation::kGELU;
  if (name == "relu") return Activation::kReLU;
  throw std::runtime_error(what + ": activation '" + name +
                           "' is not supported (silu, swish, gelu, relu)");
}

Conv2d::Conv2d(const WeightScope& w, Backend& be, int64_t in, int64_t out, int kernel, int stride,
               int pad, bool bias)
    : be_(&be), has_bias_(bias) {
  weight_ = w.get("weight", {out, in, kernel, kernel});
  if (bias) bias_ = w.get("bias", {out});
  params_.stride_h = params_.stride_w = stride;
  params_.pad_h = params_.pad_w = pad;
}

Tensor Conv2d::operator()(const Tensor& x) const {
  return be_->conv2d(x, weight_, has_bias_ ? &bias_ : nullptr, params_);
}

Tensor Conv2d::forward_add(const Tensor& x, const Tensor& residual) const {
  return be_->conv2d_add(x, weight_, has_bias_ ? &bias_ : nullptr, params_, residual);
}

ConvStage Conv2d::stage(const Tensor* channel_add) const {
  return ConvStage{&weight_, has_bias_ ? &bias_ : nullptr, params_, Activation::kNone,
                   channel_add};
}

Tensor Conv2d::forward_normed(const GroupNormAct& norm, const Tensor& x, const Tensor* residual,
                              const Tensor* channel_add) const {
  return be_->group_norm_act_conv2d(x, norm, stage(channel_add), residual);
}

Tensor Conv2d::forward_normed_shortcut(const GroupNormAct& norm, const Tensor& h,
                                       const Conv2d& shortcut, const Tensor& skip_input) const {
  return be_->group_norm_act_conv2d_shortcut(h, norm, stage(), skip_input, shortcut.stage());
}

Linear::Linear(const WeightScope& w, Backend& be, int64_t in, int64_t out, bool bias)
    : be_(&be), has_bias_(bias) {
  weight_ = w.get("weight", {out, in});
  if (bias) bias_ = w.get("bias", {out});
}

Tensor Linear::operator()(const Tensor& x) const {
  return be_->linear(x, weight_, has_bias_ ? &bias_ : nullptr);
}

Tensor Linear::forward_geglu(const Tensor& x) const {
  return be_->linear_geglu(x, weight_, has_bias_ ? &bias_ : nullptr);
}

Tensor Linear::forward_add(const Tensor& x, const Tensor& residual) const {
  return be_->linear_add(x, weight_, has_bias_ ? &bias_ : nullptr, residual);
}

GroupNorm::GroupNorm(const WeightScope& w, Backend& be, int64_t groups, int64_t channels, float eps)
    : be_(&be), groups_(static_cast<int>(groups)), eps_(eps) {
  if (groups <= 0 || channels % groups != 0)
    throw std::runtime_error(w.store().source() + ": " + w.key("weight") + ": GroupNorm of " +
                             std::to_string(channels) + " channels cannot use " +
                             std::to_string(groups) + " groups (norm_num_groups in its config)");
  gamma_ = w.get("weight", {channels});
  beta_ = w.get("bias", {channels});
}

Tensor GroupNorm::operator()(const Tensor& x) const {
  return be_->group_norm(x, groups_, &gamma_, &beta_, eps_);
}

Tensor GroupNorm::forward_act(const Tensor& x, Activation a) const {
  return be_->group_norm_act(x, groups_, &gamma_, &beta_, eps_, a);
}

GroupNormAct GroupNorm::with_act(Activation a) const {
  return GroupNormAct{groups_, &gamma_, &beta_, eps_, a};
}

LayerNorm::LayerNorm(const WeightScope& w, Backend& be, int64_t dim, float eps)
    : be_(&be), eps_(eps) {
  gamma_ = w.get("weight", {dim});
  beta_ = w.get("bias", {dim});
}

Tensor LayerNorm::operator()(const Tensor& x) const {
  return be_->layer_norm(x, &gamma_, &beta_, eps_);
}

}  // namespace sdvsr::nn
