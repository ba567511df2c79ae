// The reduced-precision test helpers (reduced_precision_checks.h).
#include "reduced_precision_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "golden.h"
#include "models/controlnet.h"
#include "models/raft.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"

namespace sdvsr::test {

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

Tensor rounded_probability_attention(ComputeDtype d, const Tensor& q, const Tensor& k,
                                     const Tensor& v, int heads, float scale, int64_t key_tile) {
  const int64_t batch = q.size(0), lq = q.size(1), lk = k.size(1), width = q.size(2);
  const int64_t hd = width / heads;
  Tensor out = Tensor::uninitialized({batch, lq, width});
  std::vector<float> scores(static_cast<size_t>(lk)), tile_max(static_cast<size_t>(lk));
  std::vector<double> acc(static_cast<size_t>(hd));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < lq; ++i) {
        const float* qi = q.data() + (b * lq + i) * width + h * hd;
        for (int64_t j = 0; j < lk; ++j) {
          const float* kj = k.data() + (b * lk + j) * width + h * hd;
          float s = 0.f;
          for (int64_t c = 0; c < hd; ++c) s += qi[c] * kj[c];
          scores[static_cast<size_t>(j)] = s * scale;
        }
        // The running maximum each key's tile saw, and the row's.
        float top = -INFINITY;
        for (int64_t j0 = 0; j0 < lk; j0 += key_tile) {
          const int64_t end = std::min(lk, j0 + key_tile);
          for (int64_t j = j0; j < end; ++j) top = std::max(top, scores[static_cast<size_t>(j)]);
          for (int64_t j = j0; j < end; ++j) tile_max[static_cast<size_t>(j)] = top;
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < lk; ++j) {
          const float m = tile_max[static_cast<size_t>(j)];
          const float p = std::exp(scores[static_cast<size_t>(j)] - m);
          const double later = std::exp(double{m} - top);  // the corrections of later tiles
          sum += p * later;
          const double pr = round_to(d, p) * later;
          const float* vj = v.data() + (b * lk + j) * width + h * hd;
          for (int64_t c = 0; c < hd; ++c) acc[static_cast<size_t>(c)] += pr * vj[c];
        }
        float* oi = out.data() + (b * lq + i) * width + h * hd;
        for (int64_t c = 0; c < hd; ++c)
          oi[c] = static_cast<float>(acc[static_cast<size_t>(c)] / sum);
      }
  return out;
}

// Mapped (borrowed) weights rounded once, so the CPU's own per-weight caches
// (reordered convolution weights) keep working.
Tensor RoundingCpuBackend::weight(const Tensor& w) {
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

// ---- closeness ----

static double rel_l2(const Tensor& got, const Tensor& want) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got[i], w = want[i];
    diff += (g - w) * (g - w);
    ref += w * w;
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

::testing::AssertionResult RelL2Within(Backend& be, const Tensor& got_any, const Tensor& want,
                                       double tol, const std::string& what, double at_least) {
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
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(be);
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

static constexpr double kMinPsnrDb = 40.0;

// PSNR of two decoder outputs after the pipeline's postprocess ((x/2+0.5)
// clamped to [0, 1]), before quantisation.
static double psnr_db(const Tensor& got, const Tensor& want) {
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
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(be);
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

std::string dtype_param_name(const ::testing::TestParamInfo<ComputeDtype>& info) {
  return compute_dtype_name(info.param);
}

}  // namespace sdvsr::test
