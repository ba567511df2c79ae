// The CUDA runtime calls the backend makes, on the emulated device
// (emulated_device.h): memory is host memory filled with NaN bytes when
// allocated (a kernel that forgets to write shows), streams queue their work
// until the host waits for them, and a stream recording a graph keeps its work
// for the graph's launches. Ordering follows the documented rules: in order per
// stream, the legacy default stream against blocking streams, nothing between
// non-blocking streams except what the host waits for.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emulator/emulated_device.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Node {
  uint64_t seq = 0;
  std::string what;
  std::function<void()> run;
};

// What a graph holds: its nodes in capture order, and the memory allocated
// while it was captured (the graph's own, freed with the last graph or
// executable graph that holds it).
struct GraphBody {
  std::vector<Node> nodes;
  std::vector<void*> owned;
  ~GraphBody();
};

struct Capture {
  std::shared_ptr<GraphBody> body = std::make_shared<GraphBody>();
  std::thread::id thread;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  bool invalidated = false;
};

struct EventState {
  bool recorded = false;
  bool done = false;
  Clock::time_point when;
  cudaStream_t stream = nullptr;
  uint64_t seq = 0;
};

}  // namespace

struct CUstream_st {
  bool blocking = true;
  std::deque<Node> queue;
  std::unique_ptr<Capture> capture;
};
struct CUevent_st {
  std::shared_ptr<EventState> state = std::make_shared<EventState>();
};
struct CUgraph_st {
  std::shared_ptr<GraphBody> body;
};
struct CUgraphExec_st {
  std::shared_ptr<GraphBody> body;
};
struct CUmemPoolHandle_st {
  uint64_t release_threshold = 0;
};

