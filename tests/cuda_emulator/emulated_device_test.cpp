// The emulator's own rules, which the CUDA tests run on (sdvsr_cuda_emulated_tests):
// work waits in its stream until the host waits for it, a recorded graph runs
// its work at each launch and not before, calls a capture forbids fail and
// spoil it, and a block's threads meet at __syncthreads. Misuse that a GPU
// answers with a hang or corrupted memory stops the process with a message.
#include "cuda_emulator/emulated_kernels.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

struct Stream {
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
  cudaStream_t s = nullptr;
};

float* device_floats(size_t n, cudaStream_t s) {
  void* p = nullptr;
  EXPECT_EQ(cudaMallocAsync(&p, n * sizeof(float), s), cudaSuccess);
  return static_cast<float*>(p);
}

__global__ void add_one(float* x, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.f;
}

__global__ void fill(float* x, int n, float value) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] = value;
}

// Every thread gets the block's sum through shared memory (a tree, as the
// backend's reductions do): wrong without each barrier.
__global__ void block_sums(const float* x, float* out) {
  __shared__ float partial[64];
  const unsigned t = threadIdx.x;
  partial[t] = x[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) partial[t] += partial[t + half];
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + t] = partial[0];
}

// Each lane reads lane ^ 1, ^ 2, ^ 16 of its warp (two warps, one block).
__global__ void shuffles(float* out) {
  const float mine = static_cast<float>(threadIdx.x);
  float got = __shfl_xor_sync(0xffffffffu, mine, 1);
  got = 100.f * got + __shfl_xor_sync(0xffffffffu, mine, 2);
  out[threadIdx.x] = 100.f * got + __shfl_xor_sync(0xffffffffu, mine, 16);
}

// One warp: C (16x8) = A (16x16) * B (16x8), every matrix row-major in memory,
// each lane loading and storing the elements PTX's fragment layout gives it.
__global__ void tile_product(const __half* a, const __half* b, float* c) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto pair = [](__half lo, __half hi) {
    uint32_t bits = 0;
    __half_raw rl = lo, rh = hi;
    bits = uint32_t{rl.x} | (uint32_t{rh.x} << 16);
    return bits;
  };
  uint32_t af[4], bf[2];
  for (int r = 0; r < 4; ++r) {
    const int row = g + (r % 2) * 8, col = 2 * t + (r / 2) * 8;
    af[r] = pair(a[row * 16 + col], a[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {
    const int k = 2 * t + r * 8;
    bf[r] = pair(b[k * 8 + g], b[(k + 1) * 8 + g]);
  }
  float acc[4] = {1.f, 1.f, 1.f, 1.f};  // accumulates onto c's values
  sdvsr::emulated::mma_m16n8k16<__half>(acc, af, bf);
  for (int e = 0; e < 4; ++e) c[(g + (e / 2) * 8) * 8 + 2 * t + e % 2] = acc[e];
}

__global__ void returns_before_the_shuffle(float* x) {
  if (threadIdx.x == 3) return;
  x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

__global__ void returns_before_the_barrier(float* x) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  x[threadIdx.x] = 0.f;
}

TEST(EmulatedDevice, WorkRunsInStreamOrderWhenTheHostWaits) {
  Stream stream;
  float* d = device_floats(4, stream.s);
  ASSERT_EQ(cudaMemsetAsync(d, 0, 4 * sizeof(float), stream.s), cudaSuccess);
  SDVSR_LAUNCH(add_one, 1, 4, stream.s)(d, 4);
  std::vector<float> host(4, -7.f);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), d, 4 * sizeof(float), cudaMemcpyDeviceToHost, stream.s),
            cudaSuccess);
  EXPECT_EQ(host[0], -7.f) << "a copy to the host landed before the host waited";
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(host, std::vector<float>(4, 1.f));
  cudaFreeAsync(d, stream.s);
  EXPECT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
}

