// Activations, pointwise arithmetic and layout moves (concat, slice, permute).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_dnnl.h"

namespace sdvsr {
namespace {

// d[i] = f(s[i]); d may be s.
template <typename F>
void map_unary_into(const float* s, float* d, int64_t n, F f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) d[i] = f(s[i]);
}

template <typename F>
Tensor map_unary(const Tensor& x, F f) {
  Tensor out = Tensor::uninitialized(x.shape());
  map_unary_into(x.data(), out.data(), x.numel(), f);
  return out;
}

// out[i] = f(a[i], b[i]); out is a new tensor unless given (it may be a).
template <typename F>
Tensor map_binary(const Tensor& a, const Tensor& b, const char* op, F f, Tensor out = Tensor()) {
  cpu::check(a.shape() == b.shape(), op,
             "shapes differ: " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
  if (!out.defined()) out = Tensor::uninitialized(a.shape());
  const float* sa = a.data();
  const float* sb = b.data();
  float* d = out.data();
  const int64_t n = a.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) d[i] = f(sa[i], sb[i]);
  return out;
}

int normalise_dim(int dim, int64_t rank, const char* op) {
  const int64_t d = dim < 0 ? dim + rank : dim;
  cpu::check(d >= 0 && d < rank, op,
             "dim " + std::to_string(dim) + " out of range for rank " + std::to_string(rank));
  return static_cast<int>(d);
}

}  // namespace

Tensor CpuBackend::activation(const Tensor& x, Activation a) {
  // cpu::eltwise_for picks the oneDNN form; group_norm_act applies the same.
  dnnl::algorithm alg;
  float alpha;
  if (cpu::eltwise_for(a, alg, alpha)) return cpu::dnnl_eltwise(x, alg, alpha);
  switch (a) {
    case Activation::kNone:
      return x.clone();
    case Activation::kReLU:
      return map_unary(x, [](float v) { return cpu::relu(v); });
    default:
      break;
  }
  cpu::check(false, "activation", "unknown activation");
  return {};
}

Tensor CpuBackend::geglu(const Tensor& x) {
  cpu::check(x.dim() >= 1 && x.size(-1) % 2 == 0, "geglu",
             "x " + shape_str(x.shape()) + " needs an even last dimension (hidden | gate)");
  const int64_t inner = x.size(-1) / 2;
  const int64_t rows = inner ? x.numel() / (2 * inner) : 0;
  Shape out_shape = x.shape();
  out_shape.back() = inner;
  Tensor out = Tensor::uninitialized(out_shape);
  if (rows == 0 || inner == 0) return out;
  dnnl::algorithm alg;
  float alpha;
  cpu::eltwise_for(Activation::kGELU, alg, alpha);
  // Rows go in chunks of about 16K gate values: the gates are gathered into a
  // contiguous buffer, run through the same GELU primitive activation() uses,
  // and multiplied by their hidden halves while still in cache, so the
  // projection is read once. hidden * gelu(gate) in mul's operand order.
  const int64_t chunk_rows = std::max<int64_t>(1, 16384 / inner);
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel
  {
    std::vector<float> gates(static_cast<size_t>(chunk_rows * inner));
#pragma omp for schedule(static)
    for (int64_t ck = 0; ck < chunks; ++ck) {
      const int64_t r0 = ck * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
      for (int64_t r = r0; r < r1; ++r)
        std::memcpy(gates.data() + (r - r0) * inner, xs + (2 * r + 1) * inner,
                    static_cast<size_t>(inner) * sizeof(float));
      cpu::dnnl_eltwise_span(gates.data(), gates.data(), (r1 - r0) * inner, alg, alpha);
      for (int64_t r = r0; r < r1; ++r) {
        const float* hidden = xs + 2 * r * inner;
        const float* g = gates.data() + (r - r0) * inner;
        float* d = os + r * inner;
        for (int64_t j = 0; j < inner; ++j) d[j] = hidden[j] * g[j];
      }
    }
  }
  return out;
}

constexpr auto kPlus = [](float u, float v) { return u + v; };

Tensor CpuBackend::add(const Tensor& a, const Tensor& b) { return map_binary(a, b, "add", kPlus); }

