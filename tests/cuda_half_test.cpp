// The CUDA backend in float16 and bfloat16 (operands of the matrix products
// rounded to 16 bits, float32 accumulation):
// - op by op against the float32 CUDA backend (relative L2 <= 1e-2) and, much
//   tighter, against the CPU computing on the same 16-bit-rounded operands
//   (this pins the rounding mode, the cuBLAS geometry and the weight cache);
// - per module on the golden tiny model (U-Net, ControlNet, VAE, RAFT,
//   teacher-forced on the stages of e2e_seq_a) within 1e-2 (float16) / 3e-2
//   (bfloat16, see module_bound) relative L2 of the golden float32 outputs;
// - end to end on the golden sequence: PSNR >= 40 dB against the golden frames.
// GPU tests skip, saying why, without a CUDA build or device; they read only
// e2e_seq_a and the model, which scripts/cuda-bundle.sh --golden packs. The
// same checks, plus the dedicated module cases, also run on the CPU through an
// emulating backend (ReducedPrecisionBudget): float32 CPU ops on 16-bit-rounded
// operands, which shows these budgets hold for this design.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "golden.h"
#include "models/controlnet.h"
#include "models/raft.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"
#include "runtime/device_backend.h"
#ifdef SDVSR_HAVE_CUDA
#include "runtime/cuda/cuda_backend.h"
#endif

