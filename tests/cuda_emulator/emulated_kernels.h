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
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
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

// Warp-level operations. A warp is 32 consecutive threads of the block (x
// fastest, then y, z); the running thread's lane is its place in its warp.
// sync_warp parks the running fiber until every thread of its warp arrives
// (all 32 must: a real warp-wide operation with a full mask needs them all).
void sync_warp();
int lane_id();
// The exchange slots of `lane` in the running thread's warp (kWarpSlots words
// each): a thread writes its own, meets its warp, then reads the others'.
constexpr int kWarpSlots = 8;
uint32_t* warp_slots(int lane);

// __shfl_xor_sync: the value of lane (lane_id() ^ lane_mask) of this warp.
template <typename T>
T shfl_xor_sync(unsigned /*mask: the whole warp, as the backend passes*/, T value,
                int lane_mask) {
  static_assert(sizeof(T) == sizeof(uint32_t), "32-bit values only");
  std::memcpy(warp_slots(lane_id()), &value, sizeof(T));
  sync_warp();
  T out;
  std::memcpy(&out, warp_slots((lane_id() ^ lane_mask) & 31), sizeof(T));
  sync_warp();  // nobody writes again before everyone has read
  return out;
}

// A 16-bit value of type T, given as its bits, widened exactly.
template <typename T>
float widen(uint16_t bits) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
  } else {
    const uint32_t wide = uint32_t{bits} << 16;  // bfloat16: float's upper half
    float f;
    std::memcpy(&f, &wide, sizeof(f));
    return f;
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: c (16x8, float) += A (16x16)
// * B (16x8), with each lane holding the fragments PTX's ISA documents
// (groupID = lane / 4, t = lane % 4): a's four registers hold A's rows
// groupID, groupID + 8, groupID, groupID + 8 at columns 2t, 2t + 1 (the last
// two + 8), low half first; b's two hold B's rows 2t, 2t + 1 (the second + 8)
// at column groupID; c holds rows groupID, groupID, groupID + 8, groupID + 8
// at columns 2t, 2t + 1, 2t, 2t + 1. Products and sums in float.
template <typename T>
void mma_m16n8k16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  uint32_t* own = warp_slots(lane_id());
  for (int r = 0; r < 4; ++r) own[r] = a[r];
  own[4] = b[0];
  own[5] = b[1];
  sync_warp();
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const uint32_t* s = warp_slots(lane);
    const int g = lane / 4, t = lane % 4;
    auto halves = [](uint32_t word, float out[2]) {  // low half first
      out[0] = widen<T>(static_cast<uint16_t>(word & 0xffffu));
      out[1] = widen<T>(static_cast<uint16_t>(word >> 16));
    };
    for (int r = 0; r < 4; ++r) {
      float v[2];
      halves(s[r], v);
      const int row = g + (r % 2) * 8, col = 2 * t + (r / 2) * 8;
      A[row][col] = v[0];
      A[row][col + 1] = v[1];
    }
    for (int r = 0; r < 2; ++r) {
      float v[2];
      halves(s[4 + r], v);
      B[2 * t + r * 8][g] = v[0];
      B[2 * t + r * 8 + 1][g] = v[1];
    }
  }
  const int g = lane_id() / 4, t = lane_id() % 4;
  for (int e = 0; e < 4; ++e) {
    const int row = g + (e / 2) * 8, col = 2 * t + e % 2;
    float sum = 0.f;
    for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
    c[e] += sum;
  }
  sync_warp();
}

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
#define __shfl_xor_sync(mask, value, lane_mask) \
  ::sdvsr::emulated::shfl_xor_sync(mask, value, lane_mask)
// Device code with a tensor-core path calls the emulator's warp-wide mma here.
#define SDVSR_CUDA_EMULATOR 1

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
