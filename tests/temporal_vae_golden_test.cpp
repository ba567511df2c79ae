// TemporalAutoencoderTiny against the golden tiny model (temporal_vae case and
// the VAE steps of the e2e sequences, teacher-forced), plus loader checks for
// the full-size config and for other widths / block counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "golden.h"
#include "models/temporal_autoencoder_tiny.h"
#include "runtime/backend.h"
#include "weights/model_config.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

std::unique_ptr<TemporalAutoencoderTiny> load_tiny_vae() {
  return TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), cpu_backend());
}

// EXPECT_CLOSE, and the measured closeness on stdout for the record.
void expect_close_logged(const Tensor& out, const Tensor& ref, const std::string& what) {
  EXPECT_CLOSE(out, ref) << what;
  const test::Closeness c = test::compare(out, ref);
  std::printf("[ temporal_vae ] %-40s rel_l2 %.3g  max_abs %.3g  (max|ref| %.3g)\n", what.c_str(),
              c.rel_l2, c.max_abs, c.max_ref);
}

// Deterministic small random tensors for every key/shape of a synthetic store.
std::map<std::string, Tensor> random_tensors(const std::map<std::string, Shape>& shapes,
                                             uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  std::map<std::string, Tensor> out;
  for (const auto& [key, shape] : shapes) {
    Tensor t = Tensor::uninitialized(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = u(rng);
    out.emplace(key, t);
  }
  return out;
}

TEST(TemporalVaeGolden, EncodeLatents) {
  auto vae = load_tiny_vae();
  auto g = test::open_case("temporal_vae.safetensors");
  expect_close_logged(vae->encode(g->tensor("encode.input")), g->tensor("encode.latents"),
                      "encode.latents");
}

TEST(TemporalVaeGolden, EncoderBlockFeaturesOnRawInput) {
  auto vae = load_tiny_vae();
  auto g = test::open_case("temporal_vae.safetensors");
  const Tensor input = g->tensor("features.input");
  std::vector<Tensor> feats = vae->encoder_block_features(input);
  ASSERT_EQ(feats.size(), 7u);
  for (size_t i = 0; i < feats.size(); ++i) {
    const std::string key = "features." + std::to_string(i);
    expect_close_logged(feats[i], g->tensor(key), key);
  }
  // temporal_features is the same list, deepest first, each map 4x4 average-pooled
  // (what the decoder's TPM reads of it).
  std::vector<Tensor> rev = vae->temporal_features(input);
  ASSERT_EQ(rev.size(), feats.size());
  for (size_t i = 0; i < rev.size(); ++i) {
    SCOPED_TRACE("temporal_features " + std::to_string(i));
    const Tensor golden = g->tensor("features." + std::to_string(feats.size() - 1 - i));
    EXPECT_CLOSE(rev[i], cpu_backend().avg_pool2d(golden, 4, 4));
  }
}

TEST(TemporalVaeGolden, DecodeWithoutTemporalFeatures) {
  auto vae = load_tiny_vae();
  auto g = test::open_case("temporal_vae.safetensors");
  expect_close_logged(vae->decode(g->tensor("decode.input"), nullptr), g->tensor("decode.output"),
                      "decode.output");
}

TEST(TemporalVaeGolden, DecodeWithTemporalFeatures) {
  auto vae = load_tiny_vae();
  auto g = test::open_case("temporal_vae.safetensors");
  const Tensor z = g->tensor("decode.input");
  const Tensor ref = g->tensor("decode_temporal.output");
  // The golden features (encoder order; reversed as upstream features[::-1], and pooled) ...
  std::vector<Tensor> golden_pooled;
  for (int i = 0; i <= 6; ++i) golden_pooled.push_back(g->tensor("features." + std::to_string(i)));
  golden_pooled = vae->pool_temporal_features(golden_pooled);
  expect_close_logged(vae->decode(z, &golden_pooled), ref, "decode_temporal.output (golden feats)");
  // ... and the features this port computes.
  std::vector<Tensor> own = vae->temporal_features(g->tensor("features.input"));
  expect_close_logged(vae->decode(z, &own), ref, "decode_temporal.output (own feats)");
  // Stateless: a plain decode afterwards is unaffected by the temporal one.
  EXPECT_CLOSE(vae->decode(z, nullptr), g->tensor("decode.output"));
}

// Teacher-forced VAE steps of an e2e sequence: the final latents of frame k
// (divided by scaling_factor), with the features of the golden warped previous
// output for k >= 1, must decode to frame{k}.decoded.
void check_e2e_decodes(const std::string& file) {
  auto vae = load_tiny_vae();
  auto g = test::open_case(file);
  int frames = 0;
  for (int k = 0; g->has("frame" + std::to_string(k) + ".decoded"); ++k) {
    const std::string f = "frame" + std::to_string(k) + ".";
    int last = 0;
    while (g->has(f + "step" + std::to_string(last + 1) + ".latents_next")) ++last;
    Tensor z = g->tensor(f + "step" + std::to_string(last) + ".latents_next");
    ASSERT_EQ(vae->scaling_factor(), 1.0);  // the tiny model: decode(latents / 1.0)
    const std::string what = file.substr(0, file.find('.')) + " " + f + "decoded";
    if (k == 0) {
      ASSERT_FALSE(g->has(f + "warped_prev"));
      expect_close_logged(vae->decode(z, nullptr), g->tensor(f + "decoded"), what);
    } else {
      std::vector<Tensor> feats = vae->temporal_features(g->tensor(f + "warped_prev"));
      expect_close_logged(vae->decode(z, &feats), g->tensor(f + "decoded"), what);
    }
    ++frames;
  }
  EXPECT_GE(frames, 2) << file << ": expected at least two frames";
}

TEST(TemporalVaeGolden, E2eSeqADecodesTeacherForced) { check_e2e_decodes("e2e_seq_a.safetensors"); }

TEST(TemporalVaeGolden, E2eSeqOddDecodesTeacherForced) {
  check_e2e_decodes("e2e_seq_odd.safetensors");
}

// ---- one block against a naive reference (sizes the golden case lacks) ----

// Plain loops in PyTorch's definitions, independent of the backend.
struct Naive {
  static std::vector<float> conv(const std::vector<float>& x, int64_t ci, int64_t h, int64_t w,
                                 const Tensor& wt, const Tensor* b, int64_t k) {
    const int64_t co = wt.size(0), pad = k / 2;
    std::vector<float> y(co * h * w);
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double acc = b ? (*b)[o] : 0.0;
          for (int64_t c = 0; c < ci; ++c)
            for (int64_t a = 0; a < k; ++a)
              for (int64_t e = 0; e < k; ++e) {
                const int64_t yy = i + a - pad, xx = j + e - pad;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                acc += double(wt[((o * ci + c) * k + a) * k + e]) * x[(c * h + yy) * w + xx];
              }
          y[(o * h + i) * w + j] = float(acc);
        }
    return y;
  }
  static std::vector<float> conv1d(const std::vector<float>& x, int64_t c, int64_t len,
                                   const Tensor& wt, const Tensor& b) {
    std::vector<float> y(c * len);
    for (int64_t o = 0; o < c; ++o)
      for (int64_t t = 0; t < len; ++t) {
        double acc = b[o];
        for (int64_t i = 0; i < c; ++i)
          for (int64_t kk = 0; kk < 3; ++kk) {
            const int64_t s = t + kk - 1;
            if (s >= 0 && s < len) acc += double(wt[(o * c + i) * 3 + kk]) * x[i * len + s];
          }
        y[o * len + t] = float(acc);
      }
    return y;
  }
  static std::vector<float> relu(std::vector<float> v) {
    for (float& f : v) f = std::max(f, 0.0f);
    return v;
  }
  // AvgPool2d(4, 4), floor mode, flattened row-major.
  static std::vector<float> pool4(const std::vector<float>& x, int64_t c, int64_t h, int64_t w) {
    const int64_t ph = h / 4, pw = w / 4;
    std::vector<float> y(c * ph * pw);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < ph; ++i)
        for (int64_t j = 0; j < pw; ++j) {
          double s = 0;
          for (int64_t a = 0; a < 4; ++a)
            for (int64_t e = 0; e < 4; ++e) s += x[(ch * h + i * 4 + a) * w + j * 4 + e];
          y[(ch * ph + i) * pw + j] = float(s / 16);
        }
    return y;
  }
  // F.interpolate(size=(H, W), mode='bilinear', align_corners=False).
  static std::vector<float> bilinear(const std::vector<float>& x, int64_t c, int64_t ih,
                                     int64_t iw, int64_t oh, int64_t ow) {
    auto src = [](int64_t d, int64_t in, int64_t out, int64_t& i0, int64_t& i1, double& l1) {
      double s = (double(in) / out) * (d + 0.5) - 0.5;
      if (s < 0) s = 0;
      i0 = int64_t(s);
      i1 = i0 + (i0 < in - 1 ? 1 : 0);
      l1 = s - i0;
    };
    std::vector<float> y(c * oh * ow);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          int64_t y0, y1, x0, x1;
          double ly, lx;
          src(i, ih, oh, y0, y1, ly);
          src(j, iw, ow, x0, x1, lx);
          auto at = [&](int64_t a, int64_t b) { return double(x[(ch * ih + a) * iw + b]); };
          y[(ch * oh + i) * ow + j] = float((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
                                            ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
        }
    return y;
  }
};

