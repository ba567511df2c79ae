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
// same budgets are checked on the CPU by reduced_precision_budget_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test_support.h"
#include "golden.h"
#include "models/raft.h"
#include "reduced_precision_checks.h"
#include "runtime/device_backend.h"
#ifdef SDVSR_HAVE_CUDA
#include "runtime/cuda/cuda_attention_mma.h"
#include "runtime/cuda/cuda_backend.h"
#endif

namespace sdvsr {
namespace {

using namespace test;  // reduced_precision_checks.h

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

// group_norm_act then conv2d_stack on the float32 CUDA backend, on the host.
Tensor f32_reference_normed_conv(const Tensor& x, const GroupNormAct& norm, const ConvStage& conv,
                                 const Tensor* residual) {
  Backend& f32 = backend_for_device("cuda");
  const Tensor normed = f32.group_norm_act(x, norm.groups, norm.gamma, norm.beta, norm.eps,
                                           norm.act);
  return f32.to_host(f32.conv2d_stack(normed, {conv}, residual));
}

constexpr double kOpBound = 1e-2;  // vs the float32 CUDA result
constexpr double kAtLeast = 1e-6;  // 16-bit rounding must show
// vs the CPU on the same rounded operands: float32 accumulation in another
// order (~1e-6); a convolution's 16-bit y may round the other way (one ulp).
// (Tensor cores may add a little: 5e-5 still sits well below float16's
// rounding effect, ~3e-4.)
constexpr double kSameOperandsProduct = 5e-5, kSameOperandsConv = 1e-3;
// Attention on tensor cores also rounds its probabilities to 16 bits, as the
// reference does; where the two exps differ in float32's last bit, a
// probability can round the other way (a bfloat16 ulp is 2^15 float32 ones).
// Measured on the emulator: at most 6e-5, most cases 1e-7.
constexpr double kSameOperandsAttention = 2e-4;
// Launches of the tensor-core attention kernel so far.
int64_t tensor_core_attentions() {
#ifdef SDVSR_HAVE_CUDA
  static_assert(cuda::kMmaMaxHeadSize == RoundingCpuBackend::kTensorCoreHeadSize &&
                cuda::kMmaKeyTile == RoundingCpuBackend::kTensorCoreKeyTile);
  return cuda::attention_mma_launches();
#else
  return 0;
#endif
}

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

// A ResNet block's normalised convolution: the reduced backend's norm writes
// the convolution's 16-bit operand itself, which must hold exactly the values
// the composition rounds (group_norm_act in float32, then the operand's
// rounding): same bits, with and without the block's other tails, and in the
// shortcut form (Backend's default composes that one through it).
TEST(CudaHalfOps, NormedConvolutionsGiveTheComposedBits) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 8, 9, 11}, 31, -3.f, 3.f);
  const Tensor gamma = random({8}, 32), beta = random({8}, 33);
  const Tensor w3 = random({6, 8, 3, 3}, 34), bias = random({6}, 35);
  const Tensor temb = random({2, 6}, 36), skip = random({2, 6, 9, 11}, 37);
  const Tensor skip_in = random({2, 5, 9, 11}, 38), w1 = random({6, 5, 1, 1}, 39);
  const GroupNormAct norm{4, &gamma, &beta, 1e-6f, Activation::kSiLU};
  const Conv2dParams same{1, 1, 1, 1, 1, 1, 1};
  ConvStage plain{&w3, &bias, same}, tails{&w3, &bias, same, Activation::kSiLU, &temb};
  const ConvStage shortcut{&w1, nullptr, Conv2dParams{}};
  for (ComputeDtype d : kReducedDtypes) {
    Backend& be = backend_for_device("cuda", d);
    const std::string n = compute_dtype_name(d);
    const Tensor normed = be.group_norm_act(x, norm.groups, norm.gamma, norm.beta, norm.eps,
                                            norm.act);
    for (const auto& [conv, residual, what] :
         std::vector<std::tuple<ConvStage, const Tensor*, std::string>>{
             {plain, nullptr, "conv"}, {tails, &skip, "conv with time embedding and skip"}}) {
      const Tensor want = be.to_host(be.conv2d_stack(normed, {conv}, residual));
      const Tensor got = be.to_host(be.group_norm_act_conv2d(x, norm, conv, residual));
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * got.numel()), 0)
          << n << " " << what;
      EXPECT_TRUE(RelL2Within(be, got, f32_reference_normed_conv(x, norm, conv, residual),
                              kOpBound, n + " normed " + what + " vs float32", kAtLeast));
    }
    const Tensor skip_made = be.conv2d_stack(skip_in, {shortcut}, nullptr);
    const Tensor want = be.to_host(be.conv2d_stack(normed, {tails}, &skip_made));
    const Tensor got =
        be.to_host(be.group_norm_act_conv2d_shortcut(x, norm, tails, skip_in, shortcut));
    EXPECT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * got.numel()), 0)
        << n << " shortcut form";
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
    // Heads up to 128 without a causal mask run on tensor cores: every head-size
    // bucket (32, 64, 128), keys over several tiles of 64 and a partial last one,
    // queries over several blocks of 64 and a partial last one, a few queries
    // and 77 keys (cross-attention), heads of 20 (not a multiple of 8: keys and
    // values staged one element at a time). The causal mask and d = 160 take
    // the scalar kernel.
    for (const Case& k : std::vector<Case>{{2, 37, 29, 3, 8, false},
                                           {1, 77, 77, 2, 40, true},
                                           {1, 130, 83, 1, 160, false},
                                           {1, 70, 150, 2, 64, false},
                                           {2, 20, 130, 1, 128, false},
                                           {1, 9, 77, 4, 40, false},
                                           {1, 140, 64, 2, 32, false},
                                           {1, 50, 100, 3, 20, false}}) {
      const std::string what = compute_dtype_name(dt) + " attention lq " + std::to_string(k.lq) +
                               " lk " + std::to_string(k.lk) + " d " + std::to_string(k.d);
      const Tensor q = random({k.b, k.lq, k.heads * k.d}, 7, -2.f, 2.f);
      const Tensor kk = random({k.b, k.lk, k.heads * k.d}, 8, -2.f, 2.f);
      const Tensor v = random({k.b, k.lk, k.heads * k.d}, 9);
      const float scale = 1.f / std::sqrt(static_cast<float>(k.d));
      const int64_t launches = tensor_core_attentions();
      const Tensor got = be.attention(q, kk, v, k.heads, scale, k.causal);
      const bool tensor_cores = !k.causal && k.d <= 128;
      EXPECT_EQ(tensor_core_attentions() - launches, tensor_cores ? 1 : 0) << what;
      EXPECT_TRUE(RelL2Within(be, got, f32.to_host(f32.attention(q, kk, v, k.heads, scale, k.causal)),
                              kOpBound, what + " vs float32", kAtLeast));
      EXPECT_TRUE(RelL2Within(be, got, emulated.attention(q, kk, v, k.heads, scale, k.causal),
                              tensor_cores ? kSameOperandsAttention : kSameOperandsProduct,
                              what + " vs same operands"));
    }
  }
}

