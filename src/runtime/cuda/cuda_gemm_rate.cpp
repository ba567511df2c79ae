// cuda_gemm_tflops: the GEMM reference rate of a device (cuda_gemm_rate.h).
#include "runtime/cuda/cuda_gemm_rate.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

// What one measurement holds, released on every path out (errors included).
struct GemmResources {
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  void* a = nullptr;
  void* b = nullptr;
  void* c = nullptr;
  ~GemmResources() {
    if (stream) cudaStreamSynchronize(stream);
    if (handle) cublasDestroy(handle);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (a) cudaFree(a);
    if (b) cudaFree(b);
    if (c) cudaFree(c);
    if (stream) cudaStreamDestroy(stream);
  }
};

// Operand values k/64 for k in [-64, 64]: exact in float16 and bfloat16, so
// both encodings below are exact bit copies (no rounding to decide).
float operand_value(int64_t i) {
  const uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  return static_cast<float>(static_cast<int>((h >> 40) % 129) - 64) / 64.f;
}

uint32_t float_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

// bfloat16: the upper half of the float32 bits (exact for operand_value).
uint16_t to_bfloat16(float v) { return static_cast<uint16_t>(float_bits(v) >> 16); }

// float16 of a float32 that is zero or a normal float16 with at most 10
// mantissa bits (true of operand_value).
uint16_t to_float16(float v) {
  const uint32_t u = float_bits(v);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) == 0) return sign;
  const int exponent = static_cast<int>((u >> 23) & 0xffu) - 127 + 15;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((u >> 13) & 0x3ffu));
}

}  // namespace

double cuda_gemm_tflops(int device, ComputeDtype dtype, int64_t n) {
  using cuda::check;
  if (n <= 0 || n > 32768)
    throw std::runtime_error("cuda_gemm_tflops: size " + std::to_string(n) + " is not in [1, 32768]");
  check(cudaSetDevice(device), "cuda_gemm_tflops: cudaSetDevice");
  const bool half = dtype != ComputeDtype::kFloat32;
  const size_t elements = static_cast<size_t>(n) * static_cast<size_t>(n);
  const size_t operand_bytes = elements * (half ? 2 : 4);

  GemmResources r;
  check(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking), "cuda_gemm_tflops: cudaStreamCreate");
  check(cublasCreate(&r.handle), "cuda_gemm_tflops: cublasCreate");
  check(cublasSetStream(r.handle, r.stream), "cuda_gemm_tflops: cublasSetStream");
  // float32 as the backend computes it: no TF32 tensor-core rounding.
  check(cublasSetMathMode(r.handle, half ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH),
        "cuda_gemm_tflops: cublasSetMathMode");
  check(cudaEventCreate(&r.start), "cuda_gemm_tflops: cudaEventCreate");
  check(cudaEventCreate(&r.stop), "cuda_gemm_tflops: cudaEventCreate");
  check(cudaMalloc(&r.a, operand_bytes), "cuda_gemm_tflops: cudaMalloc A");
  check(cudaMalloc(&r.b, operand_bytes), "cuda_gemm_tflops: cudaMalloc B");
  check(cudaMalloc(&r.c, elements * sizeof(float)), "cuda_gemm_tflops: cudaMalloc C");

  // The same values in A and B (the rate does not depend on them being different).
  if (half) {
    std::vector<uint16_t> host(elements);
    for (size_t i = 0; i < elements; ++i) {
      const float v = operand_value(static_cast<int64_t>(i));
      host[i] = dtype == ComputeDtype::kBFloat16 ? to_bfloat16(v) : to_float16(v);
    }
    check(cudaMemcpy(r.a, host.data(), operand_bytes, cudaMemcpyHostToDevice), "cuda_gemm_tflops: upload A");
    check(cudaMemcpy(r.b, host.data(), operand_bytes, cudaMemcpyHostToDevice), "cuda_gemm_tflops: upload B");
  } else {
    std::vector<float> host(elements);
    for (size_t i = 0; i < elements; ++i) host[i] = operand_value(static_cast<int64_t>(i));
    check(cudaMemcpy(r.a, host.data(), operand_bytes, cudaMemcpyHostToDevice), "cuda_gemm_tflops: upload A");
    check(cudaMemcpy(r.b, host.data(), operand_bytes, cudaMemcpyHostToDevice), "cuda_gemm_tflops: upload B");
  }

  const int dim = static_cast<int>(n);
  const float one = 1.f, zero = 0.f;
  auto gemm = [&] {
    if (!half) {
      check(cublasSgemm(r.handle, CUBLAS_OP_N, CUBLAS_OP_N, dim, dim, dim, &one,
                        static_cast<const float*>(r.a), dim, static_cast<const float*>(r.b), dim,
                        &zero, static_cast<float*>(r.c), dim),
            "cuda_gemm_tflops: cublasSgemm");
      return;
    }
    const cudaDataType operand = dtype == ComputeDtype::kBFloat16 ? CUDA_R_16BF : CUDA_R_16F;
    check(cublasGemmEx(r.handle, CUBLAS_OP_N, CUBLAS_OP_N, dim, dim, dim, &one, r.a, operand, dim,
                       r.b, operand, dim, &zero, r.c, CUDA_R_32F, dim, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT),
          "cuda_gemm_tflops: cublasGemmEx");
  };

  for (int i = 0; i < 2; ++i) gemm();
  check(cudaStreamSynchronize(r.stream), "cuda_gemm_tflops: warm-up");
  std::vector<float> ms;
  for (int i = 0; i < 7; ++i) {
    check(cudaEventRecord(r.start, r.stream), "cuda_gemm_tflops: cudaEventRecord");
    gemm();
    check(cudaEventRecord(r.stop, r.stream), "cuda_gemm_tflops: cudaEventRecord");
    check(cudaEventSynchronize(r.stop), "cuda_gemm_tflops: cudaEventSynchronize");
    float t = 0;
    check(cudaEventElapsedTime(&t, r.start, r.stop), "cuda_gemm_tflops: cudaEventElapsedTime");
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double median_ms = std::max(static_cast<double>(ms[ms.size() / 2]), 1e-6);
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  return flops / (median_ms * 1e-3) / 1e12;
}

void cuda_synchronize(int device) {
  cuda::check(cudaSetDevice(device), "cuda_synchronize: cudaSetDevice");
  cuda::check(cudaDeviceSynchronize(), "cuda_synchronize: cudaDeviceSynchronize");
}

}  // namespace sdvsr
