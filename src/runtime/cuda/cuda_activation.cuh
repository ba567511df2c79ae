#pragma once
// The activations on the device, with cpu_elementwise.cpp's formulas: for the
// activation kernels and the kernels that end in one.
#include <cmath>

#include "runtime/backend.h"
#include "runtime/cuda/cuda_context.h"  // the device's math functions (isnan, erff, ...)

namespace sdvsr::cuda {

__device__ inline float apply_activation(float v, Activation a) {
  switch (a) {
    case Activation::kNone: return v;
    case Activation::kSiLU: return v / (1.f + expf(-v));
    case Activation::kGELU: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Activation::kGELUTanh: {
      const float inner = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.f + tanhf(inner));
    }
    case Activation::kQuickGELU: return v / (1.f + expf(-1.702f * v));
    case Activation::kReLU: return v > 0.f ? v : (isnan(v) ? v : 0.f);
    case Activation::kTanh: return tanhf(v);
    case Activation::kSigmoid: return 1.f / (1.f + expf(-v));
  }
  return v;
}

}  // namespace sdvsr::cuda