namespace sdvsr {
namespace {

#define REQUIRE_CUDA()                                                                    \
  do {                                                                                    \
    if (!cuda_built()) GTEST_SKIP() << "built without CUDA (no toolkit at configure)";    \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount)";  \
  } while (0)

constexpr ComputeDtype kReducedDtypes[] = {ComputeDtype::kFloat16, ComputeDtype::kBFloat16};

// ---- host rounding to 16 bits (round to nearest even), the reference ----

float round_bfloat16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return v;  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}
float round_float16(float v) { return static_cast<float>(static_cast<_Float16>(v)); }
float round_to(ComputeDtype d, float v) {
  return d == ComputeDtype::kFloat16 ? round_float16(v) : round_bfloat16(v);
}
Tensor rounded(ComputeDtype d, const Tensor& x) {
  Tensor r = Tensor::uninitialized(x.shape());
  const float* src = x.data();
  float* dst = r.data();
  for (int64_t i = 0; i < x.numel(); ++i) dst[i] = round_to(d, src[i]);
  return r;
}

TEST(ReducedRounding, HostReferenceRoundsToNearestEven) {
  // bfloat16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7.
  EXPECT_EQ(round_bfloat16(1.f + std::ldexp(1.f, -8)), 1.f);
  EXPECT_EQ(round_bfloat16(1.f + 3 * std::ldexp(1.f, -8)), 1.f + std::ldexp(1.f, -6));
  EXPECT_EQ(round_bfloat16(1.f + std::ldexp(1.f, -8) + std::ldexp(1.f, -20)),
            1.f + std::ldexp(1.f, -7));
  // float16 keeps 11: 1 + 2^-11 ties down to 1, 1 + 3 * 2^-11 up to 1 + 2^-9.
  EXPECT_EQ(round_float16(1.f + std::ldexp(1.f, -11)), 1.f);
  EXPECT_EQ(round_float16(1.f + 3 * std::ldexp(1.f, -11)), 1.f + std::ldexp(1.f, -9));
  EXPECT_EQ(round_float16(70000.f), INFINITY);  // above float16's range
  EXPECT_TRUE(std::isnan(round_bfloat16(NAN)));
}

// ---- the CPU refuses reduced precision (no GPU needed) ----

TEST(ComputeDtypePlumbing, CpuRefusesReducedDtypesInOneLine) {
  EXPECT_EQ(backend_for_device("cpu").compute_dtype(), ComputeDtype::kFloat32);
  for (ComputeDtype d : kReducedDtypes) {
    try {
      backend_for_device("cpu", d);
      ADD_FAILURE() << "cpu accepted " << compute_dtype_name(d);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(compute_dtype_name(d)), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(parse_compute_dtype("bf16"), ComputeDtype::kBFloat16);
  EXPECT_EQ(parse_compute_dtype("half"), ComputeDtype::kFloat16);
}

// ---- an emulating backend: the CPU on 16-bit operands ----

// The CPU backend with every operand of conv2d / linear / matmul / attention rounded to
// `dtype` first, and conv2d's output rounded too before its float32 bias (as
// cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configs write y in 16 bits).
// Everything else is the CPU's float32.
class RoundingCpuBackend final : public Backend {
 public:
  explicit RoundingCpuBackend(ComputeDtype d) : d_(d) {}
  std::string name() const override { return "cpu-rounding-" + compute_dtype_name(d_); }
  void set_threads(int n) override { cpu().set_threads(n); }
  int threads() const override { return cpu().threads(); }
  ComputeDtype compute_dtype() const override { return d_; }

  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias,
                const Conv2dParams& p) override {
    Tensor y = rounded(d_, cpu().conv2d(rounded(d_, x), weight(w), nullptr, p));
    if (bias) {
      const int64_t hw = y.size(2) * y.size(3), o = y.size(1);
      float* py = y.data();
      for (int64_t i = 0; i < y.numel(); ++i) py[i] += (*bias)[(i / hw) % o];
    }
    return y;
  }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) override {
    return cpu().linear(rounded(d_, x), weight(w), bias);
  }
  Tensor matmul(const Tensor& a, const Tensor& b, bool tb) override {
    return cpu().matmul(rounded(d_, a), rounded(d_, b), tb);
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override {
    return cpu().attention(rounded(d_, q), rounded(d_, k), rounded(d_, v), heads, scale, causal);
  }

  Tensor group_norm(const Tensor& x, int g, const Tensor* ga, const Tensor* be, float eps) override {
    return cpu().group_norm(x, g, ga, be, eps);
  }
  Tensor layer_norm(const Tensor& x, const Tensor* g, const Tensor* b, float eps) override {
    return cpu().layer_norm(x, g, b, eps);
  }
  Tensor batch_norm(const Tensor& x, const Tensor& m, const Tensor& v, const Tensor* g,
                    const Tensor* b, float eps) override {
    return cpu().batch_norm(x, m, v, g, b, eps);
  }
  Tensor instance_norm(const Tensor& x, float eps) override { return cpu().instance_norm(x, eps); }
  Tensor softmax(const Tensor& x) override { return cpu().softmax(x); }
  Tensor activation(const Tensor& x, Activation a) override { return cpu().activation(x, a); }
  Tensor add(const Tensor& a, const Tensor& b) override { return cpu().add(a, b); }
  Tensor sub(const Tensor& a, const Tensor& b) override { return cpu().sub(a, b); }
  Tensor mul(const Tensor& a, const Tensor& b) override { return cpu().mul(a, b); }
  Tensor scale(const Tensor& x, float s) override { return cpu().scale(x, s); }
  Tensor add_scalar(const Tensor& x, float s) override { return cpu().add_scalar(x, s); }
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override {
    return cpu().add_channel_bias(x, b);
  }
  Tensor clamp(const Tensor& x, float lo, float hi) override { return cpu().clamp(x, lo, hi); }
  Tensor concat(const std::vector<Tensor>& xs, int dim) override { return cpu().concat(xs, dim); }
  Tensor slice(const Tensor& x, int dim, int64_t s, int64_t e) override {
    return cpu().slice(x, dim, s, e);
  }
  Tensor nchw_to_tokens(const Tensor& x) override { return cpu().nchw_to_tokens(x); }
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().tokens_to_nchw(x, h, w);
  }
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override {
    return cpu().permute(x, perm);
  }
  Tensor upsample_nearest(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().upsample_nearest(x, h, w);
  }
  Tensor upsample_bilinear(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bilinear(x, h, w, ac);
  }
  Tensor upsample_bicubic(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bicubic(x, h, w, ac);
  }
  Tensor grid_sample(const Tensor& x, const Tensor& g, GridSampleMode m, bool ac) override {
    return cpu().grid_sample(x, g, m, ac);
  }
  Tensor avg_pool2d(const Tensor& x, int k, int s) override { return cpu().avg_pool2d(x, k, s); }
  Tensor correlation_volume(const Tensor& f1, const Tensor& f2) override {
    return cpu().correlation_volume(f1, f2);
  }
  Tensor raft_corr_lookup(const std::vector<Tensor>& p, const Tensor& c, int r) override {
    return cpu().raft_corr_lookup(p, c, r);
  }
  Tensor raft_corr_lookup_direct(const Tensor& f1, const std::vector<Tensor>& f2, const Tensor& c,
                                 int r) override {
    return cpu().raft_corr_lookup_direct(f1, f2, c, r);
  }
  Tensor raft_convex_upsample(const Tensor& f, const Tensor& m, int factor) override {
    return cpu().raft_convex_upsample(f, m, factor);
  }

 private:
  static Backend& cpu() { return cpu_backend(); }
  // Mapped (borrowed) weights rounded once, so the CPU's own per-weight caches
  // (reordered convolution weights) keep working.
  Tensor weight(const Tensor& w) {
    if (!w.is_borrowed()) return rounded(d_, w);
    const std::shared_ptr<const void> owner = w.storage_owner().lock();
    std::lock_guard<std::mutex> lock(mutex_);
    Rounded& r = weights_[w.storage_ptr()];
    const std::shared_ptr<const void> cached_owner = r.owner.lock();
    const bool same = cached_owner && !cached_owner.owner_before(owner) &&
                      !owner.owner_before(cached_owner) && r.values.numel() == w.numel();
    if (!same) r = Rounded{owner, rounded(d_, w)};
    return r.values.reshape(w.shape());
  }
  struct Rounded {
    std::weak_ptr<const void> owner;  // a remapped file at the same address is not a match
    Tensor values;
  };
  ComputeDtype d_;
  std::mutex mutex_;
  std::map<const void*, Rounded> weights_;
};

// ---- closeness ----

double rel_l2(const Tensor& got, const Tensor& want) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got[i], w = want[i];
    diff += (g - w) * (g - w);
    ref += w * w;
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// got (any device of `be`) vs want (host): relative L2 within tol, and above
// `at_least` (a reduced result identical to float32 means no rounding happened).
::testing::AssertionResult RelL2Within(Backend& be, const Tensor& got_any, const Tensor& want,
                                       double tol, const std::string& what,
                                       double at_least = 0) {
  const Tensor got = be.to_host(got_any);
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(got.shape())
                                         << " vs " << shape_str(want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    if (!std::isfinite(got[i]))
      return ::testing::AssertionFailure() << what << ": non-finite value at flat " << i;
  const double rel = rel_l2(got, want);
  std::printf("[half] %-12s %-52s rel_l2 %.3g\n", be.name().c_str(), what.c_str(), rel);
  if (!(rel <= tol) || !(rel >= at_least))
    return ::testing::AssertionFailure() << what << ": rel L2 " << rel << " outside [" << at_least
                                         << ", " << tol << "]";
  return ::testing::AssertionSuccess();
}

// Deterministic uniform values in [lo, hi).
Tensor random(Shape shape, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = Tensor::uninitialized(std::move(shape));
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const float u = static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.f;
    p[i] = lo + (hi - lo) * u;
  }
  return t;
}

// ---- op by op on the GPU ----

constexpr double kOpBound = 1e-2;  // vs the float32 CUDA result
constexpr double kAtLeast = 1e-6;  // 16-bit rounding must show
// vs the CPU on the same rounded operands: float32 accumulation in another
// order (~1e-6); a convolution's 16-bit y may round the other way (one ulp).
// (Tensor cores may add a little: 5e-5 still sits well below float16's
// rounding effect, ~3e-4.)
constexpr double kSameOperandsProduct = 5e-5, kSameOperandsConv = 1e-3;

// The 16-bit weight copies a CUDA backend has made so far.
int64_t weight_copies(Backend& be) {
#ifdef SDVSR_HAVE_CUDA
  return static_cast<CudaBackend&>(be).reduced_weight_copies();
#else
  (void)be;
  return 0;
#endif
}

TEST(CudaHalfOps, BackendsPerDtype) {
  REQUIRE_CUDA();
  Backend& f32 = backend_for_device("cuda");
  EXPECT_EQ(f32.compute_dtype(), ComputeDtype::kFloat32);
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    EXPECT_EQ(be.compute_dtype(), d);
    EXPECT_NE(&be, &f32);
    EXPECT_EQ(&be, &backend_for_device("cuda:0", d));
  }
}