TEST(TemporalVaeBlock, MatchesNaiveReferenceOnUnevenSizes) {
  const int64_t ci = 3, c = 5, h = 10, w = 14;  // pooled 2x3, resize scale != 1/4
  std::map<std::string, Shape> shapes = {
      {"blk.conv.0.weight", {c, ci, 3, 3}}, {"blk.conv.0.bias", {c}},
      {"blk.conv.2.weight", {c, c, 3, 3}},  {"blk.conv.2.bias", {c}},
      {"blk.conv.4.weight", {c, c, 3, 3}},  {"blk.conv.4.bias", {c}},
      {"blk.skip.weight", {c, ci, 1, 1}},   {"blk.alpha", {}},
      {"blk.temporal_processor.0.weight", {c, c, 3}},
      {"blk.temporal_processor.0.bias", {c}},
      {"blk.temporal_processor.2.weight", {c, c, 3}},
      {"blk.temporal_processor.2.bias", {c}}};
  auto tensors = random_tensors(shapes, 11);
  for (auto& [key, t] : tensors)  // larger weights so the TPM term is not negligible
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] *= 5.0f;
  auto store = WeightStore::from_tensors(tensors, "naive block");
  TemporalAutoencoderTinyBlock block(ci, c, Activation::kReLU, WeightScope(store).sub("blk"),
                                     true);
  EXPECT_NO_THROW(store->finish());
  auto rnd = random_tensors({{"x", {1, ci, h, w}}, {"p", {1, c, h, w}}}, 12);
  const Tensor& x = rnd.at("x");
  const Tensor& prev = rnd.at("p");
  auto W = [&](const std::string& k) { return tensors.at("blk." + k); };

  // Reference.
  std::vector<float> xv = x.to_vector();
  Tensor b0 = W("conv.0.bias"), b2 = W("conv.2.bias"), b4 = W("conv.4.bias");
  std::vector<float> cur = Naive::relu(Naive::conv(xv, ci, h, w, W("conv.0.weight"), &b0, 3));
  cur = Naive::relu(Naive::conv(cur, c, h, w, W("conv.2.weight"), &b2, 3));
  cur = Naive::conv(cur, c, h, w, W("conv.4.weight"), &b4, 3);
  const std::vector<float> skip = Naive::conv(xv, ci, h, w, W("skip.weight"), nullptr, 1);
  const int64_t ph = h / 4, pw = w / 4, len = ph * pw;
  std::vector<float> cp = Naive::pool4(cur, c, h, w), pp = Naive::pool4(prev.to_vector(), c, h, w);
  std::vector<float> seq(c * 2 * len);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t t = 0; t < len; ++t) {
      seq[ch * 2 * len + t] = cp[ch * len + t];
      seq[ch * 2 * len + len + t] = pp[ch * len + t];
    }
  seq = Naive::relu(Naive::conv1d(seq, c, 2 * len, W("temporal_processor.0.weight"),
                                  W("temporal_processor.0.bias")));
  seq = Naive::conv1d(seq, c, 2 * len, W("temporal_processor.2.weight"),
                      W("temporal_processor.2.bias"));
  const float alpha = W("alpha")[0];
  std::vector<float> fused(c * len);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t t = 0; t < len; ++t)
      fused[ch * len + t] =
          alpha * seq[ch * 2 * len + t] + (1.0f - alpha) * seq[ch * 2 * len + len + t];
  const std::vector<float> up = Naive::bilinear(fused, c, ph, pw, h, w);
  std::vector<float> with_tpm(c * h * w), plain(c * h * w);
  for (size_t i = 0; i < with_tpm.size(); ++i) {
    with_tpm[i] = std::max((cur[i] + 0.1f * up[i]) + skip[i], 0.0f);
    plain[i] = std::max(cur[i] + skip[i], 0.0f);
  }

  const Tensor prev_pooled = TemporalAutoencoderTinyBlock::pool_feature(cpu_backend(), prev);
  const Tensor out_tpm = block.forward(cpu_backend(), x, &prev_pooled);
  const Tensor out_plain = block.forward(cpu_backend(), x, nullptr);
  EXPECT_CLOSE(out_tpm, Tensor::from_vector({1, c, h, w}, with_tpm));
  EXPECT_CLOSE(out_plain, Tensor::from_vector({1, c, h, w}, plain));
  // The TPM term must actually matter for this check to mean anything.
  EXPECT_GT(test::compare(Tensor::from_vector({1, c, h, w}, with_tpm),
                          Tensor::from_vector({1, c, h, w}, plain))
                .rel_l2,
            1e-3);
}

