#pragma once
// RAFT's small building blocks: a biased Conv2d, its optional norm (instance
// norm in the feature encoder, eval-mode batch norm in the context encoder),
// and torchvision's Conv2dNormActivation (conv ".0", norm ".1", optional ReLU).
#include <optional>

#include "runtime/backend.h"
#include "weights/weight_store.h"

namespace sdvsr::raft {

// nn.Conv2d(in, out, (kh, kw), stride, padding) with a bias.
struct Conv {
  Tensor weight, bias;
  Conv2dParams params;
  static Conv load(const WeightScope& s, int64_t in, int64_t out, int kh, int kw, int stride,
                   int pad_h, int pad_w);
  // Square kernel with "same" padding (k-1)/2, as Conv2dNormActivation pads.
  static Conv load_same(const WeightScope& s, int64_t in, int64_t out, int k, int stride = 1) {
    return load(s, in, out, k, k, stride, (k - 1) / 2, (k - 1) / 2);
  }
  Tensor operator()(Backend& be, const Tensor& x) const;
  // This conv, then `act`, as one stage of Backend::conv2d_stack.
  ConvStage stage(Activation act = Activation::kNone) const {
    return ConvStage{&weight, &bias, params, act};
  }
};

enum class NormKind { kInstance, kBatch, kNone };

struct Norm {
  NormKind kind = NormKind::kNone;
  Tensor gamma, beta, running_mean, running_var;  // batch norm only
  static Norm load(const WeightScope& s, NormKind kind, int64_t channels);
  Tensor operator()(Backend& be, const Tensor& x) const;
};

// torchvision.ops.Conv2dNormActivation with a biased conv.
struct ConvNormAct {
  Conv conv;
  Norm norm;
  bool relu = true;
  static ConvNormAct load(const WeightScope& s, NormKind kind, int64_t in, int64_t out, int k,
                          int stride, bool relu);
  Tensor operator()(Backend& be, const Tensor& x) const;
  // As one stage of Backend::conv2d_stack (only without a norm).
  ConvStage stage() const;
};

}  // namespace sdvsr::raft
