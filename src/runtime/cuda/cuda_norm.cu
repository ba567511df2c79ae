// Normalisation layers and softmax on the device, with cpu_norm.cpp's math:
// biased variance, statistics in double over two passes (mean, then squared
// deviations), the affine folded the way PyTorch folds it. One block per row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "runtime/cuda/cuda_16bit.cuh"
#include "runtime/cuda/cuda_activation.cuh"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

using cuda::blocks_for;
using cuda::kThreads;

constexpr int kRowThreads = 256;

// Sum of v over the block (every thread gets the result).
template <typename T>
__device__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();
  return total;
}

__device__ float block_max(float v, float* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] = fmaxf(shared[threadIdx.x], shared[threadIdx.x + s]);
    __syncthreads();
  }
  const float total = shared[0];
  __syncthreads();
  return total;
}

// Per contiguous row of `len`: mean (as float) and 1 / sqrt(var + eps) (double, then float).
__global__ void row_moments_kernel(const float* x, int64_t len, float eps, float* mean_out,
                                   float* rstd_out) {
  __shared__ double shared[kRowThreads];
  const float* row = x + blockIdx.x * len;
  double s = 0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += row[i];
  const double mean = len ? block_sum(s, shared) / static_cast<double>(len) : 0.0;
  double sq = 0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
    const double d = row[i] - mean;
    sq += d * d;
  }
  const double var = len ? block_sum(sq, shared) / static_cast<double>(len) : 0.0;
  if (threadIdx.x == 0) {
    mean_out[blockIdx.x] = static_cast<float>(mean);
    rstd_out[blockIdx.x] = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
  }
}

// The statistics of x [N, C, spatial] in groups of cg channels and the affine
// parameters: y = act(x * a + b) per channel.
struct GroupApply {
  int64_t c, spatial, cg;
  int groups;
  const float *mean, *rstd, *gamma, *beta;
  Activation act;
  __device__ float operator()(float v, int64_t n, int64_t ch) const {
    const int64_t ng = n * groups + ch / cg;
    const float a = rstd[ng] * (gamma ? gamma[ch] : 1.f);
    const float b = -a * mean[ng] + (beta ? beta[ch] : 0.f);
    return cuda::apply_activation(v * a + b, act);
  }
};

// Out: float, or a 16-bit type for a reduced convolution's operand (rounded
// to nearest even, as round_to_reduced rounds).
template <typename Out>
__global__ void group_apply_kernel(const float* x, Out* y, int64_t total, GroupApply g) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t nc = i / g.spatial;
    y[i] = cuda::narrow<Out>(g(x[i], nc / g.c, nc % g.c));
  }
}

// The same into tokens [N, spatial, C] (a Transformer2D's input), one thread
// per token element.
__global__ void group_apply_tokens_kernel(const float* x, float* y, int64_t total, GroupApply g) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t ch = i % g.c, p = (i / g.c) % g.spatial, n = i / (g.c * g.spatial);
    y[i] = g(x[(n * g.c + ch) * g.spatial + p], n, ch);
  }
}

__global__ void layer_apply_kernel(const float* x, float* y, int64_t total, int64_t width,
                                   const float* mean, const float* rstd, const float* gamma,
                                   const float* beta) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t r = i / width, j = i % width;
    const float shift = -rstd[r] * mean[r];
    float v = x[i] * rstd[r] + shift;
    if (gamma) v *= gamma[j];
    if (beta) v += beta[j];
    y[i] = v;
  }
}

__global__ void instance_apply_kernel(const float* x, float* y, int64_t total, int64_t spatial,
                                      const float* mean, const float* rstd) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t r = i / spatial;
    y[i] = (x[i] - mean[r]) * rstd[r];
  }
}

__global__ void batch_norm_kernel(const float* x, float* y, int64_t total, int64_t c,
                                  int64_t spatial, const float* rmean, const float* rvar,
                                  const float* gamma, const float* beta, float eps) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t ch = (i / spatial) % c;
    const float invstd = 1.f / sqrtf(rvar[ch] + eps);
    const float alpha = (gamma ? gamma[ch] : 1.f) * invstd;
    const float shift = (beta ? beta[ch] : 0.f) - rmean[ch] * alpha;
    y[i] = x[i] * alpha + shift;
  }
}

__global__ void softmax_kernel(const float* x, float* y, int64_t width) {
  __shared__ float shared[kRowThreads];
  const float* src = x + blockIdx.x * width;
  float* dst = y + blockIdx.x * width;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) mx = fmaxf(mx, src[j]);
  mx = block_max(mx, shared);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
    const float e = expf(src[j] - mx);
    dst[j] = e;
    s += e;
  }
  const float inv = 1.f / block_sum(s, shared);
  for (int64_t j = threadIdx.x; j < width; j += blockDim.x) dst[j] *= inv;
}

