// The CUDA backend against the CPU backend, op by op, on random inputs of
// awkward sizes (odd channels, sizes not multiples of 8, batch 2): relative L2
// within 1e-5; then the golden sequence on the CUDA backend within the golden
// bounds. Every test skips, saying why, without a CUDA build or device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "golden.h"
#include "pipeline/flow_ahead.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"
#include "runtime/device_backend.h"

namespace sdvsr {
namespace {

Backend& gpu() { return backend_for_device("cuda"); }
Backend& cpu() { return cpu_backend(); }

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

// got (any device) vs want (host): relative L2 within tol; names the worst element.
::testing::AssertionResult Parity(const Tensor& got_any, const Tensor& want, double tol = 1e-5) {
  if (got_any.device() != Device::kCuda)
    return ::testing::AssertionFailure() << "result is on " << device_name(got_any.device());
  const Tensor got = gpu().to_host(got_any);
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << " vs CPU "
                                         << shape_str(want.shape());
  double diff = 0, ref = 0, worst = -1;
  int64_t worst_at = -1, nan_mismatch = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g) != std::isnan(w)) {
      if (nan_mismatch < 0) nan_mismatch = i;
      continue;
    }
    if (std::isnan(w)) continue;
    diff += (g - w) * (g - w);
    ref += w * w;
    if (std::abs(g - w) > worst) {
      worst = std::abs(g - w);
      worst_at = i;
    }
  }
  const double rel = ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
  std::ostringstream where;
  where << shape_str(want.shape()) << ": rel L2 " << rel << ", max abs " << worst << " at flat "
        << worst_at;
  if (worst_at >= 0) where << " (cuda " << got[worst_at] << ", cpu " << want[worst_at] << ")";
  if (nan_mismatch >= 0)
    return ::testing::AssertionFailure() << where.str() << "; NaN differs at flat " << nan_mismatch;
  if (!(rel <= tol)) return ::testing::AssertionFailure() << where.str();
  return ::testing::AssertionSuccess() << where.str();
}

// ---- matrix products ----

TEST(CudaOps, Conv2d) {
  REQUIRE_CUDA();
  struct Case {
    int64_t n, c, h, w, o, k;
    Conv2dParams p;
    bool bias;
  };
  std::vector<Case> cases = {
      {2, 5, 13, 11, 7, 3, {1, 1, 1, 1, 1, 1, 1}, true},
      {2, 5, 13, 11, 7, 3, {2, 2, 1, 1, 1, 1, 1}, false},
      {1, 6, 9, 15, 9, 3, {1, 1, 1, 1, 1, 1, 3}, true},   // groups 3
      {2, 3, 17, 10, 4, 3, {1, 1, 2, 2, 2, 2, 1}, true},  // dilation 2
      {2, 7, 5, 9, 3, 1, {1, 1, 0, 0, 1, 1, 1}, true},    // 1x1
      {1, 3, 23, 19, 5, 7, {2, 2, 3, 3, 1, 1, 1}, true},  // RAFT's stem
  };
  int seed = 1;
  for (const Case& k : cases) {
    SCOPED_TRACE("conv case " + std::to_string(seed));
    const Tensor x = random({k.n, k.c, k.h, k.w}, seed++);
    const Tensor wt = random({k.o, k.c / k.p.groups, k.k, k.k}, seed++);
    const Tensor b = random({k.o}, seed++);
    const Tensor* bias = k.bias ? &b : nullptr;
    EXPECT_TRUE(Parity(gpu().conv2d(x, wt, bias, k.p), cpu().conv2d(x, wt, bias, k.p)));
  }
}

TEST(CudaOps, LinearAndMatmul) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 7, 33}, 1), w = random({19, 33}, 2), b = random({19}, 3);
  EXPECT_TRUE(Parity(gpu().linear(x, w, &b), cpu().linear(x, w, &b)));
  EXPECT_TRUE(Parity(gpu().linear(x, w, nullptr), cpu().linear(x, w, nullptr)));
  // An empty inner dimension: the bias alone (zeros without one).
  const Tensor x0 = random({3, 0}, 7), w0 = random({5, 0}, 8), b0 = random({5}, 9);
  EXPECT_TRUE(Parity(gpu().linear(x0, w0, &b0), cpu().linear(x0, w0, &b0)));
  EXPECT_TRUE(Parity(gpu().linear(x0, w0, nullptr), cpu().linear(x0, w0, nullptr)));
  const Tensor a = random({2, 9, 17}, 4), m = random({2, 17, 13}, 5), mt = random({2, 13, 17}, 6);
  EXPECT_TRUE(Parity(gpu().matmul(a, m, false), cpu().matmul(a, m, false)));
  EXPECT_TRUE(Parity(gpu().matmul(a, mt, true), cpu().matmul(a, mt, true)));
}

