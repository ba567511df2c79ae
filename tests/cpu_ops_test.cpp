// Every CPU backend op against an independent naive double-precision loop on
// random data (odd sizes, groups, strides, padding).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/resample_taps.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::random_tensor;

// max |out - ref| <= tol * max(1, max|ref|), shapes equal.
void expect_near_ref(const Tensor& out, const Shape& shape, const std::vector<double>& ref,
                     double tol, const std::string& what) {
  ASSERT_EQ(shape_str(out.shape()), shape_str(shape)) << what;
  ASSERT_EQ(static_cast<size_t>(out.numel()), ref.size()) << what;
  double max_ref = 1.0, max_err = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(ref[i]));
    const double e = std::abs(static_cast<double>(out[i]) - ref[i]);
    if (!(e <= max_err)) max_err = std::isnan(e) ? INFINITY : e;
  }
  EXPECT_LE(max_err, tol * max_ref) << what << ": max abs error " << max_err;
}

Backend& be() { return cpu_backend(); }

// ---------------------------------------------------------------- conv2d
struct ConvCase {
  int64_t n, c, h, w, o, kh, kw;
  Conv2dParams p;
  bool bias;
};

std::vector<double> naive_conv(const Tensor& x, const Tensor& wt, const Tensor* b,
                               const Conv2dParams& p, Shape& out_shape) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t o = wt.size(0), kh = wt.size(2), kw = wt.size(3);
  const int64_t ho = (h + 2 * p.pad_h - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
  const int64_t wo = (w + 2 * p.pad_w - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
  out_shape = {n, o, ho, wo};
  const int64_t cg = c / p.groups, og = o / p.groups;
  std::vector<double> out(n * o * ho * wo);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t y = 0; y < ho; ++y)
        for (int64_t xo = 0; xo < wo; ++xo) {
          double acc = b ? (*b)[oc] : 0.0;
          const int64_t g = oc / og;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = y * p.stride_h - p.pad_h + ky * p.dilation_h;
                const int64_t ix = xo * p.stride_w - p.pad_w + kx * p.dilation_w;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc += static_cast<double>(x[((ni * c + g * cg + ci) * h + iy) * w + ix]) *
                       wt[((oc * cg + ci) * kh + ky) * kw + kx];
              }
          out[((ni * o + oc) * ho + y) * wo + xo] = acc;
        }
  return out;
}

TEST(CpuOps, Conv2d) {
  const auto params = test::conv_params;
  Conv2dParams asym = params(1, 1, 1, 1);
  asym.stride_w = 2;
  asym.pad_h = 0;
  asym.pad_w = 2;
  Conv2dParams conv1d = params(1, 0, 1, 1);  // Conv1d(k3, p1) as a 1-row conv2d
  conv1d.pad_w = 1;
  Conv2dParams row5 = params(1, 0, 1, 1);  // RAFT's separable (1x5) GRU convs
  row5.pad_w = 2;
  std::vector<ConvCase> cases = {
      {1, 8, 1, 37, 8, 1, 3, conv1d, true},
      {1, 6, 4, 9, 5, 1, 5, row5, true},
      {2, 3, 7, 9, 5, 3, 3, params(1, 1, 1, 1), true},
      {1, 4, 9, 9, 6, 3, 3, params(2, 1, 1, 2), true},     // stride 2 on odd size, groups
      {1, 6, 9, 11, 6, 3, 3, params(1, 0, 2, 3), false},   // dilation, groups
      {1, 16, 5, 7, 32, 1, 1, params(1, 0, 1, 1), true},   // 1x1
      {1, 8, 5, 6, 4, 4, 4, params(3, 2, 1, 1), false},    // k4 s3 p2
      {1, 12, 6, 5, 12, 3, 3, params(1, 1, 1, 12), true},  // depthwise
      {1, 5, 8, 7, 3, 7, 7, params(2, 3, 1, 1), true},     // 7x7 stride 2 (RAFT stem)
      {1, 3, 6, 10, 4, 3, 5, asym, true},                  // asymmetric stride/padding
      {1, 32, 12, 10, 48, 3, 3, params(1, 1, 1, 1), true},
  };
  int idx = 0;
  for (const ConvCase& cc : cases) {
    Tensor x = random_tensor({cc.n, cc.c, cc.h, cc.w}, 100 + idx);
    Tensor wt = random_tensor({cc.o, cc.c / cc.p.groups, cc.kh, cc.kw}, 200 + idx);
    Tensor b = random_tensor({cc.o}, 300 + idx);
    Shape shape;
    auto ref = naive_conv(x, wt, cc.bias ? &b : nullptr, cc.p, shape);
    Tensor out = be().conv2d(x, wt, cc.bias ? &b : nullptr, cc.p);
    expect_near_ref(out, shape, ref, 1e-6,
                    "conv case " + std::to_string(idx));
    // Twice: the cached primitive must give the same result.
    Tensor again = be().conv2d(x, wt, cc.bias ? &b : nullptr, cc.p);
    EXPECT_EQ(again.to_vector(), out.to_vector());
    ++idx;
  }
}