TEST(CudaHalfOps, Conv2d) {
  REQUIRE_CUDA();
  struct Case {
    int64_t n, c, h, w, o, k;
    Conv2dParams p;
    bool bias;
  };
  const std::vector<Case> cases = {
      {2, 5, 13, 11, 7, 3, {1, 1, 1, 1, 1, 1, 1}, true},
      {2, 5, 13, 11, 7, 3, {2, 2, 1, 1, 1, 1, 1}, false},  // stride 2
      {1, 6, 9, 15, 9, 3, {1, 1, 1, 1, 1, 1, 3}, true},    // groups 3
      {2, 3, 17, 10, 4, 3, {1, 1, 2, 2, 2, 2, 1}, true},   // dilation 2
      {2, 7, 5, 9, 3, 1, {1, 1, 0, 0, 1, 1, 1}, true},     // 1x1
      {1, 3, 23, 19, 5, 7, {2, 2, 3, 3, 1, 1, 1}, true},   // RAFT's stem
      {1, 32, 12, 16, 64, 3, {1, 1, 1, 1, 1, 1, 1}, true}, // tensor-core friendly sizes
  };
  Backend& f32 = backend_for_device("cuda");
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    int seed = 1;
    for (const Case& k : cases) {
      const std::string what = compute_dtype_name(d) + " conv case " + std::to_string(seed);
      const Tensor x = random({k.n, k.c, k.h, k.w}, seed++);
      const Tensor wt = random({k.o, k.c / k.p.groups, k.k, k.k}, seed++);
      const Tensor b = random({k.o}, seed++);
      const Tensor* bias = k.bias ? &b : nullptr;
      const Tensor got = be.conv2d(x, wt, bias, k.p);
      EXPECT_EQ(got.device(), Device::kCuda);
      EXPECT_TRUE(RelL2Within(be, got, f32.to_host(f32.conv2d(x, wt, bias, k.p)), kOpBound,
                              what + " vs float32", kAtLeast));
      RoundingCpuBackend emulated(d);
      EXPECT_TRUE(RelL2Within(be, got, emulated.conv2d(x, wt, bias, k.p), kSameOperandsConv,
                              what + " vs same operands"));
    }
  }
}