TEST(EmulatedDevice, FreshDeviceMemoryReadsAsNaN) {
  Stream stream;
  float* d = device_floats(2, stream.s);
  float host[2] = {0.f, 0.f};
  ASSERT_EQ(cudaMemcpyAsync(host, d, sizeof host, cudaMemcpyDeviceToHost, stream.s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_TRUE(std::isnan(host[0]) && std::isnan(host[1]));
  cudaFreeAsync(d, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDevice, AGraphRunsItsWorkAtEachLaunchOnly) {
  Stream stream;
  float* d = device_floats(3, stream.s);
  ASSERT_EQ(cudaMemsetAsync(d, 0, 3 * sizeof(float), stream.s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  SDVSR_LAUNCH(add_one, 1, 3, stream.s)(d, 3);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream.s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  std::vector<float> host(3);
  auto read = [&] {
    EXPECT_EQ(cudaMemcpyAsync(host.data(), d, 3 * sizeof(float), cudaMemcpyDeviceToHost, stream.s),
              cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    return host;
  };
  EXPECT_EQ(read(), std::vector<float>(3, 0.f)) << "captured work ran during the capture";
  ASSERT_EQ(cudaGraphLaunch(exec, stream.s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream.s), cudaSuccess);
  EXPECT_EQ(read(), std::vector<float>(3, 2.f));
  cudaGraphExecDestroy(exec);
  cudaFreeAsync(d, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDevice, AnUnsafeCallDuringACaptureFailsAndSpoilsIt) {
  Stream stream;
  ASSERT_EQ(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ASSERT_EQ(cudaStreamIsCapturing(stream.s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream.s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  cudaGetLastError();
  EXPECT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess) << "the stream is usable again";
}

TEST(EmulatedDevice, ABlocksThreadsMeetAtEachBarrier) {
  Stream stream;
  constexpr int kBlocks = 3, kThreads = 64;
  std::vector<float> x(kBlocks * kThreads);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) + 0.5f;
  float* dx = device_floats(x.size(), stream.s);
  float* dout = device_floats(x.size(), stream.s);
  ASSERT_EQ(cudaMemcpyAsync(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice,
                            stream.s),
            cudaSuccess);
  SDVSR_LAUNCH(block_sums, kBlocks, kThreads, stream.s)(dx, dout);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<float> out(x.size());
  ASSERT_EQ(cudaMemcpyAsync(out.data(), dout, out.size() * sizeof(float), cudaMemcpyDeviceToHost,
                            stream.s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (int b = 0; b < kBlocks; ++b) {
    float sum = 0.f;
    for (int t = 0; t < kThreads; ++t) sum += x[static_cast<size_t>(b * kThreads + t)];
    for (int t = 0; t < kThreads; ++t)
      ASSERT_FLOAT_EQ(out[static_cast<size_t>(b * kThreads + t)], sum) << "block " << b;
  }
  cudaFreeAsync(dx, stream.s);
  cudaFreeAsync(dout, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDevice, WarpShufflesReadTheirWarpsLanes) {
  Stream stream;
  constexpr int kThreads = 64;
  float* d = device_floats(kThreads, stream.s);
  SDVSR_LAUNCH(shuffles, 1, kThreads, stream.s)(d);
  std::vector<float> out(kThreads);
  ASSERT_EQ(cudaMemcpyAsync(out.data(), d, sizeof(float) * kThreads, cudaMemcpyDeviceToHost,
                            stream.s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(out[static_cast<size_t>(t)], 10000.f * (t ^ 1) + 100.f * (t ^ 2) + (t ^ 16)) << t;
  cudaFreeAsync(d, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDevice, WarpMmaMultipliesTheTilesItsFragmentsHold) {
  Stream stream;
  std::vector<__half> a(256), b(128);
  std::vector<float> af(256), bf(128);
  for (int i = 0; i < 256; ++i) {
    a[static_cast<size_t>(i)] = __float2half_rn(static_cast<float>((i * 7) % 13 - 6) / 4.f);
    af[static_cast<size_t>(i)] = __half2float(a[static_cast<size_t>(i)]);
  }
  for (int i = 0; i < 128; ++i) {
    b[static_cast<size_t>(i)] = __float2half_rn(static_cast<float>((i * 5) % 11 - 5) / 8.f);
    bf[static_cast<size_t>(i)] = __half2float(b[static_cast<size_t>(i)]);
  }
  void *da = nullptr, *db = nullptr;
  ASSERT_EQ(cudaMallocAsync(&da, 512, stream.s), cudaSuccess);
  ASSERT_EQ(cudaMallocAsync(&db, 256, stream.s), cudaSuccess);
  float* dc = device_floats(128, stream.s);
  cudaMemcpyAsync(da, a.data(), 512, cudaMemcpyHostToDevice, stream.s);
  cudaMemcpyAsync(db, b.data(), 256, cudaMemcpyHostToDevice, stream.s);
  SDVSR_LAUNCH(tile_product, 1, 32, stream.s)(static_cast<const __half*>(da),
                                             static_cast<const __half*>(db), dc);
  std::vector<float> c(128);
  cudaMemcpyAsync(c.data(), dc, 512, cudaMemcpyDeviceToHost, stream.s);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  for (int row = 0; row < 16; ++row)
    for (int col = 0; col < 8; ++col) {
      float want = 0.f;  // small multiples of 1/32: exact in float
      for (int k = 0; k < 16; ++k)
        want += af[static_cast<size_t>(row * 16 + k)] * bf[static_cast<size_t>(k * 8 + col)];
      EXPECT_EQ(c[static_cast<size_t>(row * 8 + col)], want + 1.f) << row << ", " << col;
    }
  cudaFreeAsync(da, stream.s);
  cudaFreeAsync(db, stream.s);
  cudaFreeAsync(dc, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDevice, AnInvalidLaunchSetsTheLastErrorAndRunsNothing) {
  Stream stream;
  float* d = device_floats(1, stream.s);
  cudaGetLastError();
  SDVSR_LAUNCH(add_one, 1, 2048, stream.s)(d, 1);  // over 1024 threads a block
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "reading the error clears it";
  cudaFreeAsync(d, stream.s);
  cudaStreamSynchronize(stream.s);
}

TEST(EmulatedDeviceDeathTest, AThreadReturningBeforeABarrierOthersReachStopsTheTest) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Stream stream;
        float* d = device_floats(32, stream.s);
        SDVSR_LAUNCH(returns_before_the_barrier, 1, 32, stream.s)(d);
        cudaStreamSynchronize(stream.s);
      },
      "returns_before_the_barrier: block \\(0, 0, 0\\): some threads returned while others wait");
}

TEST(EmulatedDeviceDeathTest, ALaneReturningBeforeAWarpShuffleStopsTheTest) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Stream stream;
        float* d = device_floats(32, stream.s);
        SDVSR_LAUNCH(returns_before_the_shuffle, 1, 32, stream.s)(d);
        cudaStreamSynchronize(stream.s);
      },
      "returns_before_the_shuffle: block \\(0, 0, 0\\): some threads of a warp wait at a "
      "warp-wide operation");
}

TEST(EmulatedDeviceDeathTest, WritingPastAnAllocationStopsTheTestWhenItIsFreed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Stream stream;
        float* d = device_floats(3, stream.s);
        SDVSR_LAUNCH(fill, 1, 4, stream.s)(d, 4, 1.f);  // one element too many
        cudaFreeAsync(d, stream.s);
        cudaStreamSynchronize(stream.s);
      },
      "an allocation of 12 bytes was written past its end \\(byte 12\\)");
}

TEST(EmulatedDeviceDeathTest, FreeingMemoryTwiceStopsTheTest) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Stream stream;
        float* d = device_floats(4, stream.s);
        // Freed outside a recording, then again by each launch of a graph.
        ASSERT_EQ(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
        cudaFreeAsync(d, stream.s);
        cudaGraph_t graph = nullptr;
        cudaStreamEndCapture(stream.s, &graph);
        cudaGraphExec_t exec = nullptr;
        cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphLaunch(exec, stream.s);
        cudaGraphLaunch(exec, stream.s);
        cudaStreamSynchronize(stream.s);
      },
      "frees memory that is not a live device allocation");
}

}  // namespace