// ---------------------------------------------------------------- matrix products
TEST(CpuOps, Linear) {
  for (bool with_bias : {true, false}) {
    Tensor x = random_tensor({2, 5, 7}, 1);
    Tensor wt = random_tensor({3, 7}, 2);
    Tensor b = random_tensor({3}, 3);
    std::vector<double> ref;
    for (int64_t r = 0; r < 10; ++r)
      for (int64_t j = 0; j < 3; ++j) {
        double acc = with_bias ? b[j] : 0.0;
        for (int64_t k = 0; k < 7; ++k) acc += static_cast<double>(x[r * 7 + k]) * wt[j * 7 + k];
        ref.push_back(acc);
      }
    expect_near_ref(be().linear(x, wt, with_bias ? &b : nullptr), {2, 5, 3}, ref, 1e-6, "linear");
  }
}

// linear runs oneDNN's matmul primitive with the bias fused; its bits must be
// those of dnnl_sgemm followed by a separate bias pass (what it replaced, and
// what the golden files were matched with), for any thread count, including
// shapes past the GEMM kernel's blocking and an empty inner dimension.
// Where oneDNN's matmul runs the GEMM kernel dnnl_sgemm runs, linear gives
// exactly sgemm's bits plus the bias; where it picks another kernel (brgemm on
// AVX-512, which orders the sums differently) each value is within float
// rounding of the exact sum: |error| <= in * eps * sum |x w| + eps * |y|.
TEST(CpuOps, LinearHasTheBitsOfSgemmThenBias) {
  struct Case {
    Shape x;
    int64_t out;
  };
  const int saved = be().threads();
  for (const Case& c : {Case{{1000, 320}, 384}, Case{{2, 77, 40}, 50}, Case{{1, 1}, 1},
                        Case{{3, 0}, 5}, Case{{515, 1027}, 129}})
    for (bool with_bias : {true, false})
      for (int threads : {1, 2}) {
        be().set_threads(threads);
        const int64_t in = c.x.back();
        const Tensor x = random_tensor(c.x, 60), w = random_tensor({c.out, in}, 61),
                     b = random_tensor({c.out}, 62);
        Shape out_shape = c.x;
        out_shape.back() = c.out;
        Tensor want = Tensor::uninitialized(out_shape);
        const int64_t rows = want.numel() / c.out;
        const std::string kernel = in > 0 ? linear_kernel(rows, in, c.out, with_bias) : "none";
        SCOPED_TRACE(shape_str(c.x) + " -> " + std::to_string(c.out) +
                     (with_bias ? " with bias, " : ", ") + std::to_string(threads) +
                     " threads, kernel " + kernel);
        cpu::sgemm(false, true, rows, c.out, in, 1.f, x.data(), in, w.data(), in, 0.f,
                   want.data(), c.out, "test");
        if (with_bias)
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < c.out; ++j) want.data()[r * c.out + j] += b[j];
        const Tensor got = be().linear(x, w, with_bias ? &b : nullptr);
        if (kernel.rfind("gemm", 0) == 0 || kernel == "none") {
          EXPECT_TRUE(test::SameBits(got, want));
          continue;
        }
        const float eps = std::numeric_limits<float>::epsilon();
        int64_t bad = 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < c.out; ++j) {
            double exact = with_bias ? b[j] : 0.0, magnitude = 0.0;
            for (int64_t k = 0; k < in; ++k) {
              const double p = static_cast<double>(x.data()[r * in + k]) * w.data()[j * in + k];
              exact += p;
              magnitude += std::fabs(p);
            }
            const double bound = in * eps * magnitude + eps * std::fabs(exact);
            if (std::fabs(got.data()[r * c.out + j] - exact) > bound) ++bad;
          }
        EXPECT_EQ(bad, 0) << "values beyond float rounding of the exact sums";
      }
  be().set_threads(saved);
}