TEST(CudaHalfOps, LinearAndMatmul) {
  REQUIRE_CUDA();
  Backend& f32 = backend_for_device("cuda");
  const Tensor x = random({2, 7, 33}, 1), w = random({19, 33}, 2), b = random({19}, 3);
  const Tensor a = random({2, 9, 17}, 4), m = random({2, 17, 13}, 5), mt = random({2, 13, 17}, 6);
  const Tensor xl = random({3, 64, 320}, 7), wl = random({640, 320}, 8, -0.1f, 0.1f);
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    RoundingCpuBackend emulated(d);
    const std::string n = compute_dtype_name(d);
    auto check = [&](const Tensor& got, const Tensor& ref32, const Tensor& same,
                     const std::string& what) {
      EXPECT_TRUE(RelL2Within(be, got, ref32, kOpBound, n + " " + what + " vs float32", kAtLeast));
      EXPECT_TRUE(RelL2Within(be, got, same, kSameOperandsProduct, n + " " + what + " vs same operands"));
    };
    check(be.linear(x, w, &b), f32.to_host(f32.linear(x, w, &b)), emulated.linear(x, w, &b),
          "linear+bias");
    check(be.linear(x, w, nullptr), f32.to_host(f32.linear(x, w, nullptr)),
          emulated.linear(x, w, nullptr), "linear");
    check(be.linear(xl, wl, nullptr), f32.to_host(f32.linear(xl, wl, nullptr)),
          emulated.linear(xl, wl, nullptr), "linear 320->640");
    check(be.matmul(a, m, false), f32.to_host(f32.matmul(a, m, false)),
          emulated.matmul(a, m, false), "matmul");
    check(be.matmul(a, mt, true), f32.to_host(f32.matmul(a, mt, true)),
          emulated.matmul(a, mt, true), "matmul transpose_b");
  }
}

