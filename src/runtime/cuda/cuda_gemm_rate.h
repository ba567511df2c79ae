#pragma once
// The matrix-product rate of a CUDA device, the benchmark's reference for
// peak_ratio: a cuBLAS GEMM of n x n matrices in the backend's precision
// (float32: cublasSgemm in pedantic math, as the backend runs it; float16 /
// bfloat16: cublasGemmEx with 16-bit operands, float32 output and float32
// accumulation). This header has no CUDA includes and compiles in every build;
// without the CUDA backend its functions throw one line.
#include <cstdint>
#include <stdexcept>

#include "runtime/backend.h"

namespace sdvsr {

#ifdef SDVSR_HAVE_CUDA
// TFLOP/s (2 n^3 per product) on `device`: two warm-up products, then the
// median of seven timed with CUDA events. Uses its own stream, handle and
// memory (cudaMalloc, outside the backend's pool, freed before returning).
double cuda_gemm_tflops(int device, ComputeDtype dtype, int64_t n);
// Waits until all work queued on `device` (every stream) has finished: the
// benchmark stops its clock only after this.
void cuda_synchronize(int device);
#else
[[noreturn]] inline double cuda_gemm_tflops(int, ComputeDtype, int64_t) {
  throw std::runtime_error("cuda_gemm_tflops: this binary was built without CUDA");
}
[[noreturn]] inline void cuda_synchronize(int) {
  throw std::runtime_error("cuda_synchronize: this binary was built without CUDA");
}
#endif

}  // namespace sdvsr