TEST(CudaOps, Attention) {
  REQUIRE_CUDA();
  struct Case {
    int64_t b, lq, lk;
    int heads;
    int64_t d;
    bool causal;
  };
  for (const Case& k : std::vector<Case>{{2, 37, 29, 3, 8, false},
                                         {1, 77, 77, 2, 40, true},   // CLIP-like
                                         {2, 70, 1, 5, 7, false},    // one key
                                         {1, 130, 83, 1, 160, false}}) {
    SCOPED_TRACE("lq " + std::to_string(k.lq) + " lk " + std::to_string(k.lk) + " d " +
                 std::to_string(k.d));
    const Tensor q = random({k.b, k.lq, k.heads * k.d}, 7, -2.f, 2.f);
    const Tensor kk = random({k.b, k.lk, k.heads * k.d}, 8, -2.f, 2.f);
    const Tensor v = random({k.b, k.lk, k.heads * k.d}, 9);
    const float scale = 1.f / std::sqrt(static_cast<float>(k.d));
    EXPECT_TRUE(Parity(gpu().attention(q, kk, v, k.heads, scale, k.causal),
                       cpu().attention(q, kk, v, k.heads, scale, k.causal)));
  }
}

// ---- normalisation ----

TEST(CudaOps, Norms) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 6, 7, 9}, 10, -3.f, 5.f);
  const Tensor g = random({6}, 11), b = random({6}, 12);
  EXPECT_TRUE(Parity(gpu().group_norm(x, 3, &g, &b, 1e-5f), cpu().group_norm(x, 3, &g, &b, 1e-5f)));
  EXPECT_TRUE(Parity(gpu().group_norm(x, 2, nullptr, nullptr, 1e-6f),
                     cpu().group_norm(x, 2, nullptr, nullptr, 1e-6f)));
  const Tensor t = random({2, 5, 33}, 13, -2.f, 3.f);
  const Tensor lg = random({33}, 14), lb = random({33}, 15);
  EXPECT_TRUE(Parity(gpu().layer_norm(t, &lg, &lb, 1e-5f), cpu().layer_norm(t, &lg, &lb, 1e-5f)));
  EXPECT_TRUE(Parity(gpu().layer_norm(t, nullptr, nullptr, 1e-5f),
                     cpu().layer_norm(t, nullptr, nullptr, 1e-5f)));
  const Tensor rm = random({6}, 16), rv = random({6}, 17, 0.5f, 2.f);
  EXPECT_TRUE(Parity(gpu().batch_norm(x, rm, rv, &g, &b, 1e-5f),
                     cpu().batch_norm(x, rm, rv, &g, &b, 1e-5f)));
  EXPECT_TRUE(Parity(gpu().instance_norm(x, 1e-5f), cpu().instance_norm(x, 1e-5f)));
  const Tensor s = random({3, 7, 45}, 18, -6.f, 6.f);
  EXPECT_TRUE(Parity(gpu().softmax(s), cpu().softmax(s)));
}

// ---- fused ops (one pass for the pointwise tail; the same values as the CPU's) ----

