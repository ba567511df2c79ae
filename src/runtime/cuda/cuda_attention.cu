// Multi-head attention without a score matrix (flash-style online softmax):
// each thread owns one query row of one head, keys and values stream through
// shared memory in tiles, and the running max / sum rescale the accumulator.
// Written for clarity first (float32 parity). The kernel is built per head-size
// bucket (kD: 32, 64, 128, 256; the head size d <= kD): the query and the
// accumulator are arrays of kD with every loop unrolled over kD, so they can
// live in registers instead of local memory. Head sizes above 256 are refused.
// A float16 / bfloat16 backend reads q, k and v rounded to 16 bits (half the
// memory traffic); scores, softmax and the accumulator stay float32. On sm_80
// and later those backends take the tensor-core kernel instead
// (cuda_attention_mma.cu) unless the mask is causal or a head is over 128.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "runtime/cuda/cuda_16bit.cuh"
#include "runtime/cuda/cuda_attention_mma.h"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kQueries = 64;  // threads per block, one query each
constexpr int kKeyTile = 16;  // keys per shared-memory tile

// q [B, Lq, W], k, v [B, Lk, W] with W = heads * d; grid (query tiles, heads, B).
// T: the element type q, k and v are read in (float, __half, __nv_bfloat16);
// d <= kD. Channels from d to kD are zeros in q and the tiles, so the sums
// over kD are the sums over d.
template <typename T, int kD>
__global__ void attention_kernel(const T* q, const T* k, const T* v, float* out,
                                 int64_t lq, int64_t lk, int64_t width, int d, float scale,
                                 bool causal) {
  __shared__ float ks[kKeyTile * kD];
  __shared__ float vs[kKeyTile * kD];
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t i = blockIdx.x * int64_t{kQueries} + threadIdx.x;  // query row
  const bool active = i < lq;
  const T* qrow = q + (b * lq + (active ? i : 0)) * width + h * d;
  float qv[kD], acc[kD];
#pragma unroll
  for (int c = 0; c < kD; ++c) {
    qv[c] = c < d ? cuda::widen(qrow[c]) : 0.f;
    acc[c] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  // Causal: no key beyond the block's last query is needed.
  const int64_t last_query = min(lq, (blockIdx.x + 1) * int64_t{kQueries}) - 1;
  const int64_t keys = causal ? min(lk, last_query + 1) : lk;
  for (int64_t j0 = 0; j0 < keys; j0 += kKeyTile) {
    const int tile = static_cast<int>(min(int64_t{kKeyTile}, keys - j0));
    __syncthreads();
    for (int e = threadIdx.x; e < tile * kD; e += blockDim.x) {
      const int jj = e / kD, c = e % kD;
      const int64_t src = (b * lk + j0 + jj) * width + h * d + c;
      ks[e] = c < d ? cuda::widen(k[src]) : 0.f;
      vs[e] = c < d ? cuda::widen(v[src]) : 0.f;
    }
    __syncthreads();
    if (!active) continue;
    for (int jj = 0; jj < tile; ++jj) {
      const int64_t j = j0 + jj;
      if (causal && j > i) break;
      float s = 0.f;
#pragma unroll
      for (int c = 0; c < kD; ++c) s += qv[c] * ks[jj * kD + c];
      s *= scale;
      const float m_new = fmaxf(m, s);
      const float correction = expf(m - m_new);  // 0 for the first key (m = -inf)
      const float p = expf(s - m_new);
      l = l * correction + p;
#pragma unroll
      for (int c = 0; c < kD; ++c) acc[c] = acc[c] * correction + p * vs[jj * kD + c];
      m = m_new;
    }
  }
  if (!active) return;
  const float inv = 1.f / l;
  float* orow = out + (b * lq + i) * width + h * d;
#pragma unroll
  for (int c = 0; c < kD; ++c)
    if (c < d) orow[c] = acc[c] * inv;
}

template <typename T, int kD>
void launch_attention(dim3 grid, cudaStream_t stream, const T* q, const T* k, const T* v,
                      float* out, int64_t lq, int64_t lk, int64_t width, int d, float scale,
                      bool causal) {
  const auto attention_for_head_size = attention_kernel<T, kD>;
  SDVSR_LAUNCH(attention_for_head_size, grid, kQueries, stream)(q, k, v, out, lq, lk, width, d,
                                                                scale, causal);
}

// The kernel of the smallest head-size bucket that holds d.
template <typename T>
void launch_attention(dim3 grid, cudaStream_t stream, const T* q, const T* k, const T* v,
                      float* out, int64_t lq, int64_t lk, int64_t width, int d, float scale,
                      bool causal) {
  if (d <= 32)
    launch_attention<T, 32>(grid, stream, q, k, v, out, lq, lk, width, d, scale, causal);
  else if (d <= 64)
    launch_attention<T, 64>(grid, stream, q, k, v, out, lq, lk, width, d, scale, causal);
  else if (d <= 128)
    launch_attention<T, 128>(grid, stream, q, k, v, out, lq, lk, width, d, scale, causal);
  else
    launch_attention<T, kMaxHeadDim>(grid, stream, q, k, v, out, lq, lk, width, d, scale,
                                     causal);
}

}  // namespace

