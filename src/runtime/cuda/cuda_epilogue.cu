// The pointwise tail of a convolution or a matrix product in one pass over its
// output: bias, per-image channel values (a ResNet's time embedding), a skip
// connection and the activation, in the order the CPU's composition of
// separate ops adds them; from a float32 output or a 16-bit one (widened first).
// And the feed-forward's GEGLU over a product of both halves at once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>

#include "runtime/cuda/cuda_16bit.cuh"
#include "runtime/cuda/cuda_activation.cuh"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr::cuda {
namespace {

template <typename T>
__global__ void epilogue_kernel(const T* src, float* y, int64_t total, int64_t inner,
                                int64_t channels, Epilogue e) {
  SDVSR_GRID_STRIDE(i, total) {
    float v = widen(src[i]);
    const int64_t ch = (i / inner) % channels;
    if (e.bias) v = v + e.bias[ch];
    if (e.channel_add) v = v + e.channel_add[i / (inner * channels) * channels + ch];
    if (e.residual) v = e.residual[i] + v;
    y[i] = apply_activation(v, e.act);
  }
}

// y [rows, inner] = (p[r, j] + b[j]) * gelu(p[r, inner + j] + b[inner + j]),
// p [rows, 2 * inner]: mul(hidden, activation(gate, kGELU)) with each half's bias.
__global__ void geglu_kernel(const float* p, const float* bias, float* y, int64_t total,
                             int64_t inner) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t r = i / inner, j = i % inner;
    float hidden = p[r * 2 * inner + j], gate = p[r * 2 * inner + inner + j];
    if (bias) {
      hidden = hidden + bias[j];
      gate = gate + bias[inner + j];
    }
    y[i] = hidden * apply_activation(gate, Activation::kGELU);
  }
}

}  // namespace

bool Epilogue::any() const {
  return bias || channel_add || residual || act != Activation::kNone;
}

void apply_epilogue(Context& c, const float* src, float* y, int64_t total, int64_t inner,
                    int64_t channels, const Epilogue& e) {
  if (total <= 0 || (src == y && !e.any())) return;
  SDVSR_LAUNCH(epilogue_kernel<float>, blocks_for(total), kThreads, c.stream)(
      src, y, total, inner, channels, e);
  check_launch("epilogue");
}

void widen_epilogue(Context& c, const void* y16, float* y, int64_t total, int64_t inner,
                    int64_t channels, const Epilogue& e, ComputeDtype dtype) {
  if (dtype == ComputeDtype::kFloat32)
    throw std::logic_error("widen_epilogue: called for a float32 backend");
  if (total <= 0) return;
  if (dtype == ComputeDtype::kFloat16)
    SDVSR_LAUNCH(epilogue_kernel<__half>, blocks_for(total), kThreads, c.stream)(
        static_cast<const __half*>(y16), y, total, inner, channels, e);
  else
    SDVSR_LAUNCH(epilogue_kernel<__nv_bfloat16>, blocks_for(total), kThreads, c.stream)(
        static_cast<const __nv_bfloat16*>(y16), y, total, inner, channels, e);
  check_launch("widen_epilogue");
}

void geglu_rows(Context& c, const float* product, const float* bias, float* y, int64_t rows,
                int64_t inner) {
  const int64_t total = rows * inner;
  if (total <= 0) return;
  SDVSR_LAUNCH(geglu_kernel, blocks_for(total), kThreads, c.stream)(product, bias, y, total,
                                                                     inner);
  check_launch("geglu");
}

}  // namespace sdvsr::cuda