TEST(CpuOps, Matmul) {
  for (bool tb : {false, true}) {
    const int64_t B = 3, M = 5, K = 9, N = 4;
    Tensor a = random_tensor({B, M, K}, 4);
    Tensor b = tb ? random_tensor({B, N, K}, 5) : random_tensor({B, K, N}, 5);
    std::vector<double> ref;
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<double>(a[(bi * M + i) * K + k]) *
                   (tb ? b[(bi * N + j) * K + k] : b[(bi * K + k) * N + j]);
          ref.push_back(acc);
        }
    expect_near_ref(be().matmul(a, b, tb), {B, M, N}, ref, 1e-6, "matmul");
  }
}

std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                                    double scale, bool causal) {
  const int64_t B = q.size(0), lq = q.size(1), lk = k.size(1), w = q.size(2), d = w / heads;
  std::vector<double> out(B * lq * w);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < lq; ++i) {
        std::vector<double> s(lk);
        double mx = -INFINITY;
        for (int64_t j = 0; j < lk; ++j) {
          double acc = 0;
          for (int64_t t = 0; t < d; ++t)
            acc += static_cast<double>(q[(b * lq + i) * w + h * d + t]) * k[(b * lk + j) * w + h * d + t];
          s[j] = (causal && j > i) ? -INFINITY : acc * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t t = 0; t < d; ++t) {
          double acc = 0;
          for (int64_t j = 0; j < lk; ++j) acc += s[j] / sum * v[(b * lk + j) * w + h * d + t];
          out[(b * lq + i) * w + h * d + t] = acc;
        }
      }
  return out;
}

TEST(CpuOps, Attention) {
  {  // more queries than one 256-row block, cross-attention length
    Tensor q = random_tensor({2, 300, 12}, 6), k = random_tensor({2, 37, 12}, 7),
           v = random_tensor({2, 37, 12}, 8);
    auto ref = naive_attention(q, k, v, 3, 0.5, false);
    expect_near_ref(be().attention(q, k, v, 3, 0.5f, false), {2, 300, 12}, ref, 1e-6, "attention");
  }
  {  // long keys: the queries are processed in several score blocks
    Tensor q = random_tensor({1, 300, 4}, 30), k = random_tensor({1, 30000, 4}, 31),
           v = random_tensor({1, 30000, 4}, 32);
    auto ref = naive_attention(q, k, v, 1, 2.0, false);
    expect_near_ref(be().attention(q, k, v, 1, 2.f, false), {1, 300, 4}, ref, 1e-6, "blocked");
  }
  {  // causal self-attention (CLIP)
    Tensor q = random_tensor({1, 11, 8}, 9), k = random_tensor({1, 11, 8}, 10),
           v = random_tensor({1, 11, 8}, 11);
    auto ref = naive_attention(q, k, v, 2, 1.0 / std::sqrt(4.0), true);
    expect_near_ref(be().attention(q, k, v, 2, 0.5f, true), {1, 11, 8}, ref, 1e-6, "causal");
  }
  // A NaN score, or an infinite one (inf - inf in the max subtraction), makes
  // its row NaN in that head, as PyTorch's softmax does; the rest stay finite.
  for (const float bad : {std::nanf(""), INFINITY}) {
    Tensor q = random_tensor({1, 5, 4}, 40), k = random_tensor({1, 6, 4}, 41),
           v = random_tensor({1, 6, 4}, 42);
    q.data()[2 * 4 + 1] = bad;  // row 2, head 0 (two heads of width 2)
    const Tensor out = be().attention(q, k, v, 2, 0.5f, false);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t c = 0; c < 4; ++c)
        EXPECT_EQ(std::isnan(out[i * 4 + c]), i == 2 && c < 2) << "row " << i << " col " << c;
  }
}

// ---------------------------------------------------------------- normalisation
TEST(CpuOps, GroupNorm) {
  const int64_t N = 2, C = 6, H = 5, W = 3;
  const int groups = 3;
  Tensor x = random_tensor({N, C, H, W}, 12, -2.f, 3.f);
  Tensor g = random_tensor({C}, 13), b = random_tensor({C}, 14);
  for (bool affine : {true, false}) {
    std::vector<double> ref(x.numel());
    const int64_t per = C / groups * H * W;
    for (int64_t ng = 0; ng < N * groups; ++ng) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < per; ++i) mean += x[ng * per + i];
      mean /= per;
      for (int64_t i = 0; i < per; ++i) var += (x[ng * per + i] - mean) * (x[ng * per + i] - mean);
      var /= per;
      for (int64_t i = 0; i < per; ++i) {
        const int64_t c = (ng % groups) * (C / groups) + i / (H * W);
        double y = (x[ng * per + i] - mean) / std::sqrt(var + 1e-5);
        ref[ng * per + i] = affine ? y * g[c] + b[c] : y;
      }
    }
    expect_near_ref(be().group_norm(x, groups, affine ? &g : nullptr, affine ? &b : nullptr, 1e-5f),
                    x.shape(), ref, 1e-6, "group_norm");
  }
}