// ---- loader structure: other configs ----

// The key set upstream's module produces, written out independently of the
// model code: per block 13 tensors; conv indices from nn.Sequential order.
std::map<std::string, Shape> expected_keys(int64_t c, int64_t latent,
                                           const std::vector<int64_t>& enc_blocks,
                                           const std::vector<int64_t>& dec_blocks,
                                           bool encoder_temporal) {
  std::map<std::string, Shape> k;
  auto block = [&](const std::string& p, bool temporal) {
    for (int i : {0, 2, 4}) {
      k[p + "conv." + std::to_string(i) + ".weight"] = {c, c, 3, 3};
      k[p + "conv." + std::to_string(i) + ".bias"] = {c};
    }
    if (temporal) {
      k[p + "alpha"] = {};
      for (int i : {0, 2}) {
        k[p + "temporal_processor." + std::to_string(i) + ".weight"] = {c, c, 3};
        k[p + "temporal_processor." + std::to_string(i) + ".bias"] = {c};
      }
    }
  };
  int idx = 0;
  for (size_t s = 0; s < enc_blocks.size(); ++s) {
    const std::string p = "encoder.layers." + std::to_string(idx++) + ".";
    k[p + "weight"] = {c, s == 0 ? 3 : c, 3, 3};
    if (s == 0) k[p + "bias"] = {c};
    for (int64_t b = 0; b < enc_blocks[s]; ++b)
      block("encoder.layers." + std::to_string(idx++) + ".", encoder_temporal);
  }
  k["encoder.layers." + std::to_string(idx) + ".weight"] = {latent, c, 3, 3};
  k["encoder.layers." + std::to_string(idx) + ".bias"] = {latent};
  idx = 0;
  k["decoder.layers.0.weight"] = {c, latent, 3, 3};
  k["decoder.layers.0.bias"] = {c};
  idx = 2;  // conv, act
  for (size_t s = 0; s < dec_blocks.size(); ++s) {
    for (int64_t b = 0; b < dec_blocks[s]; ++b)
      block("decoder.layers." + std::to_string(idx++) + ".", true);
    const bool last = s + 1 == dec_blocks.size();
    if (!last) ++idx;  // upsample
    const std::string p = "decoder.layers." + std::to_string(idx++) + ".";
    k[p + "weight"] = {last ? 3 : c, c, 3, 3};
    if (last) k[p + "bias"] = {3};
  }
  return k;
}

