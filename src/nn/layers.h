#pragma once
// The parameterised primitives every diffusers block is built from: Conv2d,
// Linear, GroupNorm, LayerNorm. Each fetches its tensors by state-dict key with
// the shape PyTorch would give it, and runs through a Backend.
#include <string>

#include "runtime/backend.h"
#include "weights/weight_store.h"

namespace sdvsr::nn {

// diffusers' get_activation names ("silu"/"swish", "gelu", "relu", ...).
// `what` names the config file and key for the error message.
Activation activation_from_name(const std::string& name, const std::string& what);

class Conv2d {
 public:
  Conv2d() = default;
  // Square kernel, zero padding `pad`, weight [out, in, k, k], bias [out] when `bias`.
  Conv2d(const WeightScope& w, Backend& be, int64_t in, int64_t out, int kernel, int stride = 1,
         int pad = 0, bool bias = true);
  Tensor operator()(const Tensor& x) const;
  // residual + conv(x) in one op (Backend::conv2d_add); residual has the output's shape.
  Tensor forward_add(const Tensor& x, const Tensor& residual) const;
  // conv(norm(x)) (+ channel_add [N, out], + residual, when given) in one op
  // (Backend::group_norm_act_conv2d), `norm` from GroupNorm::with_act.
  Tensor forward_normed(const GroupNormAct& norm, const Tensor& x,
                        const Tensor* residual = nullptr,
                        const Tensor* channel_add = nullptr) const;
  // conv(norm(h)) + shortcut(skip_input) in one op
  // (Backend::group_norm_act_conv2d_shortcut): a ResNet block's second half
  // when its channel count changes.
  Tensor forward_normed_shortcut(const GroupNormAct& norm, const Tensor& h,
                                 const Conv2d& shortcut, const Tensor& skip_input) const;
  int64_t out_channels() const { return weight_.size(0); }
  // This convolution as a backend's ConvStage (it refers to this layer's
  // weights: keep the layer alive while using it).
  ConvStage stage(const Tensor* channel_add = nullptr) const;

 private:
  Backend* be_ = nullptr;
  Tensor weight_, bias_;
  bool has_bias_ = false;
  Conv2dParams params_;
};

class Linear {
 public:
  Linear() = default;
  Linear(const WeightScope& w, Backend& be, int64_t in, int64_t out, bool bias = true);
  Tensor operator()(const Tensor& x) const;
  // hidden * gelu(gate) of this layer's two output halves, out = 2 * inner
  // (Backend::linear_geglu).
  Tensor forward_geglu(const Tensor& x) const;
  // residual + this(x) in one op (Backend::linear_add).
  Tensor forward_add(const Tensor& x, const Tensor& residual) const;

 private:
  Backend* be_ = nullptr;
  Tensor weight_, bias_;
  bool has_bias_ = false;
};

class GroupNorm {
 public:
  GroupNorm() = default;
  GroupNorm(const WeightScope& w, Backend& be, int64_t groups, int64_t channels, float eps);
  Tensor operator()(const Tensor& x) const;
  // activation(norm(x), a) in one op (Backend::group_norm_act).
  Tensor forward_act(const Tensor& x, Activation a) const;
  // This norm followed by `a`, as the first half of Conv2d::forward_normed
  // (it refers to this layer's weights: keep the layer alive while using it).
  GroupNormAct with_act(Activation a) const;

 private:
  Backend* be_ = nullptr;
  Tensor gamma_, beta_;
  int groups_ = 0;
  float eps_ = 0;
};

class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(const WeightScope& w, Backend& be, int64_t dim, float eps);
  Tensor operator()(const Tensor& x) const;

 private:
  Backend* be_ = nullptr;
  Tensor gamma_, beta_;
  float eps_ = 0;
};

}  // namespace sdvsr::nn