TEST(CpuOps, LayerNorm) {
  Tensor x = random_tensor({3, 4, 13}, 15, -1.f, 4.f);
  Tensor g = random_tensor({13}, 16), b = random_tensor({13}, 17);
  std::vector<double> ref(x.numel());
  for (int64_t r = 0; r < 12; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < 13; ++j) mean += x[r * 13 + j];
    mean /= 13;
    for (int64_t j = 0; j < 13; ++j) var += (x[r * 13 + j] - mean) * (x[r * 13 + j] - mean);
    var /= 13;
    for (int64_t j = 0; j < 13; ++j)
      ref[r * 13 + j] = (x[r * 13 + j] - mean) / std::sqrt(var + 1e-5) * g[j] + b[j];
  }
  expect_near_ref(be().layer_norm(x, &g, &b, 1e-5f), x.shape(), ref, 1e-6, "layer_norm");
}

TEST(CpuOps, Softmax) {
  Tensor x = random_tensor({4, 3, 19}, 18, -10.f, 10.f);
  std::vector<double> ref(x.numel());
  for (int64_t r = 0; r < 12; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < 19; ++j) mx = std::max(mx, static_cast<double>(x[r * 19 + j]));
    for (int64_t j = 0; j < 19; ++j) sum += std::exp(x[r * 19 + j] - mx);
    for (int64_t j = 0; j < 19; ++j) ref[r * 19 + j] = std::exp(x[r * 19 + j] - mx) / sum;
  }
  expect_near_ref(be().softmax(x), x.shape(), ref, 1e-6, "softmax");
}

// ---------------------------------------------------------------- elementwise
TEST(CpuOps, Activations) {
  Tensor x = random_tensor({3, 7, 5}, 19, -6.f, 6.f);
  struct Case {
    Activation a;
    double (*f)(double);
    const char* name;
  };
  const Case cases[] = {
      {Activation::kNone, [](double v) { return v; }, "none"},
      {Activation::kSiLU, [](double v) { return v / (1 + std::exp(-v)); }, "silu"},
      {Activation::kGELU, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, "gelu"},
      {Activation::kGELUTanh,
       [](double v) {
         return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
       },
       "gelu_tanh"},
      {Activation::kQuickGELU, [](double v) { return v / (1 + std::exp(-1.702 * v)); }, "quick_gelu"},
      {Activation::kReLU, [](double v) { return std::max(v, 0.0); }, "relu"},
      {Activation::kTanh, [](double v) { return std::tanh(v); }, "tanh"},
      {Activation::kSigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }, "sigmoid"},
  };
  for (const Case& c : cases) {
    std::vector<double> ref(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) ref[i] = c.f(x[i]);
    expect_near_ref(be().activation(x, c.a), x.shape(), ref, 1e-6, c.name);
  }
}

// Vectorised activations must give each element the same value wherever it
// sits (block tails) and whatever the thread count: frames may not depend on it.
TEST(CpuOps, ActivationsDoNotDependOnPositionOrThreads) {
  const Tensor x = random_tensor({100003}, 23, -8.f, 8.f);
  const int64_t shift = 5;
  const Tensor tail = be().slice(x, 0, shift, x.numel());
  const int threads = be().threads();
  for (Activation a : {Activation::kSiLU, Activation::kGELU, Activation::kGELUTanh,
                       Activation::kQuickGELU, Activation::kTanh, Activation::kSigmoid}) {
    be().set_threads(2);
    const Tensor two = be().activation(x, a);
    const Tensor shifted = be().activation(tail, a);
    be().set_threads(1);
    const Tensor one = be().activation(x, a);
    for (int64_t i = 0; i < x.numel(); ++i) {
      ASSERT_EQ(two[i], one[i]) << "activation " << static_cast<int>(a) << " at " << i;
      if (i >= shift) {
        ASSERT_EQ(two[i], shifted[i - shift]) << static_cast<int>(a) << " at " << i;
      }
    }
  }
  be().set_threads(threads);
}

// RAFT relies on NaN staying NaN through its GRU where the original's does.
TEST(CpuOps, ActivationsKeepNaN) {
  const Tensor x = Tensor::from_vector({3}, {NAN, 0.5f, -2.f});
  for (Activation a : {Activation::kSiLU, Activation::kGELU, Activation::kGELUTanh,
                       Activation::kQuickGELU, Activation::kReLU, Activation::kTanh,
                       Activation::kSigmoid}) {
    const Tensor y = be().activation(x, a);
    EXPECT_TRUE(std::isnan(y[0])) << "activation " << static_cast<int>(a);
    EXPECT_FALSE(std::isnan(y[1])) << "activation " << static_cast<int>(a);
  }
}