nlohmann::json vae_config(int64_t c, int64_t latent, const std::vector<int64_t>& enc_blocks,
                          const std::vector<int64_t>& dec_blocks) {
  const std::vector<int64_t> widths(enc_blocks.size(), c);
  return {{"_class_name", "TemporalAutoencoderTiny"},
          {"act_fn", "relu"},
          {"block_out_channels", widths},
          {"encoder_block_out_channels", widths},
          {"decoder_block_out_channels", widths},
          {"num_encoder_blocks", enc_blocks},
          {"num_decoder_blocks", dec_blocks},
          {"latent_channels", latent},
          {"scaling_factor", 1.0},
          {"upsampling_scaling_factor", 2}};
}

TEST(TemporalVaeLoad, FullSizeManifestConfigAndKeys) {
  std::ifstream in(test::golden_path("full-config-manifest.json"));
  ASSERT_TRUE(in.good());
  const nlohmann::json manifest = nlohmann::json::parse(in);
  const nlohmann::json& vae = manifest.at("modules").at("vae");
  std::map<std::string, Shape> shapes;
  for (const auto& [key, info] : vae.at("state_dict").items())
    shapes[key] = info.at("shape").get<Shape>();
  ASSERT_EQ(shapes.size(), 166u);
  auto store = WeightStore::from_tensors(random_tensors(shapes, 7), "manifest vae");
  ModelConfig cfg = ModelConfig::from_json(vae.at("config"), "manifest vae config");
  TemporalAutoencoderTiny model(cfg, WeightScope(store), cpu_backend());
  EXPECT_NO_THROW(store->finish());
  EXPECT_EQ(model.num_temporal_blocks(), 7u);
  EXPECT_EQ(model.vae_scale_factor(), 4);
  EXPECT_EQ(model.scaling_factor(), 1.0);
  // Shapes flow through at the real width: latent 4x4 -> image 16x16.
  Tensor image = Tensor::full({1, 3, 16, 16}, 0.25f);
  std::vector<Tensor> feats = model.temporal_features(image);
  ASSERT_EQ(feats.size(), 7u);
  EXPECT_EQ(feats.front().shape(), (Shape{1, 64, 1, 1}));  // 4x4 maps, pooled
  EXPECT_EQ(feats.back().shape(), (Shape{1, 64, 4, 4}));   // 16x16 maps, pooled
  EXPECT_EQ(model.encode(image).shape(), (Shape{1, 4, 4, 4}));
  Tensor z = Tensor::full({1, 4, 4, 4}, 0.5f);
  EXPECT_EQ(model.decode(z, &feats).shape(), (Shape{1, 3, 16, 16}));
}