void check_channel_vector(const Tensor* t, int64_t c, const char* op, const char* what) {
  cuda::require(!t || (t->dim() == 1 && t->size(0) == c), op,
                std::string(what) + " must have shape [" + std::to_string(c) + "], got " +
                    (t ? shape_str(t->shape()) : std::string("?")));
}

// Mean and rstd of `rows` contiguous rows of `len` floats.
struct RowStats {
  Tensor mean, rstd;
};
RowStats row_stats(cuda::Context& c, const Tensor& x, int64_t rows, int64_t len, float eps) {
  RowStats s{c.empty({rows}), c.empty({rows})};
  if (rows > 0)
    SDVSR_LAUNCH(row_moments_kernel, static_cast<unsigned>(rows), kRowThreads, c.stream)(
        x.raw_data(), len, eps, s.mean.raw_data(), s.rstd.raw_data());
  cuda::check_launch("norm statistics");
  return s;
}

const float* optional_ptr(cuda::Context& c, const Tensor* t, Tensor& slot) {
  if (!t) return nullptr;
  slot = c.input(*t);
  return slot.raw_data();
}

}  // namespace

namespace {

// Where group_norm_into writes: float32 NCHW, float32 tokens [N, H*W, C] (x
// 4-D), or NCHW in the context's 16-bit dtype (x 4-D).
enum class NormOutput { kNchw, kTokens, kReduced };

// act(group_norm(x)) as `into` says; a kReduced result goes to *out16 (the
// returned tensor is then empty).
Tensor group_norm_into(cuda::Context& ctx, const Tensor& x_in, int groups, const Tensor* gamma,
                       const Tensor* beta, float eps, Activation act, NormOutput into,
                       const char* op, cuda::Reduced* out16 = nullptr) {
  const bool tokens = into == NormOutput::kTokens, reduced = into == NormOutput::kReduced;
  cuda::require(x_in.dim() >= 2 && groups > 0 && x_in.size(1) % groups == 0, op,
                "x " + shape_str(x_in.shape()) + " cannot be split into " +
                    std::to_string(groups) + " groups");
  cuda::require((!tokens && !reduced) || x_in.dim() == 4, op,
                "x " + shape_str(x_in.shape()) + " must be [N, C, H, W]");
  const int64_t n = x_in.size(0), c = x_in.size(1);
  const int64_t spatial = x_in.numel() / std::max<int64_t>(n * c, 1);
  const int64_t cg = c / groups;
  check_channel_vector(gamma, c, op, "gamma");
  check_channel_vector(beta, c, op, "beta");
  const Tensor x = ctx.input(x_in);
  Tensor out = reduced ? Tensor() : ctx.empty(tokens ? Shape{n, spatial, c} : x.shape());
  const int64_t total = x.numel();
  if (reduced) *out16 = total > 0 ? ctx.scratch(static_cast<size_t>(total) * 2) : nullptr;
  if (total == 0) return out;
  const RowStats s = row_stats(ctx, x, n * groups, cg * spatial, eps);
  Tensor g, b;
  const GroupApply apply{c,
                         spatial,
                         cg,
                         groups,
                         s.mean.raw_data(),
                         s.rstd.raw_data(),
                         optional_ptr(ctx, gamma, g),
                         optional_ptr(ctx, beta, b),
                         act};
  if (tokens) {
    SDVSR_LAUNCH(group_apply_tokens_kernel, blocks_for(total), kThreads, ctx.stream)(
        x.raw_data(), out.raw_data(), total, apply);
  } else if (!reduced) {
    const auto group_apply = group_apply_kernel<float>;
    SDVSR_LAUNCH(group_apply, blocks_for(total), kThreads, ctx.stream)(
        x.raw_data(), out.raw_data(), total, apply);
  } else if (ctx.dtype == ComputeDtype::kFloat16) {
    const auto group_apply_half = group_apply_kernel<__half>;
    SDVSR_LAUNCH(group_apply_half, blocks_for(total), kThreads, ctx.stream)(
        x.raw_data(), static_cast<__half*>(out16->get()), total, apply);
  } else {
    const auto group_apply_bfloat16 = group_apply_kernel<__nv_bfloat16>;
    SDVSR_LAUNCH(group_apply_bfloat16, blocks_for(total), kThreads, ctx.stream)(
        x.raw_data(), static_cast<__nv_bfloat16*>(out16->get()), total, apply);
  }
  cuda::check_launch(op);
  return out;
}

}  // namespace

Tensor CudaBackend::group_norm(const Tensor& x, int groups, const Tensor* gamma,
                               const Tensor* beta, float eps) {
  return group_norm_into(*ctx_, x, groups, gamma, beta, eps, Activation::kNone,
                         NormOutput::kNchw, "group_norm");
}

Tensor CudaBackend::group_norm_act(const Tensor& x, int groups, const Tensor* gamma,
                                   const Tensor* beta, float eps, Activation a) {
  return group_norm_into(*ctx_, x, groups, gamma, beta, eps, a, NormOutput::kNchw,
                         "group_norm_act");
}