TEST(CpuOps, Pointwise) {
  Tensor a = random_tensor({2, 3, 4, 5}, 20), b = random_tensor({2, 3, 4, 5}, 21);
  Tensor cb = random_tensor({2, 3}, 22);
  const int64_t n = a.numel();
  std::vector<double> add(n), sub(n), mul(n), sc(n), as(n), acb(n), cl(n);
  for (int64_t i = 0; i < n; ++i) {
    add[i] = static_cast<double>(a[i]) + b[i];
    sub[i] = static_cast<double>(a[i]) - b[i];
    mul[i] = static_cast<double>(a[i]) * b[i];
    sc[i] = a[i] * 1.5;
    as[i] = a[i] + 0.25;
    acb[i] = static_cast<double>(a[i]) + cb[i / 20];
    cl[i] = std::min(std::max(static_cast<double>(a[i]), -0.3), 0.6);
  }
  expect_near_ref(be().add(a, b), a.shape(), add, 1e-7, "add");
  expect_near_ref(be().sub(a, b), a.shape(), sub, 1e-7, "sub");
  expect_near_ref(be().mul(a, b), a.shape(), mul, 1e-7, "mul");
  expect_near_ref(be().scale(a, 1.5f), a.shape(), sc, 1e-7, "scale");
  expect_near_ref(be().add_scalar(a, 0.25f), a.shape(), as, 1e-7, "add_scalar");
  expect_near_ref(be().add_channel_bias(a, cb), a.shape(), acb, 1e-7, "add_channel_bias");
  expect_near_ref(be().clamp(a, -0.3f, 0.6f), a.shape(), cl, 1e-7, "clamp");
  EXPECT_THROW(be().add(a, cb), std::runtime_error);
}

// Index helper for the layout tests: value at a multi-index of a contiguous tensor.
double at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (size_t i = 0; i < idx.size(); ++i) off = off * t.size(i) + idx[i];
  return t[off];
}

TEST(CpuOps, ConcatSlicePermute) {
  Tensor a = random_tensor({2, 3, 4}, 23), b = random_tensor({2, 5, 4}, 24),
         c = random_tensor({2, 1, 4}, 25);
  {
    std::vector<double> ref;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 9; ++j)
        for (int64_t k = 0; k < 4; ++k)
          ref.push_back(j < 3 ? at(a, {i, j, k}) : j < 8 ? at(b, {i, j - 3, k}) : at(c, {i, 0, k}));
    expect_near_ref(be().concat({a, b, c}, 1), {2, 9, 4}, ref, 0, "concat dim 1");
  }
  {
    std::vector<double> ref;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 8; ++k) ref.push_back(k < 4 ? at(a, {i, j, k}) : at(a, {i, j, k - 4}));
    expect_near_ref(be().concat({a, a}, -1), {2, 3, 8}, ref, 0, "concat last dim");
  }
  {
    std::vector<double> ref;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 1; j < 4; ++j)
        for (int64_t k = 0; k < 4; ++k) ref.push_back(at(b, {i, j, k}));
    expect_near_ref(be().slice(b, 1, 1, 4), {2, 3, 4}, ref, 0, "slice");
  }
  {
    Tensor x = random_tensor({2, 3, 4, 5}, 26);
    std::vector<int> perm = {2, 0, 3, 1};
    std::vector<double> ref;
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t k = 0; k < 5; ++k)
          for (int64_t l = 0; l < 3; ++l) ref.push_back(at(x, {j, l, i, k}));
    expect_near_ref(be().permute(x, perm), {4, 2, 5, 3}, ref, 0, "permute");
  }
  {
    Tensor x = random_tensor({2, 37, 5, 7}, 27);
    std::vector<double> ref;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t p = 0; p < 35; ++p)
        for (int64_t ch = 0; ch < 37; ++ch) ref.push_back(at(x, {n, ch, p / 7, p % 7}));
    Tensor tokens = be().nchw_to_tokens(x);
    expect_near_ref(tokens, {2, 35, 37}, ref, 0, "nchw_to_tokens");
    Tensor back = be().tokens_to_nchw(tokens, 5, 7);
    EXPECT_EQ(back.shape(), x.shape());
    EXPECT_EQ(back.to_vector(), x.to_vector());
  }
}