TEST(TemporalVaeLoad, OtherWidthsAndBlockCounts) {
  const std::vector<int64_t> enc{2, 1, 2, 1}, dec{1, 2, 1, 2};
  for (bool encoder_temporal : {true, false}) {
    SCOPED_TRACE(encoder_temporal ? "encoder temporal tensors present" : "absent");
    auto shapes = expected_keys(8, 3, enc, dec, encoder_temporal);
    auto store = WeightStore::from_tensors(random_tensors(shapes, 3), "synthetic vae");
    ModelConfig cfg = ModelConfig::from_json(vae_config(8, 3, enc, dec), "synthetic config");
    TemporalAutoencoderTiny model(cfg, WeightScope(store), cpu_backend());
    EXPECT_NO_THROW(store->finish());
    EXPECT_EQ(model.num_temporal_blocks(), 6u);
    EXPECT_EQ(model.vae_scale_factor(), 8);
    Tensor image = Tensor::full({1, 3, 32, 32}, -0.5f);
    std::vector<Tensor> feats = model.temporal_features(image);
    ASSERT_EQ(feats.size(), 6u);
    EXPECT_EQ(feats[0].shape(), (Shape{1, 8, 1, 1}));  // pooled 4x4
    EXPECT_EQ(feats[5].shape(), (Shape{1, 8, 8, 8}));  // pooled 32x32
    EXPECT_EQ(model.encode(image).shape(), (Shape{1, 3, 4, 4}));
    Tensor out = model.decode(Tensor::full({1, 3, 4, 4}, 0.1f), &feats);
    EXPECT_EQ(out.shape(), (Shape{1, 3, 32, 32}));
  }
}

