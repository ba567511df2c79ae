// Activations, pointwise arithmetic and layout moves (concat, slice, permute)
// on the device; the same formulas as cpu_elementwise.cpp.
#include <cmath>

#include "runtime/cuda/cuda_activation.cuh"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

using cuda::apply_activation;
using cuda::blocks_for;
using cuda::kThreads;

__global__ void activation_kernel(const float* x, float* y, int64_t n, Activation a) {
  SDVSR_GRID_STRIDE(i, n) y[i] = apply_activation(x[i], a);
}

enum class Binary { kAdd, kSub, kMul };
__global__ void binary_kernel(const float* a, const float* b, float* y, int64_t n, Binary op) {
  SDVSR_GRID_STRIDE(i, n) {
    const float u = a[i], v = b[i];
    y[i] = op == Binary::kAdd ? u + v : (op == Binary::kSub ? u - v : u * v);
  }
}

__global__ void scale_kernel(const float* x, float* y, int64_t n, float s) {
  SDVSR_GRID_STRIDE(i, n) y[i] = x[i] * s;
}
__global__ void add_scalar_kernel(const float* x, float* y, int64_t n, float s) {
  SDVSR_GRID_STRIDE(i, n) y[i] = x[i] + s;
}
__global__ void clamp_kernel(const float* x, float* y, int64_t n, float lo, float hi) {
  SDVSR_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = isnan(v) ? v : fminf(fmaxf(v, lo), hi);
  }
}
// x [NC, HW] + b[NC]
__global__ void channel_bias_kernel(const float* x, const float* b, float* y, int64_t n,
                                    int64_t hw) {
  SDVSR_GRID_STRIDE(i, n) y[i] = x[i] + b[i / hw];
}

constexpr int kMaxRank = 8;
struct PermuteGeometry {
  int rank;
  int64_t out_shape[kMaxRank];
  int64_t src_stride[kMaxRank];  // source stride of each output dim
};
__global__ void permute_kernel(const float* x, float* y, int64_t n, PermuteGeometry g) {
  SDVSR_GRID_STRIDE(i, n) {
    int64_t rem = i, src = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      src += (rem % g.out_shape[d]) * g.src_stride[d];
      rem /= g.out_shape[d];
    }
    y[i] = x[src];
  }
}

int normalise_dim(int dim, int64_t rank, const char* op) {
  const int64_t d = dim < 0 ? dim + rank : dim;
  cuda::require(d >= 0 && d < rank, op,
                "dim " + std::to_string(dim) + " out of range for rank " + std::to_string(rank));
  return static_cast<int>(d);
}

}  // namespace

Tensor CudaBackend::activation(const Tensor& x_in, Activation a) {
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  Tensor out = c.empty(x.shape());
  const int64_t n = x.numel();
  if (n)
    SDVSR_LAUNCH(activation_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), out.raw_data(), n, a);
  cuda::check_launch("activation");
  return out;
}

static Tensor binary(cuda::Context& c, const Tensor& a_in, const Tensor& b_in, Binary op,
                     const char* name) {
  cuda::require(a_in.shape() == b_in.shape(), name,
                "shapes differ: " + shape_str(a_in.shape()) + " vs " + shape_str(b_in.shape()));
  const Tensor a = c.input(a_in), b = c.input(b_in);
  Tensor out = c.empty(a.shape());
  const int64_t n = a.numel();
  if (n)
    SDVSR_LAUNCH(binary_kernel, blocks_for(n), kThreads, c.stream)(
        a.raw_data(), b.raw_data(), out.raw_data(), n, op);
  cuda::check_launch(name);
  return out;
}

Tensor CudaBackend::add(const Tensor& a, const Tensor& b) { return binary(*ctx_, a, b, Binary::kAdd, "add"); }
Tensor CudaBackend::sub(const Tensor& a, const Tensor& b) { return binary(*ctx_, a, b, Binary::kSub, "sub"); }
Tensor CudaBackend::mul(const Tensor& a, const Tensor& b) { return binary(*ctx_, a, b, Binary::kMul, "mul"); }