// ---------------------------------------------------------------- more normalisation
TEST(CpuOps, BatchNormInference) {
  const int64_t N = 2, C = 5, HW = 6;
  Tensor x = random_tensor({N, C, 2, 3}, 40, -2.f, 2.f);
  Tensor mean = random_tensor({C}, 41), var = random_tensor({C}, 42, 0.1f, 2.f);
  Tensor g = random_tensor({C}, 43), b = random_tensor({C}, 44);
  for (bool affine : {true, false}) {
    std::vector<double> ref(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t c = (i / HW) % C;
      const double y = (x[i] - mean[c]) / std::sqrt(var[c] + 1e-5);
      ref[i] = affine ? y * g[c] + b[c] : y;
    }
    expect_near_ref(be().batch_norm(x, mean, var, affine ? &g : nullptr, affine ? &b : nullptr, 1e-5f),
                    x.shape(), ref, 1e-6, "batch_norm");
  }
}

TEST(CpuOps, InstanceNorm) {
  Tensor x = random_tensor({2, 3, 7, 5}, 45, -1.f, 5.f);
  const int64_t per = 35;
  std::vector<double> ref(x.numel());
  for (int64_t p = 0; p < 6; ++p) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < per; ++i) mean += x[p * per + i];
    mean /= per;
    for (int64_t i = 0; i < per; ++i) var += (x[p * per + i] - mean) * (x[p * per + i] - mean);
    var /= per;
    for (int64_t i = 0; i < per; ++i) ref[p * per + i] = (x[p * per + i] - mean) / std::sqrt(var + 1e-5);
  }
  expect_near_ref(be().instance_norm(x, 1e-5f), x.shape(), ref, 1e-6, "instance_norm");
}

// ---------------------------------------------------------------- resampling
// Naive references in double, written from PyTorch's documented index rules.
TEST(CpuOps, UpsampleNearest) {
  Tensor x = random_tensor({2, 3, 5, 6}, 50);
  const int64_t sizes[][2] = {{10, 12}, {9, 11}, {7, 4}, {5, 6}, {3, 13}};
  for (const auto& sz : sizes) {
    const int64_t oh = sz[0], ow = sz[1];
    std::vector<double> ref;
    for (int64_t p = 0; p < 6; ++p)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xo = 0; xo < ow; ++xo) {
          const int64_t sy = std::min<int64_t>(static_cast<int64_t>(std::floor(y * 5.0 / oh)), 4);
          const int64_t sx = std::min<int64_t>(static_cast<int64_t>(std::floor(xo * 6.0 / ow)), 5);
          ref.push_back(x[(p * 5 + sy) * 6 + sx]);
        }
    expect_near_ref(be().upsample_nearest(x, oh, ow), {2, 3, oh, ow}, ref, 0,
                    "nearest " + std::to_string(oh) + "x" + std::to_string(ow));
  }
}

// Per-axis taps of PyTorch's linear / cubic interpolation, in double.
struct RefTaps {
  std::vector<std::vector<std::pair<int64_t, double>>> taps;  // per output index
};

RefTaps ref_linear(int64_t in, int64_t out, bool ac) {
  RefTaps t;
  for (int64_t d = 0; d < out; ++d) {
    double s = ac ? (out > 1 ? d * double(in - 1) / (out - 1) : 0.0)
                  : std::max((d + 0.5) * double(in) / out - 0.5, 0.0);
    int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(s)), in - 1);
    double l = std::min(std::max(s - i0, 0.0), 1.0);
    t.taps.push_back({{i0, 1 - l}, {std::min(i0 + 1, in - 1), l}});
  }
  return t;
}

RefTaps ref_cubic(int64_t in, int64_t out, bool ac) {
  const double A = -0.75;
  auto k = [A](double x) {
    x = std::abs(x);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0.0;
  };
  RefTaps t;
  for (int64_t d = 0; d < out; ++d) {
    double s = ac ? (out > 1 ? d * double(in - 1) / (out - 1) : 0.0) : (d + 0.5) * double(in) / out - 0.5;
    int64_t i = static_cast<int64_t>(std::floor(s));
    std::vector<std::pair<int64_t, double>> taps;
    for (int64_t j = i - 1; j <= i + 2; ++j)
      taps.push_back({std::min(std::max<int64_t>(j, 0), in - 1), k(s - j)});
    t.taps.push_back(taps);
  }
  return t;
}

std::vector<double> ref_separable(const Tensor& x, const RefTaps& ty, const RefTaps& tx) {
  const int64_t nc = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  std::vector<double> out;
  for (int64_t p = 0; p < nc; ++p)
    for (const auto& rows : ty.taps)
      for (const auto& cols : tx.taps) {
        double acc = 0;
        for (auto [iy, wy] : rows)
          for (auto [ix, wx] : cols) acc += wy * wx * x[(p * h + iy) * w + ix];
        out.push_back(acc);
      }
  return out;
}