namespace {

struct Allocation {
  size_t bytes = 0;
  bool async = false;  // from cudaMallocAsync outside a capture: the pool's
  bool graph = false;  // allocated while a graph was being captured
};

// Everything the emulated device holds. Work runs with `mutex` held, so a
// kernel's shared memory and the fibers are never used by two host threads.
struct Device {
  std::mutex mutex;
  std::map<uintptr_t, Allocation> allocations;
  CUstream_st legacy;
  std::set<CUstream_st*> streams;
  uint64_t next_seq = 1;
  CUmemPoolHandle_st pool;
  uint64_t pool_used = 0, pool_high = 0, graph_used = 0, graph_high = 0;
};

Device& device() {
  static Device* d = new Device;  // never destroyed: tensors may outlive static destructors
  return *d;
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t status(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

CUstream_st* stream_of(cudaStream_t s) { return s ? s : &device().legacy; }

// Memory, with the device lock held. Each allocation sits between two guard
// zones of NaN bytes: a kernel that reads a little past either end gets NaN,
// and one that writes there is reported when the memory is freed.
constexpr size_t kGuardBytes = 256;

size_t guarded_span(size_t bytes) {
  return kGuardBytes + (std::max<size_t>(bytes, 1) + 255) / 256 * 256 + kGuardBytes;
}

void* allocate_locked(size_t bytes, bool async, bool graph) {
  Device& d = device();
  const size_t span = guarded_span(bytes);
  auto* base = static_cast<unsigned char*>(std::aligned_alloc(256, span));
  if (!base) return nullptr;
  std::memset(base, 0xff, span);  // NaN floats: unwritten memory shows in results
  void* p = base + kGuardBytes;
  d.allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, async, graph};
  if (async) d.pool_high = std::max(d.pool_high, d.pool_used += bytes);
  if (graph) d.graph_high = std::max(d.graph_high, d.graph_used += bytes);
  return p;
}

void free_locked(void* p, const char* what) {
  Device& d = device();
  auto it = d.allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == d.allocations.end())
    sdvsr::emulated::fail(what, "frees memory that is not a live device allocation (freed twice?)");
  const size_t bytes = it->second.bytes;
  auto* base = static_cast<unsigned char*>(p) - kGuardBytes;
  const size_t span = guarded_span(bytes);
  for (size_t i = 0; i < span; ++i) {
    if (i == kGuardBytes) i += bytes;  // the allocation itself
    if (base[i] != 0xff)
      sdvsr::emulated::fail(what, "an allocation of " + std::to_string(bytes) +
                                      " bytes was written " +
                                      (i < kGuardBytes ? "before its start"
                                                       : "past its end") +
                                      " (byte " + std::to_string(static_cast<long>(i) -
                                                                 static_cast<long>(kGuardBytes)) +
                                      ")");
  }
  if (it->second.async) d.pool_used -= bytes;
  if (it->second.graph) d.graph_used -= bytes;
  d.allocations.erase(it);
  std::free(base);
}

bool is_device_range_locked(const void* p, size_t bytes) {
  const Device& d = device();
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = d.allocations.upper_bound(a);
  if (it == d.allocations.begin()) return false;
  --it;
  return a + bytes <= it->first + it->second.bytes;
}

bool is_allocation_start_locked(const void* p) {
  return device().allocations.count(reinterpret_cast<uintptr_t>(p)) != 0;
}

// The capture that makes a "potentially unsafe" call (one that may
// synchronise implicitly) from this thread illegal: any capture in global
// mode, this thread's in thread-local mode.
Capture* capture_forbidding_unsafe_calls_locked() {
  for (CUstream_st* s : device().streams) {
    if (!s->capture || s->capture->invalidated) continue;
    if (s->capture->mode == cudaStreamCaptureModeGlobal) return s->capture.get();
    if (s->capture->mode == cudaStreamCaptureModeThreadLocal &&
        s->capture->thread == std::this_thread::get_id())
      return s->capture.get();
  }
  return nullptr;
}

// An unsafe call during a capture: the call fails and the capture is invalidated.
cudaError_t refuse_if_capturing_locked() {
  if (Capture* c = capture_forbidding_unsafe_calls_locked()) {
    c->invalidated = true;
    return status(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

uint64_t enqueue_locked(cudaStream_t stream, const char* what, std::function<void()> work) {
  Device& d = device();
  CUstream_st* s = stream_of(stream);
  const uint64_t seq = d.next_seq++;
  if (s->capture) {
    if (!s->capture->invalidated) s->capture->body->nodes.push_back({seq, what, std::move(work)});
  } else {
    s->queue.push_back({seq, what, std::move(work)});
  }
  return seq;
}

void run_until_locked(CUstream_st* s, uint64_t limit);

// The implicit ordering of the legacy default stream: its work waits for all
// earlier work on blocking streams, and theirs for its earlier work.
void run_predecessors_locked(CUstream_st* s, uint64_t seq) {
  Device& d = device();
  if (s == &d.legacy) {
    for (CUstream_st* other : d.streams)
      if (other->blocking) run_until_locked(other, seq - 1);
  } else if (s->blocking) {
    run_until_locked(&d.legacy, seq - 1);
  }
}

void run_until_locked(CUstream_st* s, uint64_t limit) {
  while (!s->queue.empty() && s->queue.front().seq <= limit) {
    Node node = std::move(s->queue.front());
    s->queue.pop_front();
    run_predecessors_locked(s, node.seq);
    node.run();
  }
}

void run_everything_locked() {
  Device& d = device();
  run_until_locked(&d.legacy, UINT64_MAX);
  for (CUstream_st* s : d.streams) run_until_locked(s, UINT64_MAX);
}

GraphBody::~GraphBody() {
  // Dropped with the device lock held (graph destruction, or a launch node run).
  for (void* p : owned) free_locked(p, "a graph's memory");
}

bool capturing(cudaStream_t stream) { return stream_of(stream)->capture != nullptr; }

}  // namespace

namespace sdvsr::emulated {

void enqueue(cudaStream_t stream, const char* what, std::function<void()> work) {
  std::lock_guard<std::mutex> lock(device().mutex);
  enqueue_locked(stream, what, std::move(work));
}

bool is_device_range(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(device().mutex);
  return is_device_range_locked(p, bytes);
}

void record_launch_error(cudaError_t error) { status(error); }

void fail(const char* what, const std::string& problem) {
  std::fprintf(stderr, "emulated CUDA: %s: %s\n", what, problem.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sdvsr::emulated

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return status(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) {
  return dev == 0 ? cudaSuccess : status(cudaErrorInvalidDevice);
}

// The emulated device answers as an sm_90 one (an H100), so kernels that need
// sm_80's tensor-core instructions take that path here too (emulated warp-wide).
cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int dev) {
  if (!value || dev != 0) return status(cudaErrorInvalidValue);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    default: return status(cudaErrorInvalidValue);
  }
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread:
      return "attempt to terminate a thread-local capture sequence from another thread";
    default: return "emulated CUDA error";
  }
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  if (const cudaError_t e = refuse_if_capturing_locked()) return e;
  *p = bytes ? allocate_locked(bytes, false, false) : nullptr;
  return bytes && !*p ? status(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(device().mutex);
  if (const cudaError_t e = refuse_if_capturing_locked()) return e;
  if (!is_allocation_start_locked(p)) return status(cudaErrorInvalidValue);
  run_everything_locked();  // cudaFree synchronises the device
  free_locked(p, "cudaFree");
  return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t stream) {
  if (!p || bytes == 0) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  CUstream_st* s = stream_of(stream);
  if (s->capture) {
    // A memory node: the graph's own memory from now on.
    *p = allocate_locked(bytes, false, true);
    if (*p) s->capture->body->owned.push_back(*p);
  } else {
    *p = allocate_locked(bytes, true, false);
  }
  return *p ? cudaSuccess : status(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeAsync(void* p, cudaStream_t stream) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(device().mutex);
  if (!is_allocation_start_locked(p)) return status(cudaErrorInvalidValue);
  CUstream_st* s = stream_of(stream);
  if (s->capture) {
    std::vector<void*>& owned = s->capture->body->owned;
    if (std::find(owned.begin(), owned.end(), p) != owned.end()) return cudaSuccess;
    // Memory from outside the graph, freed at every launch of it: a second
    // launch frees it again, which free_locked reports.
  }
  enqueue_locked(stream, "cudaFreeAsync", [p]() { free_locked(p, "cudaFreeAsync"); });
  return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int dev) {
  if (!pool || dev != 0) return status(cudaErrorInvalidValue);
  *pool = &device().pool;
  return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void* value) {
  if (!pool || !value) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  Device& d = device();
  const uint64_t v = *static_cast<uint64_t*>(value);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: pool->release_threshold = v; return cudaSuccess;
    case cudaMemPoolAttrUsedMemHigh:
    case cudaMemPoolAttrReservedMemHigh:
      if (v != 0) return status(cudaErrorInvalidValue);  // may only be reset
      d.pool_high = d.pool_used;
      return cudaSuccess;
    default: return status(cudaErrorInvalidValue);
  }
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr attr, void* value) {
  if (!pool || !value) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  const Device& d = device();
  uint64_t& out = *static_cast<uint64_t*>(value);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: out = pool->release_threshold; return cudaSuccess;
    case cudaMemPoolAttrUsedMemCurrent:
    case cudaMemPoolAttrReservedMemCurrent: out = d.pool_used; return cudaSuccess;
    case cudaMemPoolAttrUsedMemHigh:
    case cudaMemPoolAttrReservedMemHigh: out = d.pool_high; return cudaSuccess;
    default: return status(cudaErrorInvalidValue);
  }
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t) {
  return pool ? cudaSuccess : status(cudaErrorInvalidValue);
}

cudaError_t cudaDeviceGetGraphMemAttribute(int dev, enum cudaGraphMemAttributeType attr,
                                           void* value) {
  if (dev != 0 || !value) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  const Device& d = device();
  uint64_t& out = *static_cast<uint64_t*>(value);
  switch (attr) {
    case cudaGraphMemAttrUsedMemCurrent:
    case cudaGraphMemAttrReservedMemCurrent: out = d.graph_used; return cudaSuccess;
    case cudaGraphMemAttrUsedMemHigh:
    case cudaGraphMemAttrReservedMemHigh: out = d.graph_high; return cudaSuccess;
    default: return status(cudaErrorInvalidValue);
  }
}

cudaError_t cudaDeviceSetGraphMemAttribute(int dev, enum cudaGraphMemAttributeType attr,
                                           void* value) {
  if (dev != 0 || !value) return status(cudaErrorInvalidValue);
  if (attr != cudaGraphMemAttrUsedMemHigh && attr != cudaGraphMemAttrReservedMemHigh)
    return status(cudaErrorInvalidValue);
  if (*static_cast<uint64_t*>(value) != 0) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  device().graph_high = device().graph_used;
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  const bool dst_device = is_device_range_locked(dst, bytes);
  const bool src_device = is_device_range_locked(src, bytes);
  if (kind == cudaMemcpyDefault) {
    kind = src_device ? (dst_device ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                      : (dst_device ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  }
  const bool wants_dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool wants_src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if ((wants_dst_device && !dst_device) || (wants_src_device && !src_device))
    sdvsr::emulated::fail("cudaMemcpyAsync",
                          "a device side of the copy is not device memory covering " +
                              std::to_string(bytes) + " bytes");
  if (kind == cudaMemcpyDeviceToDevice) {
    enqueue_locked(stream, "cudaMemcpyAsync",
                   [dst, src, bytes]() { std::memcpy(dst, src, bytes); });
    return cudaSuccess;
  }
  // Pageable host memory (the emulator has no other kind) cannot be captured.
  if (capturing(stream)) {
    stream_of(stream)->capture->invalidated = true;
    return status(cudaErrorStreamCaptureUnsupported);
  }
  if (kind == cudaMemcpyHostToDevice) {
    // Staged now: the caller may reuse its buffer once the call returns.
    auto staged = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
    enqueue_locked(stream, "cudaMemcpyAsync",
                   [dst, staged]() { std::memcpy(dst, staged->data(), staged->size()); });
  } else {
    // Lands when the stream gets there: the host must wait before reading.
    enqueue_locked(stream, "cudaMemcpyAsync",
                   [dst, src, bytes]() { std::memcpy(dst, src, bytes); });
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, enum cudaMemcpyKind kind,
                              cudaStream_t stream) {
  if (width == 0 || height == 0) return cudaSuccess;
  if (!dst || !src || width > dpitch || width > spitch) return status(cudaErrorInvalidPitchValue);
  if (kind != cudaMemcpyDeviceToDevice)
    sdvsr::emulated::fail("cudaMemcpy2DAsync", "only device-to-device copies are emulated");
  std::lock_guard<std::mutex> lock(device().mutex);
  if (!is_device_range_locked(dst, dpitch * (height - 1) + width) ||
      !is_device_range_locked(src, spitch * (height - 1) + width))
    sdvsr::emulated::fail("cudaMemcpy2DAsync", "a side of the copy is not device memory covering " +
                                                   std::to_string(height) + " rows of " +
                                                   std::to_string(width) + " bytes");
  enqueue_locked(stream, "cudaMemcpy2DAsync", [=]() {
    for (size_t r = 0; r < height; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                   width);
  });
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  if (const cudaError_t e = refuse_if_capturing_locked()) return e;
  const bool dst_device = is_device_range_locked(dst, bytes);
  const bool src_device = is_device_range_locked(src, bytes);
  if (((kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) && !dst_device) ||
      ((kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) && !src_device))
    sdvsr::emulated::fail("cudaMemcpy", "a device side of the copy is not device memory covering " +
                                            std::to_string(bytes) + " bytes");
  // On the legacy stream, synchronous for the host: earlier work there and on
  // blocking streams comes first; non-blocking streams are not waited for.
  const uint64_t seq = enqueue_locked(nullptr, "cudaMemcpy",
                                      [dst, src, bytes]() { std::memcpy(dst, src, bytes); });
  run_until_locked(&device().legacy, seq);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lock(device().mutex);
  if (!is_device_range_locked(p, bytes))
    sdvsr::emulated::fail("cudaMemsetAsync",
                          "not device memory covering " + std::to_string(bytes) + " bytes");
  enqueue_locked(stream, "cudaMemsetAsync", [p, value, bytes]() { std::memset(p, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (!stream || (flags & ~cudaStreamNonBlocking)) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  auto* s = new CUstream_st;
  s->blocking = (flags & cudaStreamNonBlocking) == 0;
  device().streams.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return status(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(device().mutex);
  if (!device().streams.count(stream)) return status(cudaErrorInvalidResourceHandle);
  if (stream->capture) return status(cudaErrorIllegalState);
  // Queued work still runs (a real stream finishes it after the call returns).
  run_until_locked(stream, UINT64_MAX);
  device().streams.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(device().mutex);
  CUstream_st* s = stream_of(stream);
  if (s != &device().legacy && !device().streams.count(s))
    return status(cudaErrorInvalidResourceHandle);
  if (s->capture) {
    s->capture->invalidated = true;
    return status(cudaErrorStreamCaptureUnsupported);
  }
  run_until_locked(s, UINT64_MAX);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard<std::mutex> lock(device().mutex);
  if (const cudaError_t e = refuse_if_capturing_locked()) return e;
  run_everything_locked();
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  if (!stream) return status(cudaErrorStreamCaptureUnsupported);  // the legacy stream
  std::lock_guard<std::mutex> lock(device().mutex);
  if (!device().streams.count(stream)) return status(cudaErrorInvalidResourceHandle);
  if (stream->capture) return status(cudaErrorIllegalState);
  stream->capture = std::make_unique<Capture>();
  stream->capture->thread = std::this_thread::get_id();
  stream->capture->mode = mode;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* out) {
  if (!out) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  const CUstream_st* s = stream_of(stream);
  *out = !s->capture ? cudaStreamCaptureStatusNone
         : s->capture->invalidated ? cudaStreamCaptureStatusInvalidated
                                   : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!graph) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  CUstream_st* s = stream_of(stream);
  if (!s->capture) return status(cudaErrorIllegalState);
  if (s->capture->mode != cudaStreamCaptureModeRelaxed &&
      s->capture->thread != std::this_thread::get_id())
    return status(cudaErrorStreamCaptureWrongThread);
  std::unique_ptr<Capture> capture = std::move(s->capture);
  *graph = nullptr;
  if (capture->invalidated) return status(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{capture->body};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  *exec = new CUgraphExec_st{graph->body};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  if (capturing(stream)) return status(cudaErrorStreamCaptureUnsupported);
  std::shared_ptr<GraphBody> body = exec->body;
  enqueue_locked(stream, "cudaGraphLaunch", [body]() {
    for (const Node& node : body->nodes) node.run();
  });
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (!graph) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (!exec) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (!event) return status(cudaErrorInvalidValue);
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return status(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(device().mutex);
  delete event;  // a queued record keeps its state alive
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return status(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(device().mutex);
  if (capturing(stream)) return status(cudaErrorStreamCaptureUnsupported);
  std::shared_ptr<EventState> e = event->state;
  e->recorded = true;
  e->done = false;
  e->stream = stream;
  e->seq = enqueue_locked(stream, "cudaEventRecord", [e]() {
    e->done = true;
    e->when = Clock::now();
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return status(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(device().mutex);
  const EventState& e = *event->state;
  CUstream_st* s = stream_of(e.stream);
  // A destroyed stream ran everything it held.
  if (e.recorded && !e.done && (s == &device().legacy || device().streams.count(s)))
    run_until_locked(s, e.seq);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return status(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(device().mutex);
  const EventState &a = *start->state, &b = *end->state;
  if (!a.recorded || !b.recorded) return status(cudaErrorInvalidResourceHandle);
  if (!a.done || !b.done) return status(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(b.when - a.when).count();
  return cudaSuccess;
}

}  // extern "C"
