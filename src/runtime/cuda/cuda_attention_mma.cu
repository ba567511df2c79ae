// Attention on tensor cores (float16 / bfloat16 operands, float32 scores and
// accumulators), in the manner of FlashAttention-2: each warp owns 16 query
// rows of one head and the block's warps share tiles of kKeys keys and values
// staged in shared memory. Per tile, S = Q K^T is computed with mma.sync; the
// online softmax runs on S's fragments in registers (a row's maximum and sum
// gathered from the 4 lanes that hold it); P, rounded to the 16-bit type, is
// the A operand of O += P V, since an m16n8 result's fragments are laid out as
// an m16k16 operand's. O is divided by the row sums at the end, so neither the
// score matrix nor P is ever written to memory.
// Numerics, against the scalar kernel: the same float32 softmax, except that
// P is rounded to 16 bits before its product with V (the row sums are not).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>

#include "runtime/cuda/cuda_16bit.cuh"
#include "runtime/cuda/cuda_attention_mma.h"
#include "runtime/cuda/cuda_mma.cuh"

namespace sdvsr::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 16;  // the mma's M
constexpr int kQueryRows = kWarps * kRowsPerWarp;
constexpr int kKeys = kMmaKeyTile;  // keys per shared-memory tile
constexpr int kMaxHeadSize = kMmaMaxHeadSize;

std::atomic<int64_t> g_launches{0};

// Copies rows j0 .. j0 + kKeys - 1 of one head's keys or values into shared
// memory ([key][channel], a row every kD + 8 16-bit units: the pad spreads a
// warp's operand reads over the banks) as 16-bit patterns, zeros past lk and
// past d. `vectors` (d and the row width multiples of 8, 16-byte aligned
// rows): 8 channels of a row per thread at once, neighbouring threads reading
// neighbouring 16 bytes of a row.
template <int kD>
__device__ inline void stage_rows(uint16_t* tile, const uint16_t* head, int64_t j0, int64_t lk,
                                  int64_t width, int d, bool vectors) {
  constexpr int kStride = kD + 8;
  if (vectors) {
    constexpr int kChunks = kD / 8;
    for (int e = static_cast<int>(threadIdx.x); e < kKeys * kChunks; e += blockDim.x) {
      const int jj = e / kChunks, c = e % kChunks * 8;
      uint4 w = make_uint4(0, 0, 0, 0);
      if (j0 + jj < lk && c < d)  // d % 8 == 0: all 8 channels are in
        w = *reinterpret_cast<const uint4*>(head + (j0 + jj) * width + c);
      *reinterpret_cast<uint4*>(tile + jj * kStride + c) = w;
    }
    return;
  }
  for (int e = static_cast<int>(threadIdx.x); e < kKeys * kD; e += blockDim.x) {
    const int jj = e / kD, c = e % kD;
    tile[jj * kStride + c] = j0 + jj < lk && c < d ? head[(j0 + jj) * width + c] : uint16_t{0};
  }
}

// The B operand of P V for keys k0 + 2t, + 1 (and + 8, + 9) at channel `col`:
// two 16-bit reads per register, since neighbours in k are a row apart.
template <int kD>
__device__ inline void value_operand(const uint16_t* values, int k0, int col, int t,
                                     uint32_t vb[2]) {
  constexpr int kStride = kD + 8;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = k0 + 2 * t + r * 8;
    vb[r] = uint32_t{values[key * kStride + col]} |
            (uint32_t{values[(key + 1) * kStride + col]} << 16);
  }
}

// grid (query tiles of kQueryRows, heads, batch), kWarps * 32 threads; kD: the
// head-size bucket (a multiple of 16, >= d); channels d..kD are zeros.
template <typename T, int kD>
__global__ void attention_mma_kernel(const T* q, const T* k, const T* v, float* out, int64_t lq,
                                     int64_t lk, int64_t width, int d, float scale,
                                     bool vectors) {
  constexpr int kStride = kD + 8;  // a staged row (see stage_rows)
  // 16-byte words: 8 channels of a row are stored at once, two neighbours in a
  // key row are read as one operand register.
  __shared__ uint4 key_words[kKeys * kStride / 8];
  __shared__ uint4 value_words[kKeys * kStride / 8];
  uint16_t* keys = reinterpret_cast<uint16_t*>(key_words);      // [key][channel]
  uint16_t* values = reinterpret_cast<uint16_t*>(value_words);  // [key][channel]

  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int g = lane / 4, t = lane % 4;  // PTX's groupID and threadID_in_group
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t row0 = blockIdx.x * int64_t{kQueryRows} + warp * kRowsPerWarp;
  const T* q_head = q + b * lq * width + h * d;
  const auto* k_head = reinterpret_cast<const uint16_t*>(k + b * lk * width + h * d);
  const auto* v_head = reinterpret_cast<const uint16_t*>(v + b * lk * width + h * d);

  // Q as A fragments, one per 16 channels: rows g and g + 8, channels 2t, 2t + 1 (+ 8).
  uint32_t qa[kD / 16][4];
#pragma unroll
  for (int kc = 0; kc < kD / 16; ++kc)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t row = row0 + g + (r % 2) * 8;
      const int col = kc * 16 + 2 * t + (r / 2) * 8;
      const bool in = row < lq;
      const float lo = in && col < d ? widen(q_head[row * width + col]) : 0.f;
      const float hi = in && col + 1 < d ? widen(q_head[row * width + col + 1]) : 0.f;
      qa[kc][r] = pack2<T>(lo, hi);
    }
  // O's accumulators per 8 channels; e / 2 picks the row (g, g + 8), as in S's.
  float o[kD / 8][4];