Tensor CudaBackend::attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                              int heads, float scale, bool causal) {
  cuda::require(q_in.dim() == 3 && k_in.dim() == 3 && v_in.dim() == 3 && heads > 0 &&
                    q_in.size(0) == k_in.size(0) && k_in.shape() == v_in.shape() &&
                    q_in.size(2) == k_in.size(2) && q_in.size(2) % heads == 0,
                "attention",
                "q " + shape_str(q_in.shape()) + ", k " + shape_str(k_in.shape()) + ", v " +
                    shape_str(v_in.shape()) + " with " + std::to_string(heads) + " heads");
  const int64_t batch = q_in.size(0), lq = q_in.size(1), lk = k_in.size(1), width = q_in.size(2);
  const int64_t d = width / heads;
  cuda::require(d <= kMaxHeadDim, "attention",
                "head size " + std::to_string(d) + " above " + std::to_string(kMaxHeadDim));
  cuda::Context& c = *ctx_;
  const bool reduced = dtype_ != ComputeDtype::kFloat32;
  const Tensor q = reduced ? Tensor() : c.input(q_in), k = reduced ? Tensor() : c.input(k_in),
               v = reduced ? Tensor() : c.input(v_in);
  Tensor out = c.empty({batch, lq, width});
  if (out.numel() == 0) return out;
  if (lk == 0) {  // softmax over nothing: the CPU path gives NaN rows (0 / 0)
    cuda::check(cudaMemsetAsync(out.raw_data(), 0xff, out.numel() * sizeof(float), c.stream),
                "attention");
    return out;
  }
  const dim3 grid(static_cast<unsigned>((lq + kQueries - 1) / kQueries),
                  static_cast<unsigned>(heads), static_cast<unsigned>(batch));
  const int head = static_cast<int>(d);
  if (!reduced) {
    launch_attention(grid, c.stream, q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(),
                     lq, lk, width, head, scale, causal);
  } else {
    const cuda::Reduced q16 = c.reduced(q_in, false), k16 = c.reduced(k_in, false),
                        v16 = c.reduced(v_in, false);
    if (cuda::attention_mma_fits(c, d, causal))
      cuda::attention_mma(c, q16.get(), k16.get(), v16.get(), out.raw_data(), batch, lq, lk,
                          width, heads, d, scale);
    else if (dtype_ == ComputeDtype::kFloat16)
      launch_attention(grid, c.stream, static_cast<const __half*>(q16.get()),
                       static_cast<const __half*>(k16.get()),
                       static_cast<const __half*>(v16.get()), out.raw_data(), lq, lk, width,
                       head, scale, causal);
    else
      launch_attention(grid, c.stream, static_cast<const __nv_bfloat16*>(q16.get()),
                       static_cast<const __nv_bfloat16*>(k16.get()),
                       static_cast<const __nv_bfloat16*>(v16.get()), out.raw_data(), lq, lk,
                       width, head, scale, causal);
  }
  cuda::check_launch("attention");
  return out;
}

}  // namespace sdvsr