TEST(CudaHalfOps, Attention) {
  REQUIRE_CUDA();
  struct Case {
    int64_t b, lq, lk;
    int heads;
    int64_t d;
    bool causal;
  };
  Backend& f32 = backend_for_device("cuda");
  for (ComputeDtype dt : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", dt);
    RoundingCpuBackend emulated(dt);
    for (const Case& k : std::vector<Case>{{2, 37, 29, 3, 8, false},
                                           {1, 77, 77, 2, 40, true},
                                           {1, 130, 83, 1, 160, false}}) {
      const std::string what = compute_dtype_name(dt) + " attention lq " + std::to_string(k.lq) +
                               " d " + std::to_string(k.d);
      const Tensor q = random({k.b, k.lq, k.heads * k.d}, 7, -2.f, 2.f);
      const Tensor kk = random({k.b, k.lk, k.heads * k.d}, 8, -2.f, 2.f);
      const Tensor v = random({k.b, k.lk, k.heads * k.d}, 9);
      const float scale = 1.f / std::sqrt(static_cast<float>(k.d));
      const Tensor got = be.attention(q, kk, v, k.heads, scale, k.causal);
      EXPECT_TRUE(RelL2Within(be, got, f32.to_host(f32.attention(q, kk, v, k.heads, scale, k.causal)),
                              kOpBound, what + " vs float32", kAtLeast));
      EXPECT_TRUE(RelL2Within(be, got, emulated.attention(q, kk, v, k.heads, scale, k.causal),
                              kSameOperandsProduct, what + " vs same operands"));
    }
  }
}