// RAFT's weights come from a PyTorch .pth, read into ordinary memory: they
// go to the device (and, in 16-bit mode, are converted) on the first flow
// only; a second flow uploads and converts nothing and gives the same flow.
TEST(CudaHalfOps, RaftWeightsFromAPthGoUpOnce) {
  REQUIRE_CUDA();
  auto golden = test::open_case("raft.safetensors");
  const Tensor image1 = golden->tensor("image1"), image2 = golden->tensor("image2");
  for (ComputeDtype d : {ComputeDtype::kFloat32, ComputeDtype::kFloat16, ComputeDtype::kBFloat16}) {
    SCOPED_TRACE(compute_dtype_name(d));
    Backend& be = backend_for_device("cuda", d);
    auto raft = Raft::load(test::golden_path("tiny/raft/raft_large.pth"), be);
#ifdef SDVSR_HAVE_CUDA
    auto& cuda = static_cast<CudaBackend&>(be);
    const int64_t uploads0 = cuda.weight_uploads(), copies0 = cuda.reduced_weight_copies();
    const Tensor first = be.to_host(raft->flow(image1, image2));
    const int64_t uploads = cuda.weight_uploads(), copies = cuda.reduced_weight_copies();
    EXPECT_GT(uploads + copies, uploads0 + copies0) << "no weight was cached at all";
    const Tensor second = be.to_host(raft->flow(image1, image2));
    EXPECT_EQ(cuda.weight_uploads(), uploads) << "RAFT weights were uploaded again";
    EXPECT_EQ(cuda.reduced_weight_copies(), copies) << "RAFT weights were converted again";
    EXPECT_EQ(second.to_vector(), first.to_vector());
#endif
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

// ---- the golden model: every module, then the sequence ----

class CudaHalfGolden : public ::testing::TestWithParam<ComputeDtype> {};

TEST_P(CudaHalfGolden, ModulesWithinBound) {
  REQUIRE_CUDA();
  check_stages(backend_for_device("cuda", GetParam()));
}

TEST_P(CudaHalfGolden, SequenceFramesAbove40Db) {
  REQUIRE_CUDA();
  check_sequence(backend_for_device("cuda", GetParam()), "e2e_seq_a.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Reduced, CudaHalfGolden, ::testing::ValuesIn(kReducedDtypes),
                         dtype_param_name);

}  // namespace
}  // namespace sdvsr
