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

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace sdvsr::cuda {

// Throw std::runtime_error("<what>: <library message>") on failure.
void check(cudaError_t e, const char* what);
void check(cublasStatus_t s, const char* what);
void check(cudnnStatus_t s, const char* what);
// Throw std::runtime_error("<op>: <message>") unless ok (argument checks).
void require(bool ok, const char* op, const std::string& message);
// The device's default stream-ordered pool, which every backend of the device shares.
cudaMemPool_t device_pool(int device);
// The last kernel launch's error, if any.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

// Launch geometry for n independent elements.
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535LL * 1024 ? 65535LL * 1024 : b));
}

// A kernel launch: SDVSR_LAUNCH(kernel, grid, block, stream)(arguments...),
// a template kernel named with its arguments (attention_kernel<float>). The
// tests' CUDA emulator (tests/cuda_emulator/) runs the same source on the
// host with a launch of its own.
#ifndef SDVSR_LAUNCH
#define SDVSR_LAUNCH(kernel, grid, block, stream) kernel<<<(grid), (block), 0, (stream)>>>
#endif

// Inside a kernel launched with blocks_for(n): every index i in [0, n), each
// thread striding by the whole grid (the grid may be capped below n).
#define SDVSR_GRID_STRIDE(i, n)                                                  \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{blockDim.x} * gridDim.x)

// A cached algorithm choice for one convolution shape (cuda_conv.cpp).
struct ConvAlgo {
  cudnnConvolutionFwdAlgo_t algo;
  size_t workspace_bytes;
  // The math type the algorithm was chosen with (reduced-precision path only;
  // the float32 path keeps its descriptor at CUDNN_FMA_MATH).
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

// Device memory holding 16-bit values (float16 or bfloat16), freed when the
// last owner dies (stream-ordered).
using Reduced = std::shared_ptr<void>;

struct Context {
  // dtype: the precision of the owning backend's matrix products; float16 and
  // bfloat16 contexts allow tensor-op math in cuBLAS, float32 ones stay pedantic.
  explicit Context(int device, ComputeDtype dtype = ComputeDtype::kFloat32);
  ~Context();

  int device;
  ComputeDtype dtype;
  int compute_major = 0;  // the device's compute capability (8: tensor-core mma.sync)
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;

  // A new device tensor (contents undefined), memory from the stream-ordered
  // pool (cudaMallocAsync; freed memory stays in the pool for reuse).
  Tensor empty(const Shape& shape);
  // Scratch device memory freed when the returned owner dies (stream-ordered).
  std::shared_ptr<void> scratch(size_t bytes);
  // x readable on the device: kCuda tensors as they are; host tensors uploaded,
  // once per storage for read-only ones (borrowed or frozen: model weights,
  // whether mapped from a file or converted at load).
  Tensor input(const Tensor& x);
  // Read-only host tensors uploaded so far (cache misses of input()).
  int64_t weight_uploads() {
    std::lock_guard<std::mutex> lock(upload_mutex_);
    return weight_uploads_;
  }
  // Host copy (synchronises the stream).
  Tensor download(const Tensor& x);
  // Throws "<what>: needs the host while a CUDA graph is being recorded" when
  // this context's stream is capturing: a copy from pageable memory or a
  // synchronisation would end the capture with a less helpful error, and host
  // memory read at replay would be stale.
  void require_not_recording(const char* what);

  // Resampling taps (source indices, weights) on the device, uploaded once per
  // key and kept: the U-Net's upsamplers run every step at the same sizes, and
  // a recording cannot upload them.
  std::shared_ptr<void> device_table(const std::vector<int64_t>& key, const void* host,
                                     size_t bytes);
  // x's values rounded to this context's 16-bit dtype (round to nearest even),
  // on the device. Borrowed host tensors (mapped weights) are converted once
  // and cached by storage; device tensors too when `weight` (an operand passed
  // again and again: weights the caller moved to the device). Anything else is
  // converted per call into scratch memory. Requires dtype != kFloat32.
  Reduced reduced(const Tensor& x, bool weight);
  // 16-bit weight copies made so far (cache misses of reduced()).
  int64_t reduced_copies_made() {
    std::lock_guard<std::mutex> lock(reduced_mutex_);
    return reduced_copies_made_;
  }

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
  int64_t weight_uploads_ = 0;

  // 16-bit copies of weights, keyed by (storage address, device) and checked
  // by owner and element count like the uploads.
  struct ReducedCopy {
    std::weak_ptr<const void> owner;
    int64_t numel;
    Reduced values;
  };
  std::mutex reduced_mutex_;
  std::map<std::pair<const void*, Device>, std::vector<ReducedCopy>> reduced_copies_;
  int64_t reduced_copies_made_ = 0;

  std::mutex table_mutex_;
  std::map<std::vector<int64_t>, std::shared_ptr<void>> tables_;
};

// What follows a product in one pass (cuda_epilogue.cu), in the order the
// CPU's separate ops take: v = y + bias[ch]; v = v + channel_add[image, ch];
// v = residual + v; act(v). For y [images, channels, inner]: an NCHW
// convolution output has inner = H*W; a row-major [rows, cols] product has
// images = rows, channels = cols, inner = 1. Null pointers are left out.
struct Epilogue {
  const float* bias = nullptr;         // [channels]
  const float* channel_add = nullptr;  // [images, channels]
  const float* residual = nullptr;     // y's shape
  Activation act = Activation::kNone;
  bool any() const;
};
// y = epilogue(src) over `total` floats (src may be y).
void apply_epilogue(Context& c, const float* src, float* y, int64_t total, int64_t inner,
                    int64_t channels, const Epilogue& e);
// y = epilogue(float(y16)) for a product computed in the 16-bit dtype.
void widen_epilogue(Context& c, const void* y16, float* y, int64_t total, int64_t inner,
                    int64_t channels, const Epilogue& e, ComputeDtype dtype);
// y [rows, inner] = geglu of a product [rows, 2 * inner] of both halves, with
// the bias [2 * inner] (may be null) added to each half first.
void geglu_rows(Context& c, const float* product, const float* bias, float* y, int64_t rows,
                int64_t inner);

// act(group_norm(x)) for x [N, C, H, W] rounded to the context's 16-bit dtype,
// in one pass (cuda_norm.cu): a reduced convolution's operand, the same values
// as rounding group_norm_act's float32 output.
Reduced group_norm_act_reduced(Context& c, const Tensor& x, const GroupNormAct& norm,
                               const char* op);

// float32 -> the 16-bit dtype (float16 or bfloat16), round to nearest even (cuda_reduced.cu).
void round_to_reduced(Context& c, const float* x, void* y, int64_t n, ComputeDtype dtype);
// The cuBLAS type of the 16-bit dtype (CUDA_R_16F, CUDA_R_16BF).
cudaDataType_t cublas_type(ComputeDtype dtype);

// Device pointers of tensors already on the device (Context::input / empty).
inline const float* dptr(const Tensor& t) { return t.raw_data(); }
inline float* dptr_mut(const Tensor& t) { return t.raw_data(); }

}  // namespace sdvsr::cuda
