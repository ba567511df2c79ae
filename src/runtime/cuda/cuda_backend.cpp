#include "runtime/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <tuple>

#include "runtime/cuda/cuda_context.h"

namespace sdvsr {

namespace cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": " + cudnnGetErrorString(s));
}

void require(bool ok, const char* op, const std::string& message) {
  if (!ok) throw std::runtime_error(std::string(op) + ": " + message);
}

cudaMemPool_t device_pool(int device) {
  cudaMemPool_t pool;
  check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  return pool;
}

Context::Context(int dev, ComputeDtype dt) : device(dev), dtype(dt) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaDeviceGetAttribute(&compute_major, cudaDevAttrComputeCapabilityMajor, device),
        "cudaDeviceGetAttribute");
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  // Keep freed blocks in the device's default pool instead of returning them.
  uint64_t keep = UINT64_MAX;
  check(cudaMemPoolSetAttribute(device_pool(device), cudaMemPoolAttrReleaseThreshold, &keep),
        "cudaMemPoolSetAttribute");
  check(cublasCreate(&cublas), "cublasCreate");
  check(cublasSetStream(cublas, stream), "cublasSetStream");
  // float32 parity: no TF32 tensor-core rounding. A float16 / bfloat16 backend
  // runs its products through cublasGemmEx with float32 accumulation, where
  // the default math lets cuBLAS use tensor cores (its float32 calls, e.g. the
  // RAFT correlation, still get no TF32: that needs CUBLAS_TF32_TENSOR_OP_MATH).
  check(cublasSetMathMode(cublas, dtype == ComputeDtype::kFloat32 ? CUBLAS_PEDANTIC_MATH
                                                                  : CUBLAS_DEFAULT_MATH),
        "cublasSetMathMode");
  check(cudnnCreate(&cudnn), "cudnnCreate");
  check(cudnnSetStream(cudnn, stream), "cudnnSetStream");
}

Context::~Context() {
  // The process-wide backends are never destroyed (tensors may outlive them);
  // this runs only for backends a test creates and drops. Cached device copies
  // are freed on the stream, so drop them while it still exists.
  {
    std::lock_guard<std::mutex> lock(reduced_mutex_);
    reduced_copies_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(upload_mutex_);
    uploads_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(table_mutex_);
    tables_.clear();
  }
  if (cudnn) cudnnDestroy(cudnn);
  if (cublas) cublasDestroy(cublas);
  if (stream) {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
}

Tensor Context::empty(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  void* p = nullptr;
  const size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(float);
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMallocAsync(&p, bytes, stream), "cudaMallocAsync");
  cudaStream_t s = stream;
  std::shared_ptr<void> owner(p, [s](void* q) { cudaFreeAsync(q, s); });
  return Tensor::wrap(Device::kCuda, shape, static_cast<float*>(p), std::move(owner));
}

std::shared_ptr<void> Context::scratch(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  check(cudaMallocAsync(&p, bytes, stream), "cudaMallocAsync (workspace)");
  cudaStream_t s = stream;
  return std::shared_ptr<void>(p, [s](void* q) { cudaFreeAsync(q, s); });
}

void Context::require_not_recording(const char* what) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream, &status), "cudaStreamIsCapturing");
  if (status != cudaStreamCaptureStatusNone)
    throw std::runtime_error(std::string(what) +
                             ": needs the host while a CUDA graph is being recorded");
}

std::shared_ptr<void> Context::device_table(const std::vector<int64_t>& key, const void* host,
                                            size_t bytes) {
  std::lock_guard<std::mutex> lock(table_mutex_);
  auto it = tables_.find(key);
  if (it != tables_.end()) return it->second;
  require_not_recording("a new resampling table");
  // Never evicted: a recording may hold the address, and each table is a few
  // kilobytes (one per resampled size and axis).
  std::shared_ptr<void> d = scratch(std::max<size_t>(bytes, 1));
  if (bytes) {
    check(cudaMemcpyAsync(d.get(), host, bytes, cudaMemcpyHostToDevice, stream),
          "resampling table (cudaMemcpyAsync)");
    check(cudaStreamSynchronize(stream), "resampling table (cudaStreamSynchronize)");
  }
  tables_.emplace(key, d);
  return d;
}

Tensor Context::upload(const Tensor& x) {
  require_not_recording("upload of a host tensor");
  Tensor d = empty(x.shape());
  if (x.numel())
    check(cudaMemcpyAsync(d.raw_data(), x.data(), static_cast<size_t>(x.numel()) * sizeof(float),
                          cudaMemcpyHostToDevice, stream),
          "upload (cudaMemcpyAsync)");
  // Pageable host memory: the copy is staged before the call returns, but a
  // caller may free x right after, so wait for it.
  check(cudaStreamSynchronize(stream), "upload (cudaStreamSynchronize)");
  return d;
}

Tensor Context::input(const Tensor& x) {
  if (!x.defined() || x.device() == Device::kCuda) return x;
  const std::shared_ptr<const void> owner = x.storage_owner().lock();
  if (!x.is_borrowed() || !owner) return upload(x);
  const void* key = x.storage_ptr();
  std::lock_guard<std::mutex> lock(upload_mutex_);
  auto same_owner = [&](const Upload& u) {
    const auto o = u.owner.lock();
    return o && !o.owner_before(owner) && !owner.owner_before(o);
  };
  std::vector<Upload>& entries = uploads_[key];
  for (const Upload& u : entries)
    if (u.numel == x.numel() && same_owner(u)) return u.device.reshape(x.shape());
  // Drop uploads whose host storage is gone (a recycled address must not match).
  std::erase_if(entries, [](const Upload& u) { return u.owner.expired(); });
  Tensor d = upload(x);
  entries.push_back(Upload{owner, x.numel(), d});
  ++weight_uploads_;
  return d;
}