// The 16-bit weight copy is made once: a borrowed (mapped) host weight and a
// weight moved to the device give the same numbers on every call, and the
// cached copy follows the weight's storage, never a recycled address.
TEST(CudaHalfOps, WeightCopiesAreCachedBySource) {
  REQUIRE_CUDA();
  const Tensor x = random({4, 48}, 11);
  const Tensor w_owned = random({24, 48}, 12);
  const auto keep = std::make_shared<std::vector<float>>(w_owned.to_vector());
  const Tensor w_borrowed = Tensor::borrow({24, 48}, keep->data(), keep);
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    const int64_t copies0 = weight_copies(be);
    const Tensor first = be.to_host(be.linear(x, w_borrowed, nullptr));
    EXPECT_EQ(weight_copies(be), copies0 + 1);
    const Tensor again = be.to_host(be.linear(x, w_borrowed, nullptr));
    EXPECT_EQ(weight_copies(be), copies0 + 1) << "the mapped weight was converted again";
    ASSERT_EQ(first.to_vector(), again.to_vector());
    const Tensor w_dev = be.to_device(w_owned);
    const Tensor dev1 = be.to_host(be.linear(x, w_dev, nullptr));
    const Tensor dev2 = be.to_host(be.linear(x, w_dev, nullptr));
    EXPECT_EQ(weight_copies(be), copies0 + 2) << "the device weight was converted again";
    EXPECT_EQ(dev1.to_vector(), first.to_vector());
    EXPECT_EQ(dev2.to_vector(), first.to_vector());
    // Activations (x, matmul operands) are converted per call, never cached.
    (void)be.to_host(be.matmul(random({1, 3, 4}, 16), be.to_device(random({1, 4, 5}, 17)), false));
    EXPECT_EQ(weight_copies(be), copies0 + 2);
    // A different weight in fresh storage gives its own result.
    const Tensor w2 = be.to_device(random({24, 48}, 13));
    const Tensor other = be.to_host(be.linear(x, w2, nullptr));
    EXPECT_NE(other.to_vector(), first.to_vector());
    const Tensor conv_w = be.to_device(random({8, 6, 3, 3}, 14));
    const Tensor cx = random({1, 6, 10, 12}, 15);
    const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
    EXPECT_EQ(be.to_host(be.conv2d(cx, conv_w, nullptr, p)).to_vector(),
              be.to_host(be.conv2d(cx, conv_w, nullptr, p)).to_vector());
  }
}

// The float32 backend is untouched by the reduced ones: same bits before and
// after they ran.
TEST(CudaHalfOps, Float32StaysBitExact) {
  REQUIRE_CUDA();
  Backend& f32 = backend_for_device("cuda");
  const Tensor x = random({2, 7, 33}, 21), w = random({19, 33}, 22);
  const std::vector<float> before = f32.to_host(f32.linear(x, w, nullptr)).to_vector();
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    (void)be.to_host(be.linear(x, w, nullptr));
  }
  EXPECT_EQ(f32.to_host(f32.linear(x, w, nullptr)).to_vector(), before);
}

// ---- per module on the golden tiny model ----

// Relative L2 of a module's output against the golden float32 one. bfloat16
// keeps 8 significant bits: its operand rounding alone moves the tiny model's
// deeper outputs by ~1e-2 (emulated on the CPU: ControlNet mid residual
// 1.5e-2, VAE encode 1.3e-2, U-Net 1.1e-2; float16 at most 1.9e-3), so its
// bound is wider.
double module_bound(ComputeDtype d) { return d == ComputeDtype::kBFloat16 ? 3e-2 : 1e-2; }

// Every module, teacher-forced on the stages stored in the golden sequence
// e2e_seq_a (the one case file scripts/cuda-bundle.sh --golden packs): RAFT,
// the U-Net alone (frame 0 has no ControlNet), the ControlNet alone (its mid
// residual), U-Net + ControlNet, and the VAE decoder with and without
// temporal features.
void check_stages(Backend& be) {
  const std::string dt = compute_dtype_name(be.compute_dtype());
  const double bound = module_bound(be.compute_dtype());
  ModelPaths p;
  p.model_dir = test::golden_path("tiny");
  std::unique_ptr<ModelBundle> models = load_model_bundle(p, be);
  auto f = test::open_case("e2e_seq_a.safetensors");
  auto key = [](int k, const std::string& name) { return "frame" + std::to_string(k) + "." + name; };
  StreamSession s(*models, be, StreamOptions{});
  const Tensor up0 = f->tensor(key(0, "upscaled")), up1 = f->tensor(key(1, "upscaled"));
  EXPECT_TRUE(RelL2Within(be, s.flow(up1, up0), f->tensor(key(1, "flow")), bound,
                          dt + " raft flow (seq_a frame 1)"));
  const Tensor warped = f->tensor(key(1, "warped_prev"));
  for (int k : {0, 1}) {
    const std::string step0 = key(k, "step0.");
    const int64_t t = f->int64_values(step0 + "timestep").at(0);
    EXPECT_TRUE(RelL2Within(
        be, s.predict_noise(f->tensor(step0 + "latents"), f->tensor(key(k, "lr")), t,
                            k == 0 ? nullptr : &warped),
        f->tensor(step0 + "noise_pred"), bound,
        dt + (k == 0 ? " unet noise_pred (frame 0)" : " unet+controlnet noise_pred (frame 1)")));
    if (k == 1) {
      const ControlNetResiduals r =
          models->controlnet->forward(f->tensor(step0 + "unet_input"), static_cast<float>(t),
                                      f->tensor("prompt_embeds"), warped, 1.0f);
      EXPECT_TRUE(RelL2Within(be, r.mid, f->tensor(step0 + "controlnet_mid_res"), bound,
                              dt + " controlnet mid residual (frame 1)"));
    }
    int last = 0;
    while (f->has(key(k, "step" + std::to_string(last + 1) + ".latents_next"))) ++last;
    const Tensor z = f->tensor(key(k, "step" + std::to_string(last) + ".latents_next"));
    EXPECT_TRUE(RelL2Within(be, s.decode(z, k == 0 ? nullptr : &warped),
                            f->tensor(key(k, "decoded")), bound,
                            dt + " vae decode (frame " + std::to_string(k) + ")"));
  }
}