TEST(CudaOps, ConvolutionsWithTheirTails) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 6, 9, 11}, 40, -2.f, 2.f);
  const Tensor w1 = random({8, 6, 3, 3}, 41, -0.4f, 0.4f), b1 = random({8}, 42);
  const Tensor w2 = random({8, 8, 3, 3}, 43, -0.4f, 0.4f), b2 = random({8}, 44);
  const Tensor w3 = random({5, 8, 1, 1}, 45, -0.4f, 0.4f);
  const Tensor temb = random({2, 8}, 46), skip = random({2, 8, 9, 11}, 47);
  const Tensor skip3 = random({2, 5, 9, 11}, 48);
  const Conv2dParams p3{1, 1, 1, 1, 1, 1, 1}, p1{1, 1, 0, 0, 1, 1, 1};
  EXPECT_TRUE(Parity(gpu().conv2d_add(x, w1, &b1, p3, skip), cpu().conv2d_add(x, w1, &b1, p3, skip)));
  EXPECT_TRUE(Parity(gpu().conv2d_add(x, w1, nullptr, p3, skip),
                     cpu().conv2d_add(x, w1, nullptr, p3, skip)));
  // A ResNet-like stack: a time embedding and SiLU, then ReLU, then a 1x1 into a skip.
  const std::vector<ConvStage> stages{{&w1, &b1, p3, Activation::kSiLU, &temb},
                                      {&w2, &b2, p3, Activation::kReLU},
                                      {&w3, nullptr, p1, Activation::kTanh}};
  EXPECT_TRUE(Parity(gpu().conv2d_stack(x, stages, &skip3), cpu().conv2d_stack(x, stages, &skip3)));
  EXPECT_TRUE(Parity(gpu().conv2d_stack(x, stages, nullptr), cpu().conv2d_stack(x, stages, nullptr)));
  // The normalised forms compose these.
  const Tensor g = random({6}, 49), be = random({6}, 50);
  const GroupNormAct norm{3, &g, &be, 1e-5f, Activation::kSiLU};
  EXPECT_TRUE(Parity(gpu().group_norm_act_conv2d(x, norm, stages[0], nullptr),
                     cpu().group_norm_act_conv2d(x, norm, stages[0], nullptr)));
  const ConvStage conv2{&w2, &b2, p3};
  const Tensor h = random({2, 8, 9, 11}, 51);
  const Tensor g8 = random({8}, 52), be8 = random({8}, 53);
  const GroupNormAct norm8{4, &g8, &be8, 1e-5f, Activation::kSiLU};
  const Tensor w6 = random({8, 6, 1, 1}, 54, -0.4f, 0.4f);
  const ConvStage shortcut{&w6, nullptr, p1};
  EXPECT_TRUE(Parity(gpu().group_norm_act_conv2d_shortcut(h, norm8, conv2, x, shortcut),
                     cpu().group_norm_act_conv2d_shortcut(h, norm8, conv2, x, shortcut)));
  EXPECT_THROW(gpu().conv2d_add(x, w1, &b1, p3, skip3), std::runtime_error);
  const Tensor wrong_temb = random({2, 5}, 55);
  EXPECT_THROW(gpu().conv2d_stack(x, {{&w1, &b1, p3, Activation::kNone, &wrong_temb}}, nullptr),
               std::runtime_error);
}

TEST(CudaOps, ProductsWithTheirTails) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 7, 33}, 60), w = random({19, 33}, 61), b = random({19}, 62);
  const Tensor r = random({2, 7, 19}, 63);
  EXPECT_TRUE(Parity(gpu().linear_add(x, w, &b, r), cpu().linear_add(x, w, &b, r)));
  EXPECT_TRUE(Parity(gpu().linear_add(x, w, nullptr, r), cpu().linear_add(x, w, nullptr, r)));
  const Tensor wg = random({2 * 12, 33}, 64), bg = random({2 * 12}, 65);
  EXPECT_TRUE(Parity(gpu().linear_geglu(x, wg, &bg), cpu().linear_geglu(x, wg, &bg)));
  EXPECT_TRUE(Parity(gpu().linear_geglu(x, wg, nullptr), cpu().linear_geglu(x, wg, nullptr)));
  const Tensor both = random({2, 5, 2 * 9}, 66, -3.f, 3.f);
  EXPECT_TRUE(Parity(gpu().geglu(both), cpu().geglu(both)));
  EXPECT_THROW(gpu().linear_add(x, w, &b, random({2, 7, 18}, 67)), std::runtime_error);
  EXPECT_THROW(gpu().linear_geglu(x, random({13, 33}, 68), nullptr), std::runtime_error);
}

TEST(CudaOps, NormsWithActivationsAndTokens) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 6, 7, 9}, 70, -3.f, 5.f);
  const Tensor g = random({6}, 71), b = random({6}, 72);
  for (Activation a : {Activation::kSiLU, Activation::kNone}) {
    EXPECT_TRUE(Parity(gpu().group_norm_act(x, 3, &g, &b, 1e-5f, a),
                       cpu().group_norm_act(x, 3, &g, &b, 1e-5f, a)));
    const GroupNormAct norm{2, &g, &b, 1e-6f, a};
    EXPECT_TRUE(Parity(gpu().group_norm_act_tokens(x, norm), cpu().group_norm_act_tokens(x, norm)));
  }
  const Tensor tokens = random({2, 63, 6}, 73), skip = random({2, 6, 7, 9}, 74);
  EXPECT_TRUE(Parity(gpu().tokens_to_nchw_add(tokens, 7, 9, skip),
                     cpu().tokens_to_nchw_add(tokens, 7, 9, skip)));
  EXPECT_THROW(gpu().tokens_to_nchw_add(tokens, 9, 9, skip), std::runtime_error);
}