TEST(CpuOps, UpsampleBilinearAndBicubic) {
  Tensor x = random_tensor({1, 3, 5, 7}, 51);
  const int64_t sizes[][2] = {{20, 28}, {9, 13}, {3, 4}, {1, 1}, {11, 6}};
  for (bool ac : {false, true})
    for (const auto& sz : sizes) {
      const std::string tag = std::to_string(sz[0]) + "x" + std::to_string(sz[1]) +
                              (ac ? " align_corners" : "");
      expect_near_ref(be().upsample_bilinear(x, sz[0], sz[1], ac), {1, 3, sz[0], sz[1]},
                      ref_separable(x, ref_linear(5, sz[0], ac), ref_linear(7, sz[1], ac)), 1e-6,
                      "bilinear " + tag);
      expect_near_ref(be().upsample_bicubic(x, sz[0], sz[1], ac), {1, 3, sz[0], sz[1]},
                      ref_separable(x, ref_cubic(5, sz[0], ac), ref_cubic(7, sz[1], ac)),
                      3e-6,  // float source coordinates (PyTorch's) vs double ones here
                      "bicubic " + tag);
    }
}

// An empty source has no pixel to take: every resize refuses it (as PyTorch
// does), naming the op, instead of reading outside the tensor.
TEST(CpuOps, ResizesOfAnEmptySourceAreRefused) {
  const Tensor empty = Tensor::zeros({1, 3, 0, 7});
  const Tensor weight = random_tensor({4, 3, 3, 3}, 55);
  const ConvStage conv{&weight, nullptr, test::conv_params(1, 1)};
  const Tensor x = random_tensor({1, 3, 8, 8}, 56);
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"upsample_nearest", [&] { be().upsample_nearest(empty, 4, 4); }},
      {"upsample_bilinear", [&] { be().upsample_bilinear(empty, 4, 4, false); }},
      {"upsample_bicubic", [&] { be().upsample_bicubic(empty, 4, 4, true); }},
      {"upsample_nearest_conv2d", [&] { be().upsample_nearest_conv2d(empty, 4, 4, conv); }},
      {"add_bilinear_upsampled",
       [&] { be().add_bilinear_upsampled(x, Tensor::zeros({1, 3, 2, 0}), 1.f, nullptr,
                                         Activation::kNone); }},
  };
  for (const auto& [op, call] : calls) {
    try {
      call();
      ADD_FAILURE() << op << " accepted an empty source";
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(op), std::string::npos) << what;
      EXPECT_NE(what.find("no pixels"), std::string::npos) << what;
    }
  }
}

// The CPU kernel computes each source row's x-interpolation once and reuses
// it for every output row in a band that reads it; the float operations must
// be those of ATen's per-pixel order (written out here), to the bit, across
// bands, for upsampling by large factors and for downsampling.
TEST(CpuOps, SeparableResamplingKeepsAtensPerPixelOrder) {
  const Tensor x = random_tensor({2, 3, 13, 11}, 54, -2.f, 2.f);
  const int64_t sizes[][2] = {{104, 88}, {70, 33}, {5, 4}, {13, 11}};
  for (bool cubic : {false, true})
    for (bool ac : {false, true})
      for (const auto& sz : sizes) {
        const int64_t oh = sz[0], ow = sz[1];
        SCOPED_TRACE(std::string(cubic ? "bicubic " : "bilinear ") + std::to_string(oh) + "x" +
                     std::to_string(ow) + (ac ? " align_corners" : ""));
        const resample::AxisTaps ty =
            cubic ? resample::cubic_taps(13, oh, ac) : resample::linear_taps(13, oh, ac);
        const resample::AxisTaps tx =
            cubic ? resample::cubic_taps(11, ow, ac) : resample::linear_taps(11, ow, ac);
        Tensor want = Tensor::uninitialized({2, 3, oh, ow});
        for (int64_t p = 0; p < 6; ++p)
          for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
              float acc = 0.f;
              for (int ky = 0; ky < ty.taps; ++ky) {
                const float* srow = x.data() + (p * 13 + ty.index[oy * ty.taps + ky]) * 11;
                float a = srow[tx.index[ox * tx.taps]] * tx.weight[ox * tx.taps];
                for (int kx = 1; kx < tx.taps; ++kx)
                  a += srow[tx.index[ox * tx.taps + kx]] * tx.weight[ox * tx.taps + kx];
                const float term = a * ty.weight[oy * ty.taps + ky];
                acc = ky == 0 ? term : acc + term;
              }
              want.data()[(p * oh + oy) * ow + ox] = acc;
            }
        const Tensor got = cubic ? be().upsample_bicubic(x, oh, ow, ac)
                                 : be().upsample_bilinear(x, oh, ow, ac);
        EXPECT_TRUE(test::SameBits(got, want));
      }
}

