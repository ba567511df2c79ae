#pragma once
// What every CUDA op file shares: error checks, the backend's stream and
// library handles, device allocation and the upload of host inputs.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr::cuda {

// Throw std::runtime_error("<what>: <library message>") on failure.
void check(cudaError_t e, const char* what);
void check(cublasStatus_t s, const char* what);
void check(cudnnStatus_t s, const char* what);
// Throw std::runtime_error("<op>: <message>") unless ok (argument checks).
void require(bool ok, const char* op, const std::string& message);
// The last kernel launch's error, if any.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

// Launch geometry for n independent elements.
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535LL * 1024 ? 65535LL * 1024 : b));
}

// Inside a kernel launched with blocks_for(n): every index i in [0, n), each
// thread striding by the whole grid (the grid may be capped below n).
#define SDVSR_GRID_STRIDE(i, n)                                                  \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{blockDim.x} * gridDim.x)

// A cached algorithm choice for one convolution shape (cuda_conv.cpp).
struct ConvAlgo {
  cudnnConvolutionFwdAlgo_t algo;
  size_t workspace_bytes;
};

struct Context {
  explicit Context(int device);
  ~Context();

  int device;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;

  // A new device tensor (contents undefined), memory from the stream-ordered
  // pool (cudaMallocAsync; freed memory stays in the pool for reuse).
  Tensor empty(const Shape& shape);
  // Scratch device memory freed when the returned owner dies (stream-ordered).
  std::shared_ptr<void> scratch(size_t bytes);
  // x readable on the device: kCuda tensors as they are; host tensors uploaded,
  // once per storage for borrowed (read-only, e.g. mapped weights) ones.
  Tensor input(const Tensor& x);
  // Host copy (synchronises the stream).
  Tensor download(const Tensor& x);

  std::mutex conv_mutex;
  std::map<std::vector<int64_t>, ConvAlgo> conv_algos;

 private:
  Tensor upload(const Tensor& x);
  struct Upload {
    std::weak_ptr<const void> owner;
    int64_t numel;
    Tensor device;
  };
  std::mutex upload_mutex_;
  std::unordered_map<const void*, std::vector<Upload>> uploads_;
};

// Kernel launchers other files share (defined in cuda_elementwise.cu).
// y[r, j] += bias[j] for a row-major [rows, cols] y (linear's bias, added after the product).
void add_row_bias(Context& c, float* y, const float* bias, int64_t rows, int64_t cols);

// Device pointers of tensors already on the device (Context::input / empty).
inline const float* dptr(const Tensor& t) { return t.raw_data(); }
inline float* dptr_mut(const Tensor& t) { return t.raw_data(); }

}  // namespace sdvsr::cuda