Tensor CudaBackend::group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) {
  return group_norm_into(*ctx_, x, norm.groups, norm.gamma, norm.beta, norm.eps, norm.act,
                         NormOutput::kTokens, "group_norm_act_tokens");
}

cuda::Reduced cuda::group_norm_act_reduced(Context& c, const Tensor& x, const GroupNormAct& norm,
                                           const char* op) {
  cuda::require(c.dtype != ComputeDtype::kFloat32, op, "a float32 backend has no 16-bit operands");
  cuda::Reduced out;
  group_norm_into(c, x, norm.groups, norm.gamma, norm.beta, norm.eps, norm.act,
                  NormOutput::kReduced, op, &out);
  return out;
}

Tensor CudaBackend::layer_norm(const Tensor& x_in, const Tensor* gamma, const Tensor* beta,
                               float eps) {
  cuda::require(x_in.dim() >= 1, "layer_norm", "x must have at least one dimension");
  const int64_t width = x_in.size(-1);
  const int64_t rows = width ? x_in.numel() / width : 0;
  check_channel_vector(gamma, width, "layer_norm", "gamma");
  check_channel_vector(beta, width, "layer_norm", "beta");
  cuda::Context& ctx = *ctx_;
  const Tensor x = ctx.input(x_in);
  Tensor out = ctx.empty(x.shape());
  const int64_t total = x.numel();
  if (total == 0) return out;
  const RowStats s = row_stats(ctx, x, rows, width, eps);
  Tensor g, b;
  SDVSR_LAUNCH(layer_apply_kernel, blocks_for(total), kThreads, ctx.stream)(
      x.raw_data(), out.raw_data(), total, width, s.mean.raw_data(), s.rstd.raw_data(),
      optional_ptr(ctx, gamma, g), optional_ptr(ctx, beta, b));
  cuda::check_launch("layer_norm");
  return out;
}

Tensor CudaBackend::batch_norm(const Tensor& x_in, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor* gamma, const Tensor* beta,
                               float eps) {
  cuda::require(x_in.dim() >= 2, "batch_norm", "x " + shape_str(x_in.shape()) + " must be [N, C, ...]");
  const int64_t n = x_in.size(0), c = x_in.size(1);
  const int64_t spatial = x_in.numel() / std::max<int64_t>(n * c, 1);
  check_channel_vector(&running_mean, c, "batch_norm", "running_mean");
  check_channel_vector(&running_var, c, "batch_norm", "running_var");
  check_channel_vector(gamma, c, "batch_norm", "gamma");
  check_channel_vector(beta, c, "batch_norm", "beta");
  cuda::Context& ctx = *ctx_;
  const Tensor x = ctx.input(x_in);
  const Tensor rm = ctx.input(running_mean), rv = ctx.input(running_var);
  Tensor out = ctx.empty(x.shape());
  const int64_t total = x.numel();
  if (total == 0) return out;
  Tensor g, b;
  SDVSR_LAUNCH(batch_norm_kernel, blocks_for(total), kThreads, ctx.stream)(
      x.raw_data(), out.raw_data(), total, c, spatial, rm.raw_data(), rv.raw_data(),
      optional_ptr(ctx, gamma, g), optional_ptr(ctx, beta, b), eps);
  cuda::check_launch("batch_norm");
  return out;
}

Tensor CudaBackend::instance_norm(const Tensor& x_in, float eps) {
  cuda::require(x_in.dim() >= 3, "instance_norm",
                "x " + shape_str(x_in.shape()) + " must be [N, C, H, W] or [N, C, L]");
  const int64_t rows = x_in.size(0) * x_in.size(1);
  const int64_t spatial = x_in.numel() / std::max<int64_t>(rows, 1);
  cuda::Context& ctx = *ctx_;
  const Tensor x = ctx.input(x_in);
  Tensor out = ctx.empty(x.shape());
  const int64_t total = x.numel();
  if (total == 0) return out;
  const RowStats s = row_stats(ctx, x, rows, spatial, eps);
  SDVSR_LAUNCH(instance_apply_kernel, blocks_for(total), kThreads, ctx.stream)(
      x.raw_data(), out.raw_data(), total, spatial, s.mean.raw_data(), s.rstd.raw_data());
  cuda::check_launch("instance_norm");
  return out;
}

Tensor CudaBackend::softmax(const Tensor& x_in) {
  cuda::require(x_in.dim() >= 1, "softmax", "x must have at least one dimension");
  const int64_t width = x_in.size(-1);
  const int64_t rows = width ? x_in.numel() / width : 0;
  cuda::Context& ctx = *ctx_;
  const Tensor x = ctx.input(x_in);
  Tensor out = ctx.empty(x.shape());
  if (rows > 0)
    SDVSR_LAUNCH(softmax_kernel, static_cast<unsigned>(rows), kRowThreads, ctx.stream)(
        x.raw_data(), out.raw_data(), width);
  cuda::check_launch("softmax");
  return out;
}

}  // namespace sdvsr
