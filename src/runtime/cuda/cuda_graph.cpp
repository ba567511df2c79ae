// CUDA graphs: a piece of work captured from the backend's stream once and
// launched again as one graph, instead of one launch (and our host code around
// it) per op. Allocations inside the capture become the graph's own memory
// nodes (cudaMallocAsync is stream-ordered), so the work may create and drop
// tensors freely as long as none outlives it.
#include <stdexcept>
#include <string>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

class CudaRecording final : public Recording {
 public:
  CudaRecording(cudaGraphExec_t exec, cudaStream_t stream, int device)
      : exec_(exec), stream_(stream), device_(device) {}
  ~CudaRecording() override {
    // The graph may still run: its memory goes back once the stream is done.
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cudaGraphExecDestroy(exec_);
  }
  CudaRecording(const CudaRecording&) = delete;
  CudaRecording& operator=(const CudaRecording&) = delete;

  void replay() override {
    cuda::check(cudaSetDevice(device_), "cudaSetDevice");
    cuda::check(cudaGraphLaunch(exec_, stream_), "replaying a CUDA graph (cudaGraphLaunch)");
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  int device_;
};

}  // namespace

std::unique_ptr<Recording> CudaBackend::record(const std::function<void()>& work) {
  cuda::Context& c = *ctx_;
  cuda::check(cudaSetDevice(index_), "cudaSetDevice");
  // Thread-local: another thread's work on another stream (the flow ahead)
  // goes on while this stream records.
  cuda::check(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal),
              "recording a CUDA graph (cudaStreamBeginCapture)");
  std::string failure;
  try {
    work();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  // Always end the capture, or the stream stays unusable.
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(c.stream, &graph);
  if (failure.empty() && ended != cudaSuccess)
    failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(ended);
  cudaGraphExec_t exec = nullptr;
  if (failure.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(made);
  }
  if (graph) cudaGraphDestroy(graph);
  if (!failure.empty()) {
    cudaGetLastError();  // a failed capture leaves its error behind; the stream is usable again
    throw std::runtime_error("recording a CUDA graph failed: " + failure);
  }
  auto recording = std::make_unique<CudaRecording>(exec, c.stream, index_);
  // The unrecorded warm-up left the step's intermediates in the pool, which
  // keeps freed memory; the graph has memory of its own from now on, so give
  // what the pool holds unused back before the graph's first launch maps its
  // own (two copies of the U-Net's intermediates would not fit 1080p in 24 GB).
  if (cudaStreamSynchronize(c.stream) == cudaSuccess)
    cudaMemPoolTrimTo(cuda::device_pool(index_), 0);
  cudaGetLastError();
  return recording;
}

void CudaBackend::copy_into(const Tensor& dst, const Tensor& src) {
  cuda::require(dst.device() == Device::kCuda, "copy_into",
                "the destination must be a tensor on the device");
  cuda::require(dst.numel() == src.numel(), "copy_into",
                shape_str(dst.shape()) + " from " + shape_str(src.shape()) +
                    " (element counts differ)");
  if (src.numel() == 0) return;
  cuda::Context& c = *ctx_;
  const size_t bytes = static_cast<size_t>(src.numel()) * sizeof(float);
  if (src.is_host()) {
    c.require_not_recording("copy_into from the host");
    cuda::check(cudaMemcpyAsync(dst.raw_data(), src.data(), bytes, cudaMemcpyHostToDevice, c.stream),
                "copy_into (cudaMemcpyAsync)");
    // Pageable memory: the caller may free src right after.
    cuda::check(cudaStreamSynchronize(c.stream), "copy_into (cudaStreamSynchronize)");
    return;
  }
  cuda::check(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice,
                              c.stream),
              "copy_into (cudaMemcpyAsync)");
}

}  // namespace sdvsr