// ---- in place when the caller gave up the only reference (same arithmetic) ----
Tensor CpuBackend::activation_in_place(Tensor x, Activation a) {
  if (!x.is_sole_writable_host_copy()) return activation(x, a);
  dnnl::algorithm alg;
  float alpha;
  if (cpu::eltwise_for(a, alg, alpha)) {
    cpu::dnnl_eltwise_span(x.data(), x.data(), x.numel(), alg, alpha);  // in place
    return x;
  }
  if (a == Activation::kNone) return x;
  if (a == Activation::kReLU) {
    map_unary_into(x.data(), x.data(), x.numel(), [](float v) { return cpu::relu(v); });
    return x;
  }
  return activation(x, a);  // reports the unknown activation
}

Tensor CpuBackend::add_in_place(Tensor a, const Tensor& b) {
  if (!a.is_sole_writable_host_copy()) return add(a, b);
  return map_binary(a, b, "add", kPlus, a);
}

Tensor CpuBackend::scale_in_place(Tensor x, float s) {
  if (!x.is_sole_writable_host_copy()) return scale(x, s);
  map_unary_into(x.data(), x.data(), x.numel(), [s](float v) { return v * s; });
  return x;
}
Tensor CpuBackend::sub(const Tensor& a, const Tensor& b) {
  return map_binary(a, b, "sub", [](float u, float v) { return u - v; });
}
Tensor CpuBackend::mul(const Tensor& a, const Tensor& b) {
  return map_binary(a, b, "mul", [](float u, float v) { return u * v; });
}
Tensor CpuBackend::scale(const Tensor& x, float s) {
  return map_unary(x, [s](float v) { return v * s; });
}
Tensor CpuBackend::add_scalar(const Tensor& x, float s) {
  return map_unary(x, [s](float v) { return v + s; });
}
Tensor CpuBackend::clamp(const Tensor& x, float lo, float hi) {
  return map_unary(x, [lo, hi](float v) { return std::isnan(v) ? v : std::min(std::max(v, lo), hi); });
}

Tensor CpuBackend::add_channel_bias(const Tensor& x, const Tensor& b) {
  cpu::check(x.dim() == 4 && b.dim() == 2 && b.size(0) == x.size(0) && b.size(1) == x.size(1),
             "add_channel_bias",
             "x " + shape_str(x.shape()) + " and bias " + shape_str(b.shape()) +
                 " must be [N, C, H, W] and [N, C]");
  const int64_t nc = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = Tensor::uninitialized(x.shape());
  const float* s = x.data();
  const float* bv = b.data();
  float* d = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nc; ++i)
    for (int64_t j = 0; j < hw; ++j) d[i * hw + j] = s[i * hw + j] + bv[i];
  return out;
}

Tensor CpuBackend::concat(const std::vector<Tensor>& xs, int dim) {
  cpu::check(!xs.empty(), "concat", "no tensors to concatenate");
  const int64_t rank = xs[0].dim();
  const int d = normalise_dim(dim, rank, "concat");
  Shape out_shape = xs[0].shape();
  out_shape[d] = 0;
  for (const Tensor& t : xs) {
    bool fits = t.dim() == rank;
    for (int64_t i = 0; fits && i < rank; ++i)
      fits = i == d || t.size(i) == xs[0].size(i);
    cpu::check(fits, "concat",
               "shape " + shape_str(t.shape()) + " does not fit " + shape_str(xs[0].shape()) +
                   " along dim " + std::to_string(d));
    out_shape[d] += t.size(d);
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= out_shape[i];
  for (int64_t i = d + 1; i < rank; ++i) inner *= out_shape[i];
  Tensor out = Tensor::uninitialized(out_shape);
  const int64_t out_row = out_shape[d] * inner;
  int64_t offset = 0;
  for (const Tensor& t : xs) {
    const int64_t row = t.size(d) * inner;
    const float* s = t.data();
    float* o = out.data() + offset;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < outer; ++i)
      std::memcpy(o + i * out_row, s + i * row, static_cast<size_t>(row) * sizeof(float));
    offset += row;
  }
  return out;
}

Tensor CpuBackend::slice(const Tensor& x, int dim, int64_t start, int64_t end) {
  const int d = normalise_dim(dim, x.dim(), "slice");
  const int64_t n = x.size(d);
  cpu::check(0 <= start && start <= end && end <= n, "slice",
             "range [" + std::to_string(start) + ", " + std::to_string(end) +
                 ") out of bounds for size " + std::to_string(n) + " of " + shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape[d] = end - start;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  Tensor out = Tensor::uninitialized(out_shape);
  const int64_t row = (end - start) * inner;
  const float* s = x.data() + start * inner;
  float* o = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < outer; ++i)
    std::memcpy(o + i * row, s + i * n * inner, static_cast<size_t>(row) * sizeof(float));
  return out;
}