TEST(CpuOps, GridSample) {
  const int64_t N = 2, C = 3, H = 5, W = 7, HO = 4, WO = 6;
  Tensor x = random_tensor({N, C, H, W}, 52);
  Tensor grid = random_tensor({N, HO, WO, 2}, 53, -1.3f, 1.3f);  // some samples outside
  for (bool ac : {false, true})
    for (GridSampleMode mode : {GridSampleMode::kBilinear, GridSampleMode::kNearest}) {
      std::vector<double> ref(N * C * HO * WO);
      for (int64_t b = 0; b < N; ++b)
        for (int64_t i = 0; i < HO * WO; ++i) {
          const double gx = grid[(b * HO * WO + i) * 2], gy = grid[(b * HO * WO + i) * 2 + 1];
          const double px = ac ? (gx + 1) / 2 * (W - 1) : ((gx + 1) * W - 1) / 2;
          const double py = ac ? (gy + 1) / 2 * (H - 1) : ((gy + 1) * H - 1) / 2;
          auto value = [&](int64_t ch, int64_t yy, int64_t xx) {
            return (yy < 0 || yy >= H || xx < 0 || xx >= W) ? 0.0
                                                            : double(x[((b * C + ch) * H + yy) * W + xx]);
          };
          for (int64_t ch = 0; ch < C; ++ch) {
            double v;
            if (mode == GridSampleMode::kNearest) {
              v = value(ch, static_cast<int64_t>(std::nearbyint(py)), static_cast<int64_t>(std::nearbyint(px)));
            } else {
              const int64_t x0 = static_cast<int64_t>(std::floor(px)), y0 = static_cast<int64_t>(std::floor(py));
              const double fx = px - x0, fy = py - y0;
              v = value(ch, y0, x0) * (1 - fx) * (1 - fy) + value(ch, y0, x0 + 1) * fx * (1 - fy) +
                  value(ch, y0 + 1, x0) * (1 - fx) * fy + value(ch, y0 + 1, x0 + 1) * fx * fy;
            }
            ref[(b * C + ch) * HO * WO + i] = v;
          }
        }
      expect_near_ref(be().grid_sample(x, grid, mode, ac), {N, C, HO, WO}, ref, 1e-6,
                      std::string("grid_sample ") + (mode == GridSampleMode::kNearest ? "nearest" : "bilinear") +
                          (ac ? " align_corners" : ""));
    }
}

TEST(CpuOps, AvgPool2d) {
  Tensor x = random_tensor({1, 2, 9, 11}, 54);
  for (int k : {2, 4, 3})
    for (int s : {k, 2}) {
      const int64_t ho = (9 - k) / s + 1, wo = (11 - k) / s + 1;
      std::vector<double> ref;
      for (int64_t p = 0; p < 2; ++p)
        for (int64_t y = 0; y < ho; ++y)
          for (int64_t xo = 0; xo < wo; ++xo) {
            double acc = 0;
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) acc += x[(p * 9 + y * s + ky) * 11 + xo * s + kx];
            ref.push_back(acc / (k * k));
          }
      expect_near_ref(be().avg_pool2d(x, k, s), {1, 2, ho, wo}, ref, 1e-6,
                      "avg_pool k" + std::to_string(k) + " s" + std::to_string(s));
    }
}

TEST(CpuOps, CorrelationVolume) {
  const int64_t N = 2, C = 9, H = 3, W = 5, HW = 15;
  Tensor f1 = random_tensor({N, C, H, W}, 55), f2 = random_tensor({N, C, H, W}, 56);
  std::vector<double> ref;
  for (int64_t b = 0; b < N; ++b)
    for (int64_t i = 0; i < HW; ++i)
      for (int64_t j = 0; j < HW; ++j) {
        double acc = 0;
        for (int64_t c = 0; c < C; ++c)
          acc += static_cast<double>(f1[(b * C + c) * HW + i]) * f2[(b * C + c) * HW + j];
        ref.push_back(acc / std::sqrt(double(C)));
      }
  expect_near_ref(be().correlation_volume(f1, f2), {N * HW, 1, H, W}, ref, 1e-6, "correlation");
}

}  // namespace
}  // namespace sdvsr
