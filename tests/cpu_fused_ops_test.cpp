// The CPU backend's fused ops (group_norm_act, conv2d_add, conv2d_stack,
// group_norm_act_conv2d, geglu, linear_geglu, linear_add,
// add_bilinear_upsampled) give exactly the
// bits of the compositions they replace (Backend's defaults), on awkward
// shapes and with 1 and 2 threads;
// and whole models built on them give the same bits as the same models run
// through the separate ops (cpu_norm_conv_test.cpp has group_norm_act_conv2d's
// own cases, cpu_upsample_conv_test.cpp upsample_nearest_conv2d's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "golden.h"
#include "models/controlnet.h"
#include "models/raft.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "cpu_forwarding_backend.h"
#include "test_tensors.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"

namespace sdvsr {
namespace {

Backend& cpu() { return cpu_backend(); }

using test::random_tensor;
using test::SameBits;

// What `f` throws, or "no error".
std::string message(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  return std::string("no error");
}

// Runs `body` with 1 and then 2 threads, restoring the count afterwards.
template <class Body>
void with_one_and_two_threads(Body&& body) {
  const int threads = cpu().threads();
  for (int t : {1, 2}) {
    cpu().set_threads(t);
    SCOPED_TRACE("threads " + std::to_string(t));
    body();
  }
  cpu().set_threads(threads);
}

const Activation kAllActivations[] = {Activation::kNone,      Activation::kSiLU,
                                      Activation::kGELU,      Activation::kGELUTanh,
                                      Activation::kQuickGELU, Activation::kReLU,
                                      Activation::kTanh,      Activation::kSigmoid};

// ---------------------------------------------------------------- group_norm_act
struct NormCase {
  Shape shape;
  int groups;
  bool affine;
};

// A norm's input (with a mean and spread to remove) and its gamma and beta.
struct NormInputs {
  Tensor x, gamma, beta;
  NormInputs(const Shape& shape, uint32_t& seed)
      : x(random_tensor(shape, seed++, -3.f, 5.f)),
        gamma(random_tensor({shape[1]}, seed++, 0.5f, 2.f)),
        beta(random_tensor({shape[1]}, seed++, -1.f, 1.f)) {}
};

TEST(CpuFusedOps, GroupNormActEqualsGroupNormThenActivation) {
  const NormCase cases[] = {
      {{1, 6, 5, 7}, 3, true},      // odd spatial
      {{2, 9, 3, 11}, 3, true},     // batch 2, three channels a group
      {{2, 32, 4, 4}, 32, false},   // one channel a group, no affine
      {{1, 64, 37, 41}, 8, true},   // 8 x 1517 per group: several activation chunks
      {{2, 10, 97, 89}, 5, true},   // one channel (8633) is over a chunk by itself
      {{2, 12, 17}, 4, true},       // [N, C, L]
      {{1, 4, 1, 1}, 2, true},      // two values a group
  };
  uint32_t seed = 1;
  for (const NormCase& c : cases) {
    const NormInputs in(c.shape, seed);
    const Tensor& x = in.x;
    const Tensor* g = c.affine ? &in.gamma : nullptr;
    const Tensor* b = c.affine ? &in.beta : nullptr;
    for (Activation a : kAllActivations) {
      SCOPED_TRACE(shape_str(c.shape) + " groups " + std::to_string(c.groups) + " activation " +
                   std::to_string(static_cast<int>(a)));
      with_one_and_two_threads([&] {
        const Tensor fused = cpu().group_norm_act(x, c.groups, g, b, 1e-5f, a);
        EXPECT_TRUE(SameBits(fused, cpu().activation(cpu().group_norm(x, c.groups, g, b, 1e-5f), a)));
        // The base class's default is that same composition.
        EXPECT_TRUE(SameBits(fused, cpu().Backend::group_norm_act(x, c.groups, g, b, 1e-5f, a)));
      });
    }
  }
}

// ---------------------------------------------------------------- a Transformer2D's tokens
// Its input: the norm writes the tokens [N, H*W, C] itself.
TEST(CpuFusedOps, GroupNormActTokensEqualsNormThenTokens) {
  const NormCase cases[] = {
      {{1, 64, 12, 20}, 32, true},   // a U-Net transformer's 32 groups
      {{2, 48, 7, 9}, 4, false},     // batch 2, no affine
      {{1, 1024, 5, 8}, 32, true},   // wide channels: few positions a tile
      {{1, 3, 4, 5}, 3, true},
      {{1, 1, 3, 3}, 1, true},       // one channel
  };
  uint32_t seed = 700;
  for (const NormCase& c : cases) {
    const NormInputs in(c.shape, seed);
    const Tensor& x = in.x;
    for (Activation a : {Activation::kNone, Activation::kSiLU, Activation::kGELU}) {
      SCOPED_TRACE(shape_str(c.shape) + " activation " + std::to_string(static_cast<int>(a)));
      const GroupNormAct norm{c.groups, c.affine ? &in.gamma : nullptr,
                              c.affine ? &in.beta : nullptr, 1e-6f, a};
      with_one_and_two_threads([&] {
        const Tensor want = cpu().nchw_to_tokens(
            cpu().group_norm_act(x, c.groups, norm.gamma, norm.beta, norm.eps, a));
        const Tensor got = cpu().group_norm_act_tokens(x, norm);
        ASSERT_EQ(got.shape(), (Shape{c.shape[0], c.shape[2] * c.shape[3], c.shape[1]}));
        EXPECT_TRUE(SameBits(got, want));
        EXPECT_TRUE(SameBits(got, cpu().Backend::group_norm_act_tokens(x, norm)));
      });
    }
  }
}

// Its output: the skip connection is added while the tokens go back to NCHW.
TEST(CpuFusedOps, TokensToNchwAddEqualsTransposeThenAdd) {
  struct Case {
    int64_t n, h, w, c;
  };
  uint32_t seed = 800;
  for (const Case& c : {Case{1, 12, 20, 64}, Case{2, 7, 9, 48}, Case{1, 5, 8, 1024},
                        Case{1, 33, 35, 40}, Case{1, 1, 1, 1}}) {
    SCOPED_TRACE(std::to_string(c.h) + "x" + std::to_string(c.w) + " c " + std::to_string(c.c));
    const Tensor tokens = random_tensor({c.n, c.h * c.w, c.c}, seed++);
    const Tensor residual = random_tensor({c.n, c.c, c.h, c.w}, seed++, -3.f, 3.f);
    with_one_and_two_threads([&] {
      const Tensor want = cpu().add(cpu().tokens_to_nchw(tokens, c.h, c.w), residual);
      const Tensor got = cpu().tokens_to_nchw_add(tokens, c.h, c.w, residual);
      EXPECT_TRUE(SameBits(got, want));
      EXPECT_TRUE(SameBits(got, cpu().Backend::tokens_to_nchw_add(tokens, c.h, c.w, residual)));
    });
  }
}

// The temporal VAE block's ending: a small map upsampled (bilinear) into the
// sum with the convolutions' output and the skip, row by row.
TEST(CpuFusedOps, AddBilinearUpsampledEqualsUpsampleScaleAddsAndActivation) {
  struct Case {
    Shape x, small;
    bool residual;
    Activation act;
  };
  const Case cases[] = {
      {{1, 64, 48, 80}, {1, 64, 12, 20}, true, Activation::kReLU},  // the pooled 4x4 term
      {{2, 16, 37, 29}, {2, 16, 9, 7}, true, Activation::kReLU},    // floor-pooled odd sizes
      {{1, 8, 70, 3}, {1, 8, 17, 1}, false, Activation::kNone},     // more than one row band
      {{1, 3, 5, 6}, {1, 3, 5, 6}, true, Activation::kSiLU},        // the same size
      {{1, 4, 4, 4}, {1, 4, 8, 8}, false, Activation::kTanh},       // a smaller output
  };
  uint32_t seed = 850;
  for (const Case& c : cases) {
    SCOPED_TRACE("x " + shape_str(c.x) + " small " + shape_str(c.small));
    const Tensor x = random_tensor(c.x, seed++, -2.f, 2.f);
    const Tensor small = random_tensor(c.small, seed++, -4.f, 4.f);
    const Tensor residual = random_tensor(c.x, seed++, -1.f, 1.f);
    const Tensor* r = c.residual ? &residual : nullptr;
    with_one_and_two_threads([&] {
      Tensor want = cpu().add(
          x, cpu().scale(cpu().upsample_bilinear(small, c.x[2], c.x[3], false), 0.1f));
      if (r) want = cpu().add(want, *r);
      want = cpu().activation(want, c.act);
      const Tensor before = x.clone();
      // x is shared here: the result is a new tensor and x keeps its values.
      EXPECT_TRUE(SameBits(cpu().add_bilinear_upsampled(x, small, 0.1f, r, c.act), want));
      EXPECT_TRUE(SameBits(x, before));
      // Handed over: computed in x's storage.
      Tensor owned = x.clone();
      const float* storage = owned.data();
      const Tensor got = cpu().add_bilinear_upsampled(std::move(owned), small, 0.1f, r, c.act);
      EXPECT_TRUE(SameBits(got, want));
      EXPECT_EQ(got.data(), storage) << "a tensor handed over was not reused";
      EXPECT_TRUE(SameBits(cpu().Backend::add_bilinear_upsampled(x.clone(), small, 0.1f, r, c.act),
                           want));
    });
  }
}

TEST(CpuFusedOps, TokenOpsRefuseShapesThatDoNotFitNamingTheOp) {
  const Tensor x3 = random_tensor({1, 8, 16}, 1);
  const Tensor x4 = random_tensor({1, 8, 4, 4}, 2);
  const std::string rank = message([&] {
    cpu().group_norm_act_tokens(x3, GroupNormAct{4, nullptr, nullptr, 1e-6f, Activation::kNone});
  });
  EXPECT_NE(rank.find("group_norm_act_tokens"), std::string::npos) << rank;
  const std::string groups = message([&] {
    cpu().group_norm_act_tokens(x4, GroupNormAct{3, nullptr, nullptr, 1e-6f, Activation::kNone});
  });
  EXPECT_NE(groups.find("groups"), std::string::npos) << groups;
  const Tensor tokens = random_tensor({1, 16, 8}, 3);
  const std::string size = message([&] { cpu().tokens_to_nchw_add(tokens, 4, 5, x4); });
  EXPECT_NE(size.find("tokens_to_nchw_add"), std::string::npos) << size;
  const Tensor other = random_tensor({1, 8, 2, 8}, 4);
  const std::string residual = message([&] { cpu().tokens_to_nchw_add(tokens, 4, 4, other); });
  EXPECT_NE(residual.find("residual"), std::string::npos) << residual;
}

TEST(CpuFusedOps, AddBilinearUpsampledRefusesShapesThatDoNotFit) {
  const Tensor x = random_tensor({1, 8, 8, 8}, 1);
  const Tensor small = random_tensor({1, 4, 2, 2}, 2);  // 4 channels for 8
  const std::string channels =
      message([&] { cpu().add_bilinear_upsampled(x, small, 0.1f, nullptr, Activation::kNone); });
  EXPECT_NE(channels.find("add_bilinear_upsampled"), std::string::npos) << channels;
  const Tensor fits = random_tensor({1, 8, 2, 2}, 3);
  const Tensor other = random_tensor({1, 8, 8, 4}, 4);
  const std::string residual =
      message([&] { cpu().add_bilinear_upsampled(x, fits, 0.1f, &other, Activation::kNone); });
  EXPECT_NE(residual.find("residual"), std::string::npos) << residual;
}

TEST(CpuFusedOps, GroupNormActRefusesWhatGroupNormRefuses) {
  const Tensor x = random_tensor({1, 6, 2, 2}, 3);
  EXPECT_THROW(cpu().group_norm_act(x, 4, nullptr, nullptr, 1e-5f, Activation::kSiLU),
               std::runtime_error);
  const Tensor gamma = random_tensor({5}, 4);
  EXPECT_THROW(cpu().group_norm_act(x, 3, &gamma, nullptr, 1e-5f, Activation::kSiLU),
               std::runtime_error);
  EXPECT_THROW(cpu().group_norm_act(x, 3, nullptr, nullptr, 1e-5f, static_cast<Activation>(99)),
               std::runtime_error);
}

// ---------------------------------------------------------------- conv2d_add
struct ConvCase {
  int64_t n, c, h, w, o, k;
  Conv2dParams p;
  bool bias;
};

Conv2dParams params(int stride, int pad, int groups = 1, int dilation = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.groups = groups;
  p.dilation_h = p.dilation_w = dilation;
  return p;
}

TEST(CpuFusedOps, Conv2dAddEqualsResidualPlusConv2d) {
  const ConvCase cases[] = {
      {2, 5, 9, 7, 7, 3, params(1, 1), true},       // odd channels, batch 2
      {1, 3, 11, 13, 16, 3, params(2, 1), true},    // stride 2
      {2, 8, 6, 5, 8, 1, params(1, 0), true},       // 1x1
      {2, 7, 9, 9, 13, 1, params(2, 0), false},     // 1x1 stride 2, no bias (a shortcut)
      {1, 6, 8, 10, 9, 3, params(1, 1, 3), true},   // groups
      {1, 32, 19, 23, 24, 3, params(1, 1), true},   // blocked output layouts
      {2, 16, 12, 12, 40, 3, params(1, 2, 1, 2), true},  // dilation
      {1, 64, 32, 32, 64, 3, params(1, 1), true},   // a U-Net-like block
      {1, 4, 5, 6, 3, 3, params(1, 1), true},       // fewer outputs than a block
      {2, 24, 7, 9, 1, 3, params(1, 1), true},      // one output channel (channels last is plain)
      {1, 48, 6, 8, 24, 3, params(1, 1), true},     // channels last: a block of 24
  };
  uint32_t seed = 100;
  for (const ConvCase& c : cases) {
    const Tensor x = random_tensor({c.n, c.c, c.h, c.w}, seed++);
    const Tensor w = random_tensor({c.o, c.c / c.p.groups, c.k, c.k}, seed++, -0.3f, 0.3f);
    const Tensor bias = random_tensor({c.o}, seed++);
    const Tensor* b = c.bias ? &bias : nullptr;
    const Tensor plain = cpu().conv2d(x, w, b, c.p);
    const Tensor residual = random_tensor(plain.shape(), seed++, -2.f, 2.f);
    SCOPED_TRACE("x " + shape_str(x.shape()) + " weight " + shape_str(w.shape()));
    with_one_and_two_threads([&] {
      const Tensor fused = cpu().conv2d_add(x, w, b, c.p, residual);
      EXPECT_TRUE(SameBits(fused, cpu().add(residual, cpu().conv2d(x, w, b, c.p))));
      EXPECT_TRUE(SameBits(fused, cpu().Backend::conv2d_add(x, w, b, c.p, residual)));
    });
  }
}

TEST(CpuFusedOps, Conv2dAddRefusesAResidualOfAnotherShape) {
  const Tensor x = random_tensor({1, 3, 6, 6}, 7), w = random_tensor({4, 3, 3, 3}, 8);
  const Tensor wrong = random_tensor({1, 4, 6, 5}, 9);
  try {
    cpu().conv2d_add(x, w, nullptr, params(1, 1), wrong);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d_add"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("residual"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- geglu
TEST(CpuFusedOps, GegluEqualsHiddenTimesGeluOfGate) {
  const Shape shapes[] = {
      {2, 7, 2 * 13},     // odd width
      {5, 2 * 3},         // [rows, 2 * inner]
      {1, 300, 2 * 1280}, // several rows a chunk, several chunks
      {2, 3, 2 * 20000},  // one row over a chunk by itself
      {1, 1, 2},          // one value
  };
  uint32_t seed = 200;
  for (const Shape& s : shapes) {
    const Tensor x = random_tensor(s, seed++, -6.f, 6.f);
    const int last = static_cast<int>(s.size()) - 1;
    const int64_t inner = s.back() / 2;
    SCOPED_TRACE(shape_str(s));
    with_one_and_two_threads([&] {
      const Tensor fused = cpu().geglu(x);
      const Tensor hidden = cpu().slice(x, last, 0, inner);
      const Tensor gate = cpu().slice(x, last, inner, 2 * inner);
      EXPECT_TRUE(SameBits(fused, cpu().mul(hidden, cpu().activation(gate, Activation::kGELU))));
      EXPECT_TRUE(SameBits(fused, cpu().Backend::geglu(x)));
    });
  }
  EXPECT_THROW(cpu().geglu(random_tensor({2, 5}, 9)), std::runtime_error);
  EXPECT_THROW(cpu().Backend::geglu(random_tensor({2, 5}, 9)), std::runtime_error);
}

// ---------------------------------------------------------------- linear_geglu, linear_add
struct LinearCase {
  Shape x;  // [..., in]
  int64_t out;
  bool bias;
};

const LinearCase kLinearCases[] = {
    {{2, 7, 13}, 2 * 5, true},      // odd sizes
    {{5, 8}, 2 * 3, false},         // [rows, in], no bias
    {{1, 300, 64}, 2 * 256, true},  // several row blocks
    {{1, 900, 512}, 2 * 2048, true},  // a U-Net feed-forward's width (inner 2048)
    {{1, 1, 1}, 2, true},           // one value
    {{3, 4, 0}, 2 * 4, true},       // an empty product: the bias alone
};

// The largest |a - b| over |b|'s largest value plus 1.
double relative_gap(const Tensor& a, const Tensor& b) {
  double gap = 0, scale = 1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    gap = std::max(gap, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, 1.0 + std::fabs(b[i]));
  }
  return gap / scale;
}

TEST(CpuFusedOps, LinearGegluEqualsItsHalvesThenGeluAndMul) {
  uint32_t seed = 300;
  const long long fused_before = linears_with_post_ops();
  for (const LinearCase& c : kLinearCases) {
    const int64_t in = c.x.back(), inner = c.out / 2;
    const Tensor x = random_tensor(c.x, seed++, -2.f, 2.f);
    const Tensor w = random_tensor({c.out, in}, seed++, -0.3f, 0.3f);
    const Tensor b = random_tensor({c.out}, seed++, -1.f, 1.f);
    const Tensor* bias = c.bias ? &b : nullptr;
    const Tensor bh = b.rows(0, inner), bg = b.rows(inner, c.out);
    SCOPED_TRACE(shape_str(c.x) + " out " + std::to_string(c.out));
    with_one_and_two_threads([&] {
      const Tensor fused = cpu().linear_geglu(x, w, bias);
      const Tensor hidden = cpu().linear(x, w.rows(0, inner), c.bias ? &bh : nullptr);
      const Tensor gate = cpu().linear(x, w.rows(inner, c.out), c.bias ? &bg : nullptr);
      EXPECT_TRUE(SameBits(fused, cpu().mul(hidden, cpu().activation(gate, Activation::kGELU))));
      EXPECT_TRUE(SameBits(fused, cpu().Backend::linear_geglu(x, w, bias)));
      // One 2 * inner product instead of two: the same up to the GEMM's rounding.
      EXPECT_LT(relative_gap(fused, cpu().geglu(cpu().linear(x, w, bias))), 1e-5);
    });
  }
  // Every case with a non-empty product ran the post-op form, twice.
  EXPECT_EQ(linears_with_post_ops() - fused_before, 2 * 5);
  const Tensor x = random_tensor({2, 4}, 9);
  EXPECT_THROW(cpu().linear_geglu(x, random_tensor({5, 4}, 9), nullptr), std::runtime_error);
  EXPECT_THROW(cpu().linear_geglu(x, random_tensor({6, 3}, 9), nullptr), std::runtime_error);
  const Tensor b = random_tensor({4}, 9);
  EXPECT_THROW(cpu().linear_geglu(x, random_tensor({6, 4}, 9), &b), std::runtime_error);
  EXPECT_THROW(cpu().Backend::linear_geglu(x, random_tensor({5, 4}, 9), nullptr),
               std::runtime_error);
  EXPECT_THROW(cpu().Backend::linear_geglu(x, random_tensor({6, 4}, 9), &b), std::runtime_error);
}

TEST(CpuFusedOps, LinearAddEqualsResidualPlusLinear) {
  uint32_t seed = 400;
  const long long fused_before = linears_with_post_ops();
  for (const LinearCase& c : kLinearCases) {
    const int64_t in = c.x.back();
    Shape out_shape = c.x;
    out_shape.back() = c.out;
    const Tensor x = random_tensor(c.x, seed++, -2.f, 2.f);
    const Tensor w = random_tensor({c.out, in}, seed++, -0.3f, 0.3f);
    const Tensor b = random_tensor({c.out}, seed++, -1.f, 1.f);
    const Tensor residual = random_tensor(out_shape, seed++, -3.f, 3.f);
    const Tensor* bias = c.bias ? &b : nullptr;
    SCOPED_TRACE(shape_str(c.x) + " out " + std::to_string(c.out));
    with_one_and_two_threads([&] {
      const Tensor fused = cpu().linear_add(x, w, bias, residual);
      EXPECT_TRUE(SameBits(fused, cpu().add(residual, cpu().linear(x, w, bias))));
      EXPECT_TRUE(SameBits(fused, cpu().Backend::linear_add(x, w, bias, residual)));
    });
  }
  EXPECT_EQ(linears_with_post_ops() - fused_before, 2 * 5);
  const Tensor x = random_tensor({2, 4}, 9);
  EXPECT_THROW(cpu().linear_add(x, random_tensor({3, 4}, 9), nullptr, random_tensor({2, 4}, 9)),
               std::runtime_error);
}

TEST(CpuFusedOps, LinearPostOpsSwitchedOffComposeTheSameBits) {
  const Tensor x = random_tensor({1, 37, 24}, 500, -2.f, 2.f);
  const Tensor w = random_tensor({2 * 40, 24}, 501, -0.3f, 0.3f);
  const Tensor b = random_tensor({2 * 40}, 502);
  const Tensor wo = random_tensor({24, 40}, 503, -0.3f, 0.3f);
  const Tensor on_geglu = cpu().linear_geglu(x, w, &b);
  const Tensor on_add = cpu().linear_add(on_geglu, wo, nullptr, x);
  const bool saved = set_linear_post_ops(false);
  const long long before = linears_with_post_ops();
  const Tensor off_geglu = cpu().linear_geglu(x, w, &b);
  const Tensor off_add = cpu().linear_add(off_geglu, wo, nullptr, x);
  EXPECT_EQ(linears_with_post_ops(), before) << "post-ops ran while switched off";
  set_linear_post_ops(saved);
  EXPECT_TRUE(SameBits(on_geglu, off_geglu));
  EXPECT_TRUE(SameBits(on_add, off_add));
}

// ---------------------------------------------------------------- whole models
// The CPU backend with every fused op left to Backend's default composition.
using UnfusedCpu = test::CpuForwardingBackend;

// The golden tiny U-Net (resnets, conv_norm_out, GEGLU feed-forwards) gives the
// same bits fused and unfused.
TEST(CpuFusedOps, GoldenUNetSameBitsFusedAndUnfused) {
  const long long direct_before = normed_convs_direct();
  const long long linears_before = linears_with_post_ops();
  UnfusedCpu unfused;
  auto fused_model = UNet2DConditionModel::load(test::golden_path("tiny/unet"), cpu());
  auto unfused_model = UNet2DConditionModel::load(test::golden_path("tiny/unet"), unfused);
  for (const char* file : {"unet.safetensors", "unet_odd.safetensors"}) {
    SCOPED_TRACE(file);
    auto g = test::open_case(file);
    const Tensor sample = g->tensor("sample");
    const Tensor context = g->tensor("encoder_hidden_states");
    const float t = static_cast<float>(g->int64_values("timestep").at(0));
    EXPECT_TRUE(SameBits(fused_model->forward(sample, t, context),
                         unfused_model->forward(sample, t, context)));
  }
  // The ResNets' norms wrote their convolutions' input layout themselves.
  EXPECT_GT(normed_convs_direct(), direct_before) << "no norm wrote a convolution's layout";
  // The transformers' projections took their GEGLU and skip connections as post-ops.
  EXPECT_GT(linears_with_post_ops(), linears_before) << "no linear ran with post-ops";
}

// The golden tiny ControlNet: conv_in and the conditioning embedding's sum in
// one op (conv2d_add), and the embedding's in-place activations.
TEST(CpuFusedOps, GoldenControlNetSameBitsFusedAndUnfused) {
  UnfusedCpu unfused;
  auto fused_model = ControlNetModel::load(test::golden_path("tiny/controlnet"), cpu());
  auto unfused_model = ControlNetModel::load(test::golden_path("tiny/controlnet"), unfused);
  auto g = test::open_case("controlnet.safetensors");
  const Tensor sample = g->tensor("sample"), context = g->tensor("encoder_hidden_states");
  const Tensor cond = g->tensor("controlnet_cond");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));
  const ControlNetResiduals a = fused_model->forward(sample, t, context, cond, 1.0f);
  const ControlNetResiduals b = unfused_model->forward(sample, t, context, cond, 1.0f);
  ASSERT_EQ(a.down.size(), b.down.size());
  for (size_t i = 0; i < a.down.size(); ++i) EXPECT_TRUE(SameBits(a.down[i], b.down[i])) << i;
  EXPECT_TRUE(SameBits(a.mid, b.mid));
}

// The golden tiny temporal VAE: each block's three convolutions run as one
// stack (in oneDNN's layout); without temporal features the last one is added
// to the skip in the same op.
TEST(CpuFusedOps, GoldenTemporalVaeSameBitsFusedAndUnfused) {
  const long long stacks_before = conv_stacks_blocked();
  UnfusedCpu unfused;
  auto fused_model = TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), cpu());
  auto unfused_model = TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), unfused);
  const Tensor image = test::open_case("temporal_vae.safetensors")->tensor("encode.input");
  const Tensor latent = fused_model->encode(image);
  EXPECT_TRUE(SameBits(latent, unfused_model->encode(image)));
  EXPECT_TRUE(SameBits(fused_model->decode(latent, nullptr), unfused_model->decode(latent, nullptr)));
  const std::vector<Tensor> feats = fused_model->temporal_features(image);
  EXPECT_TRUE(SameBits(fused_model->decode(latent, &feats), unfused_model->decode(latent, &feats)));
  EXPECT_GT(conv_stacks_blocked(), stacks_before) << "the blocked stacks did not run";
}

// The golden RAFT: the update block's pairs of convolutions (motion encoder,
// flow head, mask) run as stacks.
TEST(CpuFusedOps, GoldenRaftSameBitsFusedAndUnfused) {
  const long long stacks_before = conv_stacks_blocked();
  UnfusedCpu unfused;
  const std::string weights = test::golden_path("tiny/raft/raft_large.pth");
  auto fused_model = Raft::load(weights, cpu());
  auto unfused_model = Raft::load(weights, unfused);
  auto g = test::open_case("raft.safetensors");
  const Tensor a = g->tensor("image1"), b = g->tensor("image2");
  EXPECT_TRUE(SameBits(fused_model->flow(a, b), unfused_model->flow(a, b)));
  EXPECT_GT(conv_stacks_blocked(), stacks_before) << "the blocked stacks did not run";
}

}  // namespace
}  // namespace sdvsr