namespace {
// [B, R, C] -> [B, C, R], blocked for cache friendliness; plus `addend` (in
// the output's layout, one float addition per element as add makes it) when given.
Tensor transpose_last_two(const Tensor& x, int64_t b, int64_t r, int64_t c, Shape out_shape,
                          const Tensor* addend = nullptr) {
  Tensor out = Tensor::uninitialized(std::move(out_shape));
  constexpr int64_t kBlock = 32;
  const float* s = x.data();
  const float* a = addend ? addend->data() : nullptr;
  float* d = out.data();
  const int64_t rb = (r + kBlock - 1) / kBlock, cb = (c + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t blk = 0; blk < rb * cb; ++blk) {
      const int64_t r0 = (blk / cb) * kBlock, c0 = (blk % cb) * kBlock;
      const int64_t r1 = std::min(r, r0 + kBlock), c1 = std::min(c, c0 + kBlock);
      const float* sb = s + bi * r * c;
      float* db = d + bi * r * c;
      if (a) {
        const float* ab = a + bi * r * c;
        for (int64_t i = r0; i < r1; ++i)
          for (int64_t j = c0; j < c1; ++j) db[j * r + i] = sb[i * c + j] + ab[j * r + i];
      } else {
        for (int64_t i = r0; i < r1; ++i)
          for (int64_t j = c0; j < c1; ++j) db[j * r + i] = sb[i * c + j];
      }
    }
  return out;
}
}  // namespace

Tensor CpuBackend::nchw_to_tokens(const Tensor& x) {
  cpu::check(x.dim() == 4, "nchw_to_tokens", "x " + shape_str(x.shape()) + " must be 4-D");
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  return transpose_last_two(x, n, c, hw, {n, hw, c});
}

Tensor CpuBackend::tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  cpu::check(x.dim() == 3 && x.size(1) == h * w, "tokens_to_nchw",
             "x " + shape_str(x.shape()) + " is not [N, " + std::to_string(h) + "*" +
                 std::to_string(w) + ", C]");
  const int64_t n = x.size(0), c = x.size(2);
  return transpose_last_two(x, n, h * w, c, {n, c, h, w});
}

Tensor CpuBackend::tokens_to_nchw_add(const Tensor& tokens, int64_t h, int64_t w,
                                      const Tensor& residual) {
  cpu::check(tokens.dim() == 3 && tokens.size(1) == h * w, "tokens_to_nchw_add",
             "tokens " + shape_str(tokens.shape()) + " are not [N, " + std::to_string(h) + "*" +
                 std::to_string(w) + ", C]");
  const int64_t n = tokens.size(0), c = tokens.size(2);
  const Shape shape{n, c, h, w};
  cpu::check(residual.shape() == shape, "tokens_to_nchw_add",
             "residual " + shape_str(residual.shape()) + " is not " + shape_str(shape));
  return transpose_last_two(tokens, n, h * w, c, shape, &residual);
}

Tensor CpuBackend::permute(const Tensor& x, const std::vector<int>& perm) {
  const int64_t rank = x.dim();
  cpu::check(static_cast<int64_t>(perm.size()) == rank, "permute",
             "permutation length differs from rank of " + shape_str(x.shape()));
  std::vector<bool> seen(rank, false);
  for (int p : perm) {
    cpu::check(p >= 0 && p < rank && !seen[p], "permute", "invalid permutation");
    seen[p] = true;
  }
  std::vector<int64_t> src_stride(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i) src_stride[i] = src_stride[i + 1] * x.size(i + 1);
  Shape out_shape(rank);
  std::vector<int64_t> stride(rank);  // source stride of each output dim
  for (int64_t i = 0; i < rank; ++i) {
    out_shape[i] = x.size(perm[i]);
    stride[i] = src_stride[perm[i]];
  }
  Tensor out = Tensor::uninitialized(out_shape);
  if (rank == 0 || out.numel() == 0) {
    if (out.numel()) out.data()[0] = x.data()[0];
    return out;
  }
  const int64_t last = out_shape[rank - 1], last_stride = stride[rank - 1];
  const int64_t rows = out.numel() / last;
  const float* s = x.data();
  float* d = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, src = 0;
    for (int64_t i = rank - 2; i >= 0; --i) {
      src += (rem % out_shape[i]) * stride[i];
      rem /= out_shape[i];
    }
    float* o = d + r * last;
    for (int64_t j = 0; j < last; ++j) o[j] = s[src + j * last_stride];
  }
  return out;
}

}  // namespace sdvsr