Tensor CudaBackend::scale(const Tensor& x_in, float s) {
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  Tensor out = c.empty(x.shape());
  const int64_t n = x.numel();
  if (n)
    SDVSR_LAUNCH(scale_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), out.raw_data(), n, s);
  cuda::check_launch("scale");
  return out;
}

Tensor CudaBackend::add_scalar(const Tensor& x_in, float s) {
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  Tensor out = c.empty(x.shape());
  const int64_t n = x.numel();
  if (n)
    SDVSR_LAUNCH(add_scalar_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), out.raw_data(), n, s);
  cuda::check_launch("add_scalar");
  return out;
}

Tensor CudaBackend::clamp(const Tensor& x_in, float lo, float hi) {
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  Tensor out = c.empty(x.shape());
  const int64_t n = x.numel();
  if (n)
    SDVSR_LAUNCH(clamp_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), out.raw_data(), n, lo, hi);
  cuda::check_launch("clamp");
  return out;
}

Tensor CudaBackend::add_channel_bias(const Tensor& x_in, const Tensor& b_in) {
  cuda::require(x_in.dim() == 4 && b_in.dim() == 2 && b_in.size(0) == x_in.size(0) &&
                    b_in.size(1) == x_in.size(1),
                "add_channel_bias",
                "x " + shape_str(x_in.shape()) + " and bias " + shape_str(b_in.shape()) +
                    " must be [N, C, H, W] and [N, C]");
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in), b = c.input(b_in);
  Tensor out = c.empty(x.shape());
  const int64_t n = x.numel(), hw = x.size(2) * x.size(3);
  if (n)
    SDVSR_LAUNCH(channel_bias_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), b.raw_data(), out.raw_data(), n, hw);
  cuda::check_launch("add_channel_bias");
  return out;
}

Tensor CudaBackend::concat(const std::vector<Tensor>& xs, int dim) {
  cuda::require(!xs.empty(), "concat", "no tensors to concatenate");
  cuda::Context& c = *ctx_;
  const int64_t rank = xs[0].dim();
  const int d = normalise_dim(dim, rank, "concat");
  Shape out_shape = xs[0].shape();
  out_shape[d] = 0;
  for (const Tensor& t : xs) {
    bool fits = t.dim() == rank;
    for (int64_t i = 0; fits && i < rank; ++i) fits = i == d || t.size(i) == xs[0].size(i);
    cuda::require(fits, "concat",
                  "shape " + shape_str(t.shape()) + " does not fit " + shape_str(xs[0].shape()) +
                      " along dim " + std::to_string(d));
    out_shape[d] += t.size(d);
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= out_shape[i];
  for (int64_t i = d + 1; i < rank; ++i) inner *= out_shape[i];
  Tensor out = c.empty(out_shape);
  const int64_t out_row = out_shape[d] * inner;
  int64_t offset = 0;
  for (const Tensor& t_in : xs) {
    const int64_t row = t_in.size(d) * inner;
    if (row && outer) {
      const Tensor t = c.input(t_in);
      // outer rows of `row` floats into rows of out_row floats, at column `offset`.
      cuda::check(cudaMemcpy2DAsync(out.raw_data() + offset, out_row * sizeof(float), t.raw_data(),
                                    row * sizeof(float), row * sizeof(float), outer,
                                    cudaMemcpyDeviceToDevice, c.stream),
                  "concat (cudaMemcpy2DAsync)");
    }
    offset += row;
  }
  return out;
}

Tensor CudaBackend::slice(const Tensor& x_in, int dim, int64_t start, int64_t end) {
  const int d = normalise_dim(dim, x_in.dim(), "slice");
  const int64_t n = x_in.size(d);
  cuda::require(0 <= start && start <= end && end <= n, "slice",
                "range [" + std::to_string(start) + ", " + std::to_string(end) +
                    ") out of bounds for size " + std::to_string(n) + " of " +
                    shape_str(x_in.shape()));
  cuda::Context& c = *ctx_;
  Shape out_shape = x_in.shape();
  out_shape[d] = end - start;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x_in.size(i);
  for (int64_t i = d + 1; i < x_in.dim(); ++i) inner *= x_in.size(i);
  Tensor out = c.empty(out_shape);
  const int64_t row = (end - start) * inner;
  if (row && outer) {
    const Tensor x = c.input(x_in);
    cuda::check(cudaMemcpy2DAsync(out.raw_data(), row * sizeof(float), x.raw_data() + start * inner,
                                  n * inner * sizeof(float), row * sizeof(float), outer,
                                  cudaMemcpyDeviceToDevice, c.stream),
                "slice (cudaMemcpy2DAsync)");
  }
  return out;
}

Tensor CudaBackend::permute(const Tensor& x_in, const std::vector<int>& perm) {
  const int64_t rank = x_in.dim();
  cuda::require(static_cast<int64_t>(perm.size()) == rank, "permute",
                "permutation length differs from rank of " + shape_str(x_in.shape()));
  cuda::require(rank <= kMaxRank, "permute", "rank above 8 in " + shape_str(x_in.shape()));
  std::vector<bool> seen(rank, false);
  for (int p : perm) {
    cuda::require(p >= 0 && p < rank && !seen[p], "permute", "invalid permutation");
    seen[p] = true;
  }
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  std::vector<int64_t> src_stride(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i) src_stride[i] = src_stride[i + 1] * x.size(i + 1);
  PermuteGeometry g{};
  g.rank = static_cast<int>(rank);
  Shape out_shape(rank);
  for (int64_t i = 0; i < rank; ++i) {
    out_shape[i] = g.out_shape[i] = x.size(perm[i]);
    g.src_stride[i] = src_stride[perm[i]];
  }
  Tensor out = c.empty(out_shape);
  const int64_t n = out.numel();
  if (n)
    SDVSR_LAUNCH(permute_kernel, blocks_for(n), kThreads, c.stream)(
        x.raw_data(), out.raw_data(), n, g);
  cuda::check_launch("permute");
  return out;
}

Tensor CudaBackend::nchw_to_tokens(const Tensor& x) {
  cuda::require(x.dim() == 4, "nchw_to_tokens", "x " + shape_str(x.shape()) + " must be 4-D");
  const int64_t n = x.size(0), ch = x.size(1), hw = x.size(2) * x.size(3);
  return permute(x.reshape({n, ch, hw}), {0, 2, 1});
}

Tensor CudaBackend::tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  cuda::require(x.dim() == 3 && x.size(1) == h * w, "tokens_to_nchw",
                "x " + shape_str(x.shape()) + " is not [N, " + std::to_string(h) + "*" +
                    std::to_string(w) + ", C]");
  const int64_t n = x.size(0), ch = x.size(2);
  return permute(x, {0, 2, 1}).reshape({n, ch, h, w});
}