// The dedicated module cases (not in the GPU bundle): U-Net and ControlNet at
// even and odd latent sizes, the VAE's encoder and decoder, RAFT's flow.
void check_module_cases(Backend& be) {
  const std::string dt = compute_dtype_name(be.compute_dtype());
  const double bound = module_bound(be.compute_dtype());
  {
    auto unet = UNet2DConditionModel::load(test::golden_path("tiny/unet"), be);
    for (const std::string file : {"unet.safetensors", "unet_odd.safetensors"}) {
      auto g = test::open_case(file);
      const float t = static_cast<float>(g->int64_values("timestep").at(0));
      EXPECT_TRUE(RelL2Within(be, unet->forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states")),
                              g->tensor("output"), bound, dt + " " + file + " output"));
      ControlNetResiduals res;
      for (int i = 0; g->has("down_block_additional_residuals." + std::to_string(i)); ++i)
        res.down.push_back(g->tensor("down_block_additional_residuals." + std::to_string(i)));
      res.mid = g->tensor("mid_block_additional_residual");
      EXPECT_TRUE(RelL2Within(
          be, unet->forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states"), &res),
          g->tensor("output_with_residuals"), bound, dt + " " + file + " with residuals"));
    }
  }
  {
    auto controlnet = ControlNetModel::load(test::golden_path("tiny/controlnet"), be);
    for (const std::string file : {"controlnet.safetensors", "controlnet_odd.safetensors"}) {
      auto g = test::open_case(file);
      const float t = static_cast<float>(g->int64_values("timestep").at(0));
      const ControlNetResiduals r =
          controlnet->forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states"),
                              g->tensor("controlnet_cond"), 1.0f);
      for (size_t i = 0; i < r.down.size(); ++i) {
        const std::string key = "scale1.down_block_res_samples." + std::to_string(i);
        EXPECT_TRUE(RelL2Within(be, r.down[i], g->tensor(key), bound, dt + " " + file + " " + key));
      }
      EXPECT_TRUE(RelL2Within(be, r.mid, g->tensor("scale1.mid_block_res_sample"), bound,
                              dt + " " + file + " mid"));
    }
  }
  {
    auto vae = TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), be);
    auto g = test::open_case("temporal_vae.safetensors");
    EXPECT_TRUE(RelL2Within(be, vae->encode(g->tensor("encode.input")), g->tensor("encode.latents"),
                            bound, dt + " vae encode"));
    const Tensor z = g->tensor("decode.input");
    EXPECT_TRUE(RelL2Within(be, vae->decode(z, nullptr), g->tensor("decode.output"), bound,
                            dt + " vae decode"));
    std::vector<Tensor> feats = vae->temporal_features(g->tensor("features.input"));
    EXPECT_TRUE(RelL2Within(be, vae->decode(z, &feats), g->tensor("decode_temporal.output"),
                            bound, dt + " vae decode temporal"));
  }
  {
    auto raft = Raft::load(test::golden_path("tiny/raft/raft_large.pth"), be);
    auto g = test::open_case("raft.safetensors");
    EXPECT_TRUE(RelL2Within(be, raft->flow(g->tensor("image1"), g->tensor("image2")),
                            g->tensor("flow"), bound, dt + " raft flow"));
  }
}