TEST(TemporalVaeLoad, RejectsInconsistentConfigsAndWeights) {
  const std::vector<int64_t> enc{1, 3, 3}, dec{3, 3, 1};
  auto shapes = expected_keys(16, 4, enc, dec, true);
  auto make = [&](const nlohmann::json& j, std::map<std::string, Shape> s) {
    auto store = WeightStore::from_tensors(random_tensors(s, 1), "synthetic vae");
    TemporalAutoencoderTiny model(ModelConfig::from_json(j, "cfg.json"), WeightScope(store),
                                  cpu_backend());
    store->finish();
  };
  EXPECT_NO_THROW(make(vae_config(16, 4, enc, dec), shapes));
  // Decoder block counts that are not the encoder's reversed.
  EXPECT_THROW(make(vae_config(16, 4, enc, {1, 3, 3}), shapes), std::runtime_error);
  // Unsupported activation.
  nlohmann::json bad_act = vae_config(16, 4, enc, dec);
  bad_act["act_fn"] = "mish";
  EXPECT_THROW(make(bad_act, shapes), std::runtime_error);
  // Config width disagrees with the weights.
  EXPECT_THROW(make(vae_config(24, 4, enc, dec), shapes), std::runtime_error);
  // A missing decoder TPM tensor, and an unexpected extra tensor.
  auto missing = shapes;
  missing.erase("decoder.layers.12.alpha");
  EXPECT_THROW(make(vae_config(16, 4, enc, dec), missing), std::runtime_error);
  auto extra = shapes;
  extra["decoder.layers.13.skip.weight"] = {3, 16, 1, 1};
  EXPECT_THROW(make(vae_config(16, 4, enc, dec), extra), std::runtime_error);
}

TEST(TemporalVaeLoad, DecodeRejectsWrongFeatureList) {
  auto vae = load_tiny_vae();
  Tensor z = Tensor::full({1, 4, 4, 4}, 0.0f);
  std::vector<Tensor> too_few(6, Tensor::zeros({1, 16, 4, 4}));
  EXPECT_THROW(vae->decode(z, &too_few), std::runtime_error);
  // Features at the wrong resolution (encoder order instead of decoder order).
  std::vector<Tensor> feats = vae->encoder_block_features(Tensor::zeros({1, 3, 16, 16}));
  EXPECT_THROW(vae->decode(z, &feats), std::runtime_error);
}

}  // namespace
}  // namespace sdvsr