namespace {

// y [N, C, hw] = tokens [N, hw, C] moved back to NCHW, plus the residual: add's one addition.
__global__ void tokens_add_kernel(const float* tokens, const float* residual, float* y,
                                  int64_t total, int64_t c, int64_t hw) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t p = i % hw, ch = (i / hw) % c, n = i / (hw * c);
    y[i] = tokens[(n * hw + p) * c + ch] + residual[i];
  }
}

}  // namespace

Tensor CudaBackend::tokens_to_nchw_add(const Tensor& tokens_in, int64_t h, int64_t w,
                                       const Tensor& residual_in) {
  const char* op = "tokens_to_nchw_add";
  cuda::require(tokens_in.dim() == 3 && tokens_in.size(1) == h * w, op,
                "tokens " + shape_str(tokens_in.shape()) + " are not [N, " + std::to_string(h) +
                    "*" + std::to_string(w) + ", C]");
  const int64_t n = tokens_in.size(0), ch = tokens_in.size(2);
  const Shape out_shape{n, ch, h, w};
  cuda::require(residual_in.shape() == out_shape, op,
                "residual " + shape_str(residual_in.shape()) + " does not match " +
                    shape_str(out_shape));
  cuda::Context& c = *ctx_;
  const Tensor tokens = c.input(tokens_in), residual = c.input(residual_in);
  Tensor out = c.empty(out_shape);
  const int64_t total = out.numel();
  if (total)
    SDVSR_LAUNCH(tokens_add_kernel, blocks_for(total), kThreads, c.stream)(
        tokens.raw_data(), residual.raw_data(), out.raw_data(), total, ch, h * w);
  cuda::check_launch(op);
  return out;
}

}  // namespace sdvsr