// ---- elementwise and layout ----

TEST(CudaOps, Activations) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 3, 5, 7}, 19, -6.f, 6.f);
  for (Activation a : {Activation::kNone, Activation::kSiLU, Activation::kGELU,
                       Activation::kGELUTanh, Activation::kQuickGELU, Activation::kReLU,
                       Activation::kTanh, Activation::kSigmoid}) {
    SCOPED_TRACE("activation " + std::to_string(static_cast<int>(a)));
    EXPECT_TRUE(Parity(gpu().activation(x, a), cpu().activation(x, a)));
  }
}

TEST(CudaOps, Arithmetic) {
  REQUIRE_CUDA();
  const Tensor a = random({2, 3, 5, 7}, 20), b = random({2, 3, 5, 7}, 21);
  const Tensor cb = random({2, 3}, 22);
  EXPECT_TRUE(Parity(gpu().add(a, b), cpu().add(a, b)));
  EXPECT_TRUE(Parity(gpu().sub(a, b), cpu().sub(a, b)));
  EXPECT_TRUE(Parity(gpu().mul(a, b), cpu().mul(a, b)));
  EXPECT_TRUE(Parity(gpu().scale(a, -1.7f), cpu().scale(a, -1.7f)));
  EXPECT_TRUE(Parity(gpu().add_scalar(a, 0.3f), cpu().add_scalar(a, 0.3f)));
  EXPECT_TRUE(Parity(gpu().add_channel_bias(a, cb), cpu().add_channel_bias(a, cb)));
  EXPECT_TRUE(Parity(gpu().clamp(a, -0.4f, 0.6f), cpu().clamp(a, -0.4f, 0.6f)));
  // Device inputs (results of earlier ops) are accepted as well as host ones.
  const Tensor d = gpu().add(a, b);
  EXPECT_TRUE(Parity(gpu().mul(d, b), cpu().mul(cpu().add(a, b), b)));
}

TEST(CudaOps, LayoutMoves) {
  REQUIRE_CUDA();
  const Tensor a = random({2, 3, 5, 7}, 23), b = random({2, 4, 5, 7}, 24);
  const Tensor c = random({2, 3, 5, 2}, 25);
  EXPECT_TRUE(Parity(gpu().concat({a, b}, 1), cpu().concat({a, b}, 1)));
  EXPECT_TRUE(Parity(gpu().concat({a, c}, -1), cpu().concat({a, c}, -1)));
  EXPECT_TRUE(Parity(gpu().concat({a, a, a}, 0), cpu().concat({a, a, a}, 0)));
  EXPECT_TRUE(Parity(gpu().slice(b, 1, 1, 3), cpu().slice(b, 1, 1, 3)));
  EXPECT_TRUE(Parity(gpu().slice(b, 3, 2, 7), cpu().slice(b, 3, 2, 7)));
  EXPECT_TRUE(Parity(gpu().slice(b, 0, 1, 2), cpu().slice(b, 0, 1, 2)));
  EXPECT_TRUE(Parity(gpu().permute(a, {0, 2, 3, 1}), cpu().permute(a, {0, 2, 3, 1})));
  EXPECT_TRUE(Parity(gpu().permute(a, {3, 1, 0, 2}), cpu().permute(a, {3, 1, 0, 2})));
  EXPECT_TRUE(Parity(gpu().nchw_to_tokens(a), cpu().nchw_to_tokens(a)));
  const Tensor tok = random({2, 35, 3}, 26);
  EXPECT_TRUE(Parity(gpu().tokens_to_nchw(tok, 5, 7), cpu().tokens_to_nchw(tok, 5, 7)));
}

// ---- resampling ----