#pragma unroll
  for (int n = 0; n < kD / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // running max, this lane's sum

  for (int64_t j0 = 0; j0 < lk; j0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile
    stage_rows<kD>(keys, k_head, j0, lk, width, d, vectors);
    stage_rows<kD>(values, v_head, j0, lk, width, d, vectors);
    __syncthreads();

    // S = Q K^T for 16 rows x kKeys keys: B[channel][key] = K[key][channel].
    float s[kKeys / 8][4];
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
      const uint16_t* key_row = keys + (n * 8 + g) * kStride + 2 * t;
#pragma unroll
      for (int kc = 0; kc < kD / 16; ++kc) {
        const uint32_t kb[2] = {load2(key_row + kc * 16), load2(key_row + kc * 16 + 8)};
        mma_16816<T>(s[n], qa[kc], kb);
      }
    }
    // Scaled scores (keys past the end: -inf), each row's maximum over the tile.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = j0 + n * 8 + 2 * t + e % 2;
        s[n][e] = key < lk ? s[n][e] * scale : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[n][e]);
      }
    float correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      // Finite: every tile has a key. 0 on the first tile (m = -inf).
      const float m_new = fmaxf(m[r], tile_max[r]);
      correction[r] = expf(m[r] - m_new);
      m[r] = m_new;
      l[r] *= correction[r];
    }
#pragma unroll
    for (int n = 0; n < kKeys / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = expf(s[n][e] - m[e / 2]);  // P
        l[e / 2] += s[n][e];
      }
#pragma unroll
    for (int n = 0; n < kD / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[n][e] *= correction[e / 2];

    // O += P V, 16 keys at a time: P's two 8-key result tiles are one A operand.
#pragma unroll
    for (int kc = 0; kc < kKeys / 16; ++kc) {
      const float* p0 = s[2 * kc];
      const float* p1 = s[2 * kc + 1];
      const uint32_t pa[4] = {pack2<T>(p0[0], p0[1]), pack2<T>(p0[2], p0[3]),
                              pack2<T>(p1[0], p1[1]), pack2<T>(p1[2], p1[3])};
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) {
        uint32_t vb[2];
        value_operand<kD>(values, kc * 16, n * 8 + g, t, vb);
        mma_16816<T>(o[n], pa, vb);
      }
    }
  }

  // The row sums over the 4 lanes of each row, then O / sum.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    l[r] = 1.f / l[r];
  }
  float* out_head = out + b * lq * width + h * d;
#pragma unroll
  for (int n = 0; n < kD / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = row0 + g + (e / 2) * 8;
      const int col = n * 8 + 2 * t + e % 2;
      if (row < lq && col < d) out_head[row * width + col] = o[n][e] * l[e / 2];
    }
}

template <typename T, int kD>
void launch_for_bucket(dim3 grid, cudaStream_t stream, const void* q, const void* k,
                       const void* v, float* out, int64_t lq, int64_t lk, int64_t width, int d,
                       float scale) {
  // 16-byte loads: d, the row width and the buffers' alignment allow them.
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vectors = d % 8 == 0 && width % 8 == 0 && aligned(k) && aligned(v);
  const auto attention_on_tensor_cores = attention_mma_kernel<T, kD>;
  SDVSR_LAUNCH(attention_on_tensor_cores, grid, kWarps * 32, stream)(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), out, lq, lk,
      width, d, scale, vectors);
}

// The kernel of the smallest head-size bucket that holds d.
template <typename T>
void launch_for_type(dim3 grid, cudaStream_t stream, const void* q, const void* k,
                     const void* v, float* out, int64_t lq, int64_t lk, int64_t width, int d,
                     float scale) {
  if (d <= 32)
    launch_for_bucket<T, 32>(grid, stream, q, k, v, out, lq, lk, width, d, scale);
  else if (d <= 64)
    launch_for_bucket<T, 64>(grid, stream, q, k, v, out, lq, lk, width, d, scale);
  else
    launch_for_bucket<T, kMaxHeadSize>(grid, stream, q, k, v, out, lq, lk, width, d, scale);
}

}  // namespace

bool attention_mma_fits(const Context& c, int64_t head_size, bool causal) {
  return c.compute_major >= 8 && !causal && head_size >= 1 && head_size <= kMaxHeadSize &&
         c.dtype != ComputeDtype::kFloat32;
}

void attention_mma(Context& c, const void* q, const void* k, const void* v, float* out,
                   int64_t batch, int64_t lq, int64_t lk, int64_t width, int64_t heads,
                   int64_t head_size, float scale) {
  require(lk >= 1 && head_size >= 1 && head_size <= kMaxHeadSize, "attention",
          "tensor-core kernel for head size " + std::to_string(head_size) + " and " +
              std::to_string(lk) + " keys");
  const dim3 grid(static_cast<unsigned>((lq + kQueryRows - 1) / kQueryRows),
                  static_cast<unsigned>(heads), static_cast<unsigned>(batch));
  const int d = static_cast<int>(head_size);
  if (c.dtype == ComputeDtype::kFloat16)
    launch_for_type<__half>(grid, c.stream, q, k, v, out, lq, lk, width, d, scale);
  else
    launch_for_type<__nv_bfloat16>(grid, c.stream, q, k, v, out, lq, lk, width, d, scale);
  check_launch("attention (tensor cores)");
  g_launches.fetch_add(1);
}

int64_t attention_mma_launches() { return g_launches.load(); }

}  // namespace sdvsr::cuda
