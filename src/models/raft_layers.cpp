#include "models/raft_layers.h"

#include <stdexcept>

namespace sdvsr::raft {

namespace {
constexpr float kNormEps = 1e-5f;  // PyTorch's default for BatchNorm2d and InstanceNorm2d
}

Conv Conv::load(const WeightScope& s, int64_t in, int64_t out, int kh, int kw, int stride,
                int pad_h, int pad_w) {
  Conv c;
  c.weight = s.get("weight", {out, in, kh, kw});
  c.bias = s.get("bias", {out});
  c.params.stride_h = c.params.stride_w = stride;
  c.params.pad_h = pad_h;
  c.params.pad_w = pad_w;
  return c;
}

Tensor Conv::operator()(Backend& be, const Tensor& x) const {
  return be.conv2d(x, weight, &bias, params);
}

Norm Norm::load(const WeightScope& s, NormKind kind, int64_t channels) {
  Norm n;
  n.kind = kind;
  if (kind == NormKind::kBatch) {
    n.gamma = s.get("weight", {channels});
    n.beta = s.get("bias", {channels});
    n.running_mean = s.get("running_mean", {channels});
    n.running_var = s.get("running_var", {channels});
    // The training step counter is irrelevant in eval mode (absent after some conversions).
    if (s.has("num_batches_tracked")) s.store().ignore(s.key("num_batches_tracked"));
  }
  // InstanceNorm2d(affine=False, track_running_stats=False) owns no tensors.
  return n;
}

Tensor Norm::operator()(Backend& be, const Tensor& x) const {
  switch (kind) {
    case NormKind::kInstance:
      return be.instance_norm(x, kNormEps);
    case NormKind::kBatch:
      return be.batch_norm(x, running_mean, running_var, &gamma, &beta, kNormEps);
    case NormKind::kNone:
      break;
  }
  return x;
}

ConvNormAct ConvNormAct::load(const WeightScope& s, NormKind kind, int64_t in, int64_t out,
                              int k, int stride, bool relu) {
  ConvNormAct c;
  c.conv = Conv::load_same(s.sub(0), in, out, k, stride);
  if (kind != NormKind::kNone) c.norm = Norm::load(s.sub(1), kind, out);
  c.relu = relu;
  return c;
}

Tensor ConvNormAct::operator()(Backend& be, const Tensor& x) const {
  Tensor y = norm(be, conv(be, x));
  return relu ? be.activation(y, Activation::kReLU) : y;
}

ConvStage ConvNormAct::stage() const {
  if (norm.kind != NormKind::kNone)
    throw std::logic_error("ConvNormAct::stage: a norm between convolutions cannot be stacked");
  return conv.stage(relu ? Activation::kReLU : Activation::kNone);
}

}  // namespace sdvsr::raft