TEST(CudaOps, Resampling) {
  REQUIRE_CUDA();
  const Tensor x = random({2, 3, 13, 11}, 27);
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{26, 22}, {17, 29}, {52, 44}, {5, 4}}) {
    SCOPED_TRACE(std::to_string(oh) + "x" + std::to_string(ow));
    EXPECT_TRUE(Parity(gpu().upsample_nearest(x, oh, ow), cpu().upsample_nearest(x, oh, ow)));
    for (bool ac : {false, true}) {
      EXPECT_TRUE(Parity(gpu().upsample_bilinear(x, oh, ow, ac), cpu().upsample_bilinear(x, oh, ow, ac)));
      EXPECT_TRUE(Parity(gpu().upsample_bicubic(x, oh, ow, ac), cpu().upsample_bicubic(x, oh, ow, ac)));
    }
  }
  const Tensor grid = random({2, 9, 14, 2}, 28, -1.2f, 1.2f);
  for (GridSampleMode m : {GridSampleMode::kBilinear, GridSampleMode::kNearest})
    for (bool ac : {false, true})
      EXPECT_TRUE(Parity(gpu().grid_sample(x, grid, m, ac), cpu().grid_sample(x, grid, m, ac)));
  EXPECT_TRUE(Parity(gpu().avg_pool2d(x, 2, 2), cpu().avg_pool2d(x, 2, 2)));
  EXPECT_TRUE(Parity(gpu().avg_pool2d(x, 3, 2), cpu().avg_pool2d(x, 3, 2)));
  // An empty source has no pixel to take (the CPU refuses it too).
  const Tensor empty = Tensor::zeros({1, 3, 0, 7});
  EXPECT_THROW(gpu().upsample_nearest(empty, 4, 4), std::runtime_error);
  EXPECT_THROW(gpu().upsample_bilinear(empty, 4, 4, false), std::runtime_error);
  EXPECT_THROW(gpu().upsample_bicubic(empty, 4, 4, false), std::runtime_error);
}

// The temporal VAE block's ending in one kernel: the bilinear term upsampled
// into the sum with the skip, then the activation.
TEST(CudaOps, AddBilinearUpsampled) {
  REQUIRE_CUDA();
  const Tensor small = random({2, 3, 4, 3}, 29, -3.f, 3.f);
  const Tensor x = random({2, 3, 17, 13}, 30), residual = random({2, 3, 17, 13}, 31);
  for (Activation a : {Activation::kReLU, Activation::kNone, Activation::kSiLU}) {
    for (const Tensor* r : {&residual, static_cast<const Tensor*>(nullptr)}) {
      SCOPED_TRACE("activation " + std::to_string(static_cast<int>(a)) +
                   (r ? " with" : " without") + " residual");
      const Tensor want = cpu().add_bilinear_upsampled(x.clone(), small, 0.1f, r, a);
      EXPECT_TRUE(Parity(gpu().add_bilinear_upsampled(x, small, 0.1f, r, a), want));
      // Device inputs (a convolution's output, a skip) as the VAE block gives them.
      const Tensor dx = gpu().add_scalar(x, 0.f);
      EXPECT_TRUE(Parity(gpu().add_bilinear_upsampled(dx, gpu().add_scalar(small, 0.f), 0.1f,
                                                      r, a),
                         want));
    }
  }
  EXPECT_THROW(gpu().add_bilinear_upsampled(x, random({2, 2, 4, 3}, 32), 0.1f, nullptr,
                                            Activation::kNone),
               std::runtime_error);
}

// ---- RAFT ----

TEST(CudaOps, RaftCorrelationAndLookups) {
  REQUIRE_CUDA();
  const int64_t n = 2, c = 9, h = 6, w = 10;
  const Tensor f1 = random({n, c, h, w}, 29), f2 = random({n, c, h, w}, 30);
  const Tensor vol = cpu().correlation_volume(f1, f2);
  EXPECT_TRUE(Parity(gpu().correlation_volume(f1, f2), vol));
  // A 2-level pyramid, and coordinates that leave the map on every side.
  const std::vector<Tensor> pyramid = {vol, cpu().avg_pool2d(vol, 2, 2)};
  const Tensor coords = random({n, 2, h, w}, 31, -3.f, 12.f);
  const int radius = 2;
  EXPECT_TRUE(Parity(gpu().raft_corr_lookup(pyramid, coords, radius),
                     cpu().raft_corr_lookup(pyramid, coords, radius)));
  const std::vector<int> cl = {0, 2, 3, 1};
  const std::vector<Tensor> f2_levels = {cpu().permute(f2, cl),
                                         cpu().permute(cpu().avg_pool2d(f2, 2, 2), cl)};
  const Tensor f1_cl = cpu().permute(f1, cl);
  EXPECT_TRUE(Parity(gpu().raft_corr_lookup_direct(f1_cl, f2_levels, coords, radius),
                     cpu().raft_corr_lookup_direct(f1_cl, f2_levels, coords, radius)));
  const Tensor flow = random({n, 2, h, w}, 32, -4.f, 4.f);
  const Tensor mask = random({n, 9 * 64, h, w}, 33, -3.f, 3.f);
  EXPECT_TRUE(Parity(gpu().raft_convex_upsample(flow, mask, 8), cpu().raft_convex_upsample(flow, mask, 8)));
}