// ---- end to end: the golden sequence, PSNR of the frames ----

constexpr double kMinPsnrDb = 40.0;

// PSNR of two decoder outputs after the pipeline's postprocess ((x/2+0.5)
// clamped to [0, 1]), before quantisation.
double psnr_db(const Tensor& got, const Tensor& want) {
  double se = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    auto post = [](float v) { return std::min(1.0, std::max(0.0, v / 2.0 + 0.5)); };
    const double e = post(got[i]) - post(want[i]);
    se += e * e;
  }
  const double mse = se / static_cast<double>(std::max<int64_t>(want.numel(), 1));
  return mse > 0 ? 10.0 * std::log10(1.0 / mse) : 999.0;
}

void check_sequence(Backend& be, const std::string& file) {
  ModelPaths p;
  p.model_dir = test::golden_path("tiny");
  std::unique_ptr<ModelBundle> models = load_model_bundle(p, be);
  auto f = test::open_case(file);
  StreamSession s(*models, be, StreamOptions{});
  int frames = 0;
  for (int k = 0; f->has("frame" + std::to_string(k) + ".lr"); ++k) {
    const std::string key = "frame" + std::to_string(k) + ".";
    const Tensor noise = f->tensor(key + "init_latents");
    const Tensor decoded = be.to_host(s.push(f->tensor(key + "lr"), &noise));
    const Tensor want = f->tensor(key + "decoded");
    ASSERT_EQ(decoded.shape(), want.shape());
    const double psnr = psnr_db(decoded, want);
    std::printf("[half] %-12s %s %s frame %d  PSNR %.2f dB\n", be.name().c_str(),
                compute_dtype_name(be.compute_dtype()).c_str(), file.c_str(), k, psnr);
    EXPECT_GE(psnr, kMinPsnrDb) << file << " frame " << k;
    ++frames;
  }
  EXPECT_GE(frames, 2);
}

class CudaHalfGolden : public ::testing::TestWithParam<ComputeDtype> {};

TEST_P(CudaHalfGolden, ModulesWithinBound) {
  REQUIRE_CUDA();
  check_stages(backend_for_device("cuda", GetParam()));
}

TEST_P(CudaHalfGolden, SequenceFramesAbove40Db) {
  REQUIRE_CUDA();
  check_sequence(backend_for_device("cuda", GetParam()), "e2e_seq_a.safetensors");
}

std::string dtype_param_name(const ::testing::TestParamInfo<ComputeDtype>& info) {
  return compute_dtype_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Reduced, CudaHalfGolden, ::testing::ValuesIn(kReducedDtypes),
                         dtype_param_name);

// ---- the same budgets on the CPU, emulated (runs everywhere) ----

class ReducedPrecisionBudget : public ::testing::TestWithParam<ComputeDtype> {};

TEST_P(ReducedPrecisionBudget, ModulesWithinBound) {
  RoundingCpuBackend be(GetParam());
  check_stages(be);
  check_module_cases(be);
}

TEST_P(ReducedPrecisionBudget, SequenceFramesAbove40Db) {
  RoundingCpuBackend be(GetParam());
  check_sequence(be, "e2e_seq_a.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Emulated, ReducedPrecisionBudget, ::testing::ValuesIn(kReducedDtypes),
                         dtype_param_name);

}  // namespace
}  // namespace sdvsr
