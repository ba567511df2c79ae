// linear through oneDNN's matmul primitive; batched matmul and multi-head
// attention through dnnl_sgemm.
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_dnnl.h"

namespace sdvsr {

namespace cpu {
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const char* what) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // dnnl rejects K = 0; the product is empty.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return;
  }
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                lda, b, ldb, beta, c, ldc);
  check(st == dnnl_success, what,
        "dnnl_sgemm failed (status " + std::to_string(static_cast<int>(st)) + ") for M=" +
            std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k));
}
}  // namespace cpu

namespace {
// x [rows, in] times weight [out, in] transposed, plus bias: oneDNN's matmul
// primitive, cached per shape. Where it runs the same GEMM kernel as
// dnnl_sgemm (AVX2 machines) it adds the bias to each finished sum, so the
// bits are those of sgemm followed by a separate bias pass (tested), without
// that second pass over the output; on AVX-512 oneDNN may pick its brgemm
// kernel, which sums in another order (within float rounding of sgemm).
// What follows the bias in the same pass (post-ops, applied to each finished
// value while it is in cache, in the order the separate ops would apply them):
enum class LinearPost {
  kNone,
  kGeluMul,  // gelu(y) * other, other [rows, out]: the gate half of a GEGLU
  kAdd,      // y + other, other [rows, out]: a skip connection
};
using LinearKey = std::tuple<int64_t, int64_t, int64_t, bool, int>;  // rows, in, out, bias, post

struct LinearEntry {
  dnnl::memory::desc src, weights, bias, dst;  // weights [in, out] over the [out, in] storage
  dnnl::matmul prim;
  std::string kernel;  // oneDNN's implementation name
};

std::atomic<bool> g_linear_post_ops_on{true};
std::atomic<long long> g_linears_with_post_ops{0};

std::mutex g_linear_mutex;
// A null entry: oneDNN offers only its reference kernel for these post-ops
// (far slower than a GEMM and a separate pass), so the caller composes.
std::map<LinearKey, std::shared_ptr<const LinearEntry>> g_linear_cache;

std::shared_ptr<const LinearEntry> linear_entry(int64_t rows, int64_t in, int64_t out, bool bias,
                                                LinearPost post = LinearPost::kNone) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const LinearKey key{rows, in, out, bias, static_cast<int>(post)};
  std::lock_guard<std::mutex> lock(g_linear_mutex);
  auto it = g_linear_cache.find(key);
  if (it != g_linear_cache.end()) return it->second;
  auto e = std::make_shared<LinearEntry>();
  e->src = dnnl::memory::desc({rows, in}, dt::f32, tag::ab);
  e->weights = dnnl::memory::desc({in, out}, dt::f32, tag::ba);
  e->bias = dnnl::memory::desc({1, out}, dt::f32, tag::ab);
  e->dst = dnnl::memory::desc({rows, out}, dt::f32, tag::ab);
  dnnl::post_ops ops;
  if (post == LinearPost::kGeluMul) {
    dnnl::algorithm alg;
    float alpha;
    cpu::eltwise_for(Activation::kGELU, alg, alpha);  // the algorithm activation() runs
    ops.append_eltwise(1.f, alg, alpha, 0.f);
    ops.append_binary(dnnl::algorithm::binary_mul, e->dst);
  } else if (post == LinearPost::kAdd) {
    ops.append_binary(dnnl::algorithm::binary_add, e->dst);
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const auto desc = bias ? dnnl::matmul::desc(e->src, e->weights, e->bias, e->dst)
                         : dnnl::matmul::desc(e->src, e->weights, e->dst);
  const dnnl::matmul::primitive_desc pd(desc, attr, cpu::dnnl_engine());
  if (post != LinearPost::kNone && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
    g_linear_cache.emplace(key, nullptr);
    return nullptr;
  }
  e->prim = dnnl::matmul(pd);
  e->kernel = pd.impl_info_str();
  g_linear_cache.emplace(key, e);
  return e;
}

// out [rows, n] = x [rows, in] times the n weight rows starting at `weight`
// (row stride in), plus `bias` (n values, may be null), then `post` with
// `other` [rows, n].
void run_linear(const LinearEntry& e, const float* x, const float* weight, const float* bias,
                float* out, LinearPost post, const float* other) {
  dnnl::engine& eng = cpu::dnnl_engine();
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory(e.src, eng, const_cast<float*>(x))},
      {DNNL_ARG_WEIGHTS, dnnl::memory(e.weights, eng, const_cast<float*>(weight))},
      {DNNL_ARG_DST, dnnl::memory(e.dst, eng, out)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(e.bias, eng, const_cast<float*>(bias)));
  if (post != LinearPost::kNone) {
    const int binary_index = post == LinearPost::kGeluMul ? 1 : 0;
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(binary_index) | DNNL_ARG_SRC_1,
                 dnnl::memory(e.dst, eng, const_cast<float*>(other)));
  }
  dnnl::stream s(eng);
  e.prim.execute(s, args);
  s.wait();
}