Reduced Context::reduced(const Tensor& x, bool weight) {
  require(dtype != ComputeDtype::kFloat32, "reduced", "a float32 backend has no 16-bit operands");
  const int64_t n = x.numel();
  const size_t bytes = static_cast<size_t>(n) * 2;  // float16 and bfloat16 are 2 bytes
  auto convert = [&](const Tensor& device_x) {
    Reduced r = scratch(bytes);
    round_to_reduced(*this, device_x.raw_data(), r.get(), n, dtype);
    return r;
  };
  const std::shared_ptr<const void> owner = x.storage_owner().lock();
  const bool cacheable = n > 0 && owner &&
                         ((x.is_host() && x.is_borrowed()) || (x.device() == Device::kCuda && weight));
  if (!cacheable) return n > 0 ? convert(input(x)) : nullptr;

  std::lock_guard<std::mutex> lock(reduced_mutex_);
  auto same_owner = [&](const ReducedCopy& r) {
    const auto o = r.owner.lock();
    return o && !o.owner_before(owner) && !owner.owner_before(o);
  };
  std::vector<ReducedCopy>& entries = reduced_copies_[{x.storage_ptr(), x.device()}];
  for (const ReducedCopy& r : entries)
    if (r.numel == n && same_owner(r)) return r.values;
  // Drop copies whose source storage is gone, everywhere (a recycled address
  // must not match, and activations passed as weights must not pile up).
  for (auto it = reduced_copies_.begin(); it != reduced_copies_.end();) {
    std::erase_if(it->second, [](const ReducedCopy& r) { return r.owner.expired(); });
    if (it->second.empty() && &it->second != &entries)
      it = reduced_copies_.erase(it);
    else
      ++it;
  }
  // A host weight goes up once as float32 into temporary memory (not kept in
  // the upload cache: the 16-bit copy is what the products read).
  Reduced r = convert(x.is_host() ? upload(x) : x);
  entries.push_back(ReducedCopy{owner, n, r});
  ++reduced_copies_made_;
  return r;
}

Tensor Context::download(const Tensor& x) {
  require_not_recording("to_host");
  Tensor h = Tensor::uninitialized(x.shape());
  if (x.numel())
    check(cudaMemcpyAsync(h.data(), x.raw_data(), static_cast<size_t>(x.numel()) * sizeof(float),
                          cudaMemcpyDeviceToHost, stream),
          "to_host (cudaMemcpyAsync)");
  check(cudaStreamSynchronize(stream), "to_host (cudaStreamSynchronize)");
  return h;
}

}  // namespace cuda

CudaBackend::CudaBackend(int device_index, ComputeDtype dtype)
    : index_(device_index), dtype_(dtype), ctx_(std::make_unique<cuda::Context>(device_index, dtype)) {}

CudaBackend::~CudaBackend() = default;

Tensor CudaBackend::to_host(const Tensor& x) {
  if (!x.defined() || x.is_host()) return x;
  return ctx_->download(x);
}

Tensor CudaBackend::to_device(const Tensor& x) {
  if (!x.defined() || x.device() == Device::kCuda) return x;
  return ctx_->input(x);
}


int64_t CudaBackend::peak_device_memory_bytes() {
  uint64_t high = 0;
  cuda::check(cudaStreamSynchronize(ctx_->stream), "cudaStreamSynchronize");
  cuda::check(cudaMemPoolGetAttribute(cuda::device_pool(index_), cudaMemPoolAttrUsedMemHigh, &high),
              "cudaMemPoolGetAttribute");
  // Memory recorded graphs allocate for themselves lies outside the pool.
  uint64_t graphs = 0;
  cuda::check(cudaDeviceGetGraphMemAttribute(index_, cudaGraphMemAttrUsedMemHigh, &graphs),
              "cudaDeviceGetGraphMemAttribute");
  return static_cast<int64_t>(high + graphs);
}

void CudaBackend::reset_peak_device_memory() {
  uint64_t zero = 0;
  cuda::check(cudaStreamSynchronize(ctx_->stream), "cudaStreamSynchronize");
  cuda::check(cudaMemPoolSetAttribute(cuda::device_pool(index_), cudaMemPoolAttrUsedMemHigh, &zero),
              "cudaMemPoolSetAttribute");
  cuda::check(cudaDeviceSetGraphMemAttribute(index_, cudaGraphMemAttrUsedMemHigh, &zero),
              "cudaDeviceSetGraphMemAttribute");
}

int64_t CudaBackend::reduced_weight_copies() { return ctx_->reduced_copies_made(); }

int64_t CudaBackend::weight_uploads() { return ctx_->weight_uploads(); }

CudaBackend& cuda_backend(int index, ComputeDtype dtype, int lane) {
  static std::mutex mutex;
  // Never freed: tensors may outlive main().
  static std::map<std::tuple<int, ComputeDtype, int>, CudaBackend*> backends;
  std::lock_guard<std::mutex> lock(mutex);
  CudaBackend*& b = backends[{index, dtype, lane}];
  if (!b) b = new CudaBackend(index, dtype);
  return *b;
}

}  // namespace sdvsr
