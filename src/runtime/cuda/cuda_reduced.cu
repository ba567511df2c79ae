// The float16 / bfloat16 operands of a reduced-precision backend: rounding
// float32 tensors to 16 bits (round to nearest even, like PyTorch's .half() and
// .bfloat16()). The products themselves accumulate in float32 (cuda_matmul.cpp,
// cuda_conv.cpp); a 16-bit convolution output is widened by its epilogue
// (cuda_epilogue.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>

#include "runtime/cuda/cuda_16bit.cuh"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr::cuda {
namespace {

template <typename T>
__global__ void to_reduced_kernel(const float* x, T* y, int64_t n) {
  SDVSR_GRID_STRIDE(i, n) y[i] = narrow<T>(x[i]);
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
    SDVSR_LAUNCH(to_reduced_kernel<__half>, blocks_for(n), kThreads, c.stream)(
        x, static_cast<__half*>(y), n);
  else
    SDVSR_LAUNCH(to_reduced_kernel<__nv_bfloat16>, blocks_for(n), kThreads, c.stream)(
        x, static_cast<__nv_bfloat16*>(y), n);
  check_launch("round_to_reduced");
}

cudaDataType_t cublas_type(ComputeDtype dtype) {
  require_reduced(dtype, "cublas_type");
  return dtype == ComputeDtype::kFloat16 ? CUDA_R_16F : CUDA_R_16BF;
}

}  // namespace sdvsr::cuda