// The sizes of linear(x, weight, bias), checked: in, out and the rows of x.
struct LinearGeometry {
  int64_t in = 0, out = 0, rows = 0;
  Shape out_shape;
};

LinearGeometry linear_geometry(const Tensor& x, const Tensor& weight, const Tensor* bias,
                               const char* op) {
  cpu::check(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1), op,
             "x " + shape_str(x.shape()) + " does not fit weight " + shape_str(weight.shape()));
  LinearGeometry g;
  g.in = weight.size(1);
  g.out = weight.size(0);
  cpu::check(!bias || (bias->dim() == 1 && bias->size(0) == g.out), op,
             "bias does not match weight " + shape_str(weight.shape()));
  g.out_shape = x.shape();
  g.out_shape.back() = g.out;
  g.rows = 1;  // also when in == 0
  for (size_t d = 0; d + 1 < x.shape().size(); ++d) g.rows *= x.shape()[d];
  return g;
}
}  // namespace

Tensor CpuBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const LinearGeometry g = linear_geometry(x, weight, bias, "linear");
  Tensor out = Tensor::uninitialized(g.out_shape);
  if (g.rows == 0 || g.out == 0) return out;
  if (g.in == 0) {  // an empty product: the bias alone (oneDNN rejects K = 0)
    float* o = out.data();
    for (int64_t r = 0; r < g.rows; ++r)
      for (int64_t j = 0; j < g.out; ++j) o[r * g.out + j] = bias ? (*bias)[j] : 0.f;
    return out;
  }
  const auto e = linear_entry(g.rows, g.in, g.out, bias != nullptr);
  run_linear(*e, x.data(), weight.data(), bias ? bias->data() : nullptr, out.data(),
             LinearPost::kNone, nullptr);
  return out;
}

Tensor CpuBackend::linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  const LinearGeometry g = linear_geometry(x, weight, bias, "linear_geglu");
  cpu::check(g.out % 2 == 0, "linear_geglu",
             "weight " + shape_str(weight.shape()) + " needs an even output count (hidden | gate)");
  const int64_t inner = g.out / 2;
  const auto gate =
      g_linear_post_ops_on.load() && g.rows > 0 && g.in > 0 && inner > 0
          ? linear_entry(g.rows, g.in, inner, bias != nullptr, LinearPost::kGeluMul)
          : nullptr;
  if (!gate) return Backend::linear_geglu(x, weight, bias);
  // The hidden half is linear() of the first weight rows, as in
  // Backend::linear_geglu; the gate half's product then takes GELU and the
  // multiply by the hidden half as post-ops (gelu(gate) * hidden is mul's
  // product with its operands swapped): the bits of that composition.
  const Tensor gate_weight = weight.rows(inner, g.out);
  const Tensor hidden_bias = bias ? bias->rows(0, inner) : Tensor();
  const Tensor gate_bias = bias ? bias->rows(inner, g.out) : Tensor();
  ++g_linears_with_post_ops;
  const Tensor hidden = linear(x, weight.rows(0, inner), bias ? &hidden_bias : nullptr);
  Tensor out = Tensor::uninitialized(hidden.shape());
  run_linear(*gate, x.data(), gate_weight.data(), bias ? gate_bias.data() : nullptr, out.data(),
             LinearPost::kGeluMul, hidden.data());
  return out;
}

Tensor CpuBackend::linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                              const Tensor& residual) {
  const LinearGeometry g = linear_geometry(x, weight, bias, "linear_add");
  cpu::check(residual.shape() == g.out_shape, "linear_add",
             "residual " + shape_str(residual.shape()) + " does not match the output " +
                 shape_str(g.out_shape));
  const auto e = g_linear_post_ops_on.load() && g.rows > 0 && g.in > 0 && g.out > 0
                     ? linear_entry(g.rows, g.in, g.out, bias != nullptr, LinearPost::kAdd)
                     : nullptr;
  if (!e) return Backend::linear_add(x, weight, bias, residual);
  // y + residual is add's sum with its operands swapped: the same bits.
  ++g_linears_with_post_ops;
  Tensor out = Tensor::uninitialized(g.out_shape);
  run_linear(*e, x.data(), weight.data(), bias ? bias->data() : nullptr, out.data(),
             LinearPost::kAdd, residual.data());
  return out;
}

