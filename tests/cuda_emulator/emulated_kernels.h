#pragma once
// Included first (g++ -include) when the backend's .cu files are compiled as
// host C++ for the emulator: CUDA's execution-space keywords become plain C++,
// the built-in indices read the thread the emulator is running, and a launch
// (SDVSR_LAUNCH, see runtime/cuda/cuda_context.h) queues the kernel on its
// stream. A block's threads run one after another on fibers that switch at
// __syncthreads, so shared memory (`static` here) is the block's own as long
// as blocks run one at a time, which they do.
#define __global__
#define __device__
#define __host__
#define __shared__ static

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <tuple>
#include <utility>

#include "cuda_emulator/emulated_device.h"

namespace sdvsr::emulated {

// The indices of the thread running now (valid inside a kernel body only).
struct RunningThread {
  uint3 thread;
  uint3 block;
  dim3 block_dim;
  dim3 grid_dim;
};
extern RunningThread running;

// __syncthreads: parks the running fiber until every thread of its block arrives.
void sync_threads();

// Checks the launch configuration (an invalid one sets the calling thread's
// last error, as a real launch does, and queues nothing), then queues
// `thread_body` to run once per thread of every block on `stream`.
void launch_kernel(const char* name, dim3 grid, dim3 block, cudaStream_t stream,
                   std::function<void()> thread_body);

// SDVSR_LAUNCH(kernel, grid, block, stream)(args...): the arguments are
// converted to the kernel's parameter types and copied now, as a launch does.
template <typename... Params>
class Launch {
 public:
  Launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream)
      : name_(name), kernel_(kernel), grid_(grid), block_(block), stream_(stream) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "a kernel launch with the wrong arity");
    std::tuple<std::decay_t<Params>...> params(static_cast<Params>(std::forward<Args>(args))...);
    auto* kernel = kernel_;
    launch_kernel(name_, grid_, block_, stream_,
                  [kernel, params]() { std::apply(kernel, params); });
  }

 private:
  const char* name_;
  void (*kernel_)(Params...);
  dim3 grid_, block_;
  cudaStream_t stream_;
};

}  // namespace sdvsr::emulated

#define SDVSR_LAUNCH(kernel, grid, block, stream) \
  ::sdvsr::emulated::Launch(#kernel, kernel, dim3(grid), dim3(block), stream)

#define threadIdx (::sdvsr::emulated::running.thread)
#define blockIdx (::sdvsr::emulated::running.block)
#define blockDim (::sdvsr::emulated::running.block_dim)
#define gridDim (::sdvsr::emulated::running.grid_dim)
#define __syncthreads() ::sdvsr::emulated::sync_threads()

// Device-side overloads CUDA provides and the host library does not.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
