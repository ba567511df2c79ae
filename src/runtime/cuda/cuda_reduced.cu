// The float16 / bfloat16 operands of a reduced-precision backend: rounding
// float32 tensors to 16 bits (round to nearest even, like PyTorch's .half() and
// .bfloat16()) and widening a 16-bit convolution output back to float32 with
// the bias added in float32. The products themselves accumulate in float32
// (cuda_matmul.cpp, cuda_conv.cpp).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>

#include "runtime/cuda/cuda_context.h"

namespace sdvsr::cuda {
namespace {

__global__ void to_half_kernel(const float* x, __half* y, int64_t n) {
  SDVSR_GRID_STRIDE(i, n) y[i] = __float2half_rn(x[i]);
}
__global__ void to_bfloat16_kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  SDVSR_GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}

__device__ inline float widen(__half v) { return __half2float(v); }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__global__ void widen_bias_kernel(const T* y16, float* y, const float* bias, int64_t n, int64_t hw,
                                  int64_t channels) {
  SDVSR_GRID_STRIDE(i, n) {
    const float v = widen(y16[i]);
    y[i] = bias ? v + bias[(i / hw) % channels] : v;
  }
}

void require_reduced(ComputeDtype dtype, const char* what) {
  if (dtype == ComputeDtype::kFloat32)
    throw std::logic_error(std::string(what) + ": called for a float32 backend");
}

}  // namespace

void round_to_reduced(Context& c, const float* x, void* y, int64_t n, ComputeDtype dtype) {
  require_reduced(dtype, "round_to_reduced");
  if (n <= 0) return;
  if (dtype == ComputeDtype::kFloat16)
    SDVSR_LAUNCH(to_half_kernel, blocks_for(n), kThreads, c.stream)(
        x, static_cast<__half*>(y), n);
  else
    SDVSR_LAUNCH(to_bfloat16_kernel, blocks_for(n), kThreads, c.stream)(
        x, static_cast<__nv_bfloat16*>(y), n);
  check_launch("round_to_reduced");
}

void widen_add_channel_bias(Context& c, const void* y16, float* y, const float* bias, int64_t n,
                            int64_t hw, int64_t channels, ComputeDtype dtype) {
  require_reduced(dtype, "widen_add_channel_bias");
  if (n <= 0) return;
  if (dtype == ComputeDtype::kFloat16)
    SDVSR_LAUNCH(widen_bias_kernel<__half>, blocks_for(n), kThreads, c.stream)(
        static_cast<const __half*>(y16), y, bias, n, hw, channels);
  else
    SDVSR_LAUNCH(widen_bias_kernel<__nv_bfloat16>, blocks_for(n), kThreads, c.stream)(
        static_cast<const __nv_bfloat16*>(y16), y, bias, n, hw, channels);
  check_launch("widen_add_channel_bias");
}

cudaDataType_t cublas_type(ComputeDtype dtype) {
  require_reduced(dtype, "cublas_type");
  return dtype == ComputeDtype::kFloat16 ? CUDA_R_16F : CUDA_R_16BF;
}

}  // namespace sdvsr::cuda