bool set_linear_post_ops(bool on) { return g_linear_post_ops_on.exchange(on); }

long long linears_with_post_ops() { return g_linears_with_post_ops.load(); }

std::string linear_kernel(int64_t rows, int64_t in, int64_t out, bool bias) {
  return linear_entry(rows, in, out, bias)->kernel;
}

Tensor CpuBackend::matmul(const Tensor& a, const Tensor& b, bool transpose_b) {
  cpu::check(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "matmul",
             "a " + shape_str(a.shape()) + " and b " + shape_str(b.shape()) +
                 " must be [B, M, K] and [B, K, N] (or [B, N, K])");
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2);
  const int64_t n = transpose_b ? b.size(1) : b.size(2);
  cpu::check((transpose_b ? b.size(2) : b.size(1)) == k, "matmul",
             "inner sizes differ: a " + shape_str(a.shape()) + ", b " + shape_str(b.shape()));
  Tensor out = Tensor::uninitialized({batch, m, n});
  for (int64_t i = 0; i < batch; ++i)
    cpu::sgemm(false, transpose_b, m, n, k, 1.f, a.data() + i * m * k, k,
               b.data() + i * k * n, transpose_b ? k : n, 0.f, out.data() + i * m * n, n,
               "matmul");
  return out;
}

namespace {
// Max-subtracted softmax of every row of a [rows, n] block in place, in
// PyTorch's order: max, exp and sum, then multiply by 1/sum. The exponentials
// run as one oneDNN vectorised exp over the block (scalar expf cost more than
// the two matrix products around it for cross-attention's 77 keys). oneDNN's
// exp turns NaN into inf; the row's sum is then inf, that entry inf * 0 = NaN,
// so a NaN score still makes its query's output NaN (tested).
void softmax_rows(float* s, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * n;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
    if (mx == -std::numeric_limits<float>::infinity()) mx = 0.f;
    for (int64_t j = 0; j < n; ++j) row[j] -= mx;
  }
  cpu::dnnl_eltwise_span(s, s, rows * n, dnnl::algorithm::eltwise_exp, 0.f);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * n;
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) sum += row[j];
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  }
}

// Queries per score block: as many as fit 8M scores (32 MB; larger blocks keep
// sgemm efficient), at least 256, so memory stays bounded for long sequences.
int64_t query_block(int64_t lq, int64_t lk) {
  const int64_t fit = (int64_t{8} << 20) / std::max<int64_t>(lk, 1);
  return std::min(lq, std::max<int64_t>(256, fit));
}
}  // namespace

Tensor CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                             float scale, bool causal) {
  cpu::check(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && heads > 0 &&
                 q.size(0) == k.size(0) && k.shape() == v.shape() && q.size(2) == k.size(2) &&
                 q.size(2) % heads == 0,
             "attention",
             "q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + ", v " +
                 shape_str(v.shape()) + " with " + std::to_string(heads) + " heads");
  const int64_t batch = q.size(0), lq = q.size(1), lk = k.size(1), width = q.size(2);
  const int64_t d = width / heads;
  Tensor out = Tensor::uninitialized({batch, lq, width});
  const int64_t block = std::max<int64_t>(query_block(lq, lk), 1);
  std::vector<float> scores(static_cast<size_t>(block * lk));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      // Head h is the column block [h*d, (h+1)*d) of every row: strided views, no copies.
      const float* qh = q.data() + b * lq * width + h * d;
      const float* kh = k.data() + b * lk * width + h * d;
      const float* vh = v.data() + b * lk * width + h * d;
      float* oh = out.data() + b * lq * width + h * d;
      for (int64_t i0 = 0; i0 < lq; i0 += block) {
        const int64_t rows = std::min(block, lq - i0);
        float* s = scores.data();
        cpu::sgemm(false, true, rows, lk, d, scale, qh + i0 * width, width, kh, width, 0.f, s,
                   lk, "attention");
        if (causal)
          for (int64_t r = 0; r < rows; ++r)
            std::fill(s + r * lk + std::min(lk, i0 + r + 1), s + (r + 1) * lk,
                      -std::numeric_limits<float>::infinity());
        softmax_rows(s, rows, lk);
        cpu::sgemm(false, false, rows, d, lk, 1.f, s, lk, vh, width, 0.f, oh + i0 * width,
                   width, "attention");
      }
    }
  }
  return out;
}

}  // namespace sdvsr