// ---- the golden sequence on the CUDA backend ----

TEST(CudaGolden, StreamStagesAndFramesWithinGoldenBounds) {
  REQUIRE_CUDA();
  Backend& be = gpu();
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(be);
  auto f = test::open_case("e2e_seq_a.safetensors");
  auto key = [](int k, const std::string& name) { return "frame" + std::to_string(k) + "." + name; };
  StreamSession s(*models, be, StreamOptions{});
  // Teacher-forced stages of frame 1 (RAFT, warp, U-Net + ControlNet, decoder).
  {
    const Tensor up0 = f->tensor(key(0, "upscaled")), up1 = f->tensor(key(1, "upscaled"));
    EXPECT_CLOSE(be.to_host(s.upscale(f->tensor(key(1, "lr")))), up1);
    EXPECT_CLOSE(be.to_host(s.flow(up1, up0)), f->tensor(key(1, "flow")));
    const Tensor warped = f->tensor(key(1, "warped_prev"));
    EXPECT_CLOSE(be.to_host(s.warp(f->tensor(key(0, "decoded")), f->tensor(key(1, "flow")))), warped);
    const std::string step0 = key(1, "step0.");
    const int64_t t = f->int64_values(step0 + "timestep").at(0);
    EXPECT_CLOSE(be.to_host(s.predict_noise(f->tensor(step0 + "latents"), f->tensor(key(1, "lr")), t,
                                            &warped)),
                 f->tensor(step0 + "noise_pred"));
    const int last = static_cast<int>(s.timesteps().size()) - 1;
    EXPECT_CLOSE(be.to_host(s.decode(f->tensor(key(1, "step" + std::to_string(last) + ".latents_next")),
                                     &warped)),
                 f->tensor(key(1, "decoded")));
  }
  // Free-running frames, as the CPU e2e test bounds them.
  for (int k = 0; f->has(key(k, "lr")); ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor noise = f->tensor(key(k, "init_latents"));
    const Tensor decoded = be.to_host(s.push(f->tensor(key(k, "lr")), &noise));
    EXPECT_CLOSE_TOL(decoded, f->tensor(key(k, "decoded")), 1e-3, 1e-2);
  }
}

// The next frame's flow on the second stream (cuda_backend lane 1) while the
// first denoises: the same frames as the flow in order on one
// stream, and every later frame's flow came from the second stream.
TEST(CudaGolden, FlowAheadOnASecondStreamGivesTheSameFrames) {
  REQUIRE_CUDA();
  Backend& be = gpu();
  Backend* side = flow_ahead_backend(be);
  ASSERT_NE(side, nullptr);
  EXPECT_NE(side, &be);
  EXPECT_EQ(side->device(), Device::kCuda);
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(be);
  const test::GoldenSequence seq = test::golden_sequence("e2e_seq_a.safetensors");
  const std::vector<Tensor>& lr = seq.lr;
  const std::vector<Tensor>& noise = seq.noise;
  StreamSession in_order(*models, be, StreamOptions{});
  StreamSession with_ahead(*models, be, StreamOptions{});
  FlowAhead ahead(models->raft_path, *side);
  with_ahead.set_flow_ahead(&ahead);
  for (size_t k = 0; k < lr.size(); ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor a = be.to_host(in_order.push(lr[k], &noise[k]));
    const Tensor b = be.to_host(with_ahead.push(lr[k], &noise[k], k + 1 < lr.size() ? &lr[k + 1] : nullptr));
    // The same kernels on both streams (cuDNN's algorithms come from its
    // heuristics, not timing); a float-level margin in case a reduction is not
    // deterministic across streams.
    EXPECT_CLOSE_TOL(b, a, 1e-6, 1e-5);
  }
  EXPECT_EQ(ahead.flows_used(), static_cast<int64_t>(lr.size()) - 1);
}

}  // namespace
}  // namespace sdvsr
