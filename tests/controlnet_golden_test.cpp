// ControlNetModel against the golden tiny model (diffusers 0.27.2 outputs):
// every down residual and the mid residual, at both conditioning scales.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>
#include <string>

#include "golden.h"
#include "models/controlnet.h"
#include "models/unet2d_condition.h"
#include "weights/model_config.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"
#include "runtime/backend.h"

namespace sdvsr {
namespace {

void report(const std::string& what, const Tensor& out, const Tensor& ref) {
  const auto c = test::compare(out, ref);
  std::printf("[closeness] %-50s rel_l2 %.3g  max_abs %.3g  max_ref %.3g\n", what.c_str(), c.rel_l2,
              c.max_abs, c.max_ref);
}

class ControlNetGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ControlNetGolden, ResidualsAtEveryStoredScale) {
  const std::string file = GetParam();
  auto model = ControlNetModel::load(test::golden_path("tiny/controlnet"), cpu_backend());
  auto g = test::open_case(file);
  const Tensor sample = g->tensor("sample");
  const Tensor context = g->tensor("encoder_hidden_states");
  const Tensor cond = g->tensor("controlnet_cond");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));

  int scales_checked = 0;
  for (const std::string prefix : {"scale1.", "scale0.5."}) {
    if (!g->has(prefix + "conditioning_scale")) continue;
    ++scales_checked;
    const float scale = g->tensor(prefix + "conditioning_scale")[0];
    const ControlNetResiduals r = model->forward(sample, t, context, cond, scale);
    ASSERT_EQ(r.down.size(), 12u);
    int checked = 0;
    for (size_t i = 0; i < r.down.size(); ++i) {
      const std::string key = prefix + "down_block_res_samples." + std::to_string(i);
      if (!g->has(key)) continue;
      report(file + " " + key, r.down[i], g->tensor(key));
      EXPECT_CLOSE(r.down[i], g->tensor(key)) << key;
      ++checked;
    }
    EXPECT_GE(checked, 2);
    report(file + " " + prefix + "mid_block_res_sample", r.mid, g->tensor(prefix + "mid_block_res_sample"));
    EXPECT_CLOSE(r.mid, g->tensor(prefix + "mid_block_res_sample"));
  }
  EXPECT_GE(scales_checked, 1);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ControlNetGolden,
                         ::testing::Values("controlnet.safetensors", "controlnet_odd.safetensors"),
                         [](const auto& info) {
                           return info.param == "controlnet.safetensors" ? std::string("Even")
                                                                         : std::string("Odd");
                         });

// Splitting off the conditioning embedding (computed once per frame) gives the
// same residuals as the one-call forward.
TEST(ControlNetSplit, EmbeddedConditionMatchesForward) {
  auto model = ControlNetModel::load(test::golden_path("tiny/controlnet"), cpu_backend());
  auto g = test::open_case("controlnet.safetensors");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));
  const Tensor emb = model->condition_embedding(g->tensor("controlnet_cond"));
  const ControlNetResiduals r = model->forward_embedded(g->tensor("sample"), t,
                                                        g->tensor("encoder_hidden_states"), emb, 1.0f);
  EXPECT_CLOSE(r.down[5], g->tensor("scale1.down_block_res_samples.5"));
  EXPECT_CLOSE(r.mid, g->tensor("scale1.mid_block_res_sample"));
}

// The tiny ControlNet with edited config switches; references are derived
// from the golden residuals by independent arithmetic.
std::unique_ptr<ControlNetModel> edited_controlnet(const std::string& key, nlohmann::json value) {
  const std::string folder = test::golden_path("tiny/controlnet");
  nlohmann::json j = ModelConfig::load(folder + "/config.json").json();
  j[key] = value;
  auto store = WeightStore::from_safetensors(folder + "/diffusion_pytorch_model.safetensors");
  auto model = std::make_unique<ControlNetModel>(ModelConfig::from_json(j, "edited.json"),
                                                 WeightScope(store), cpu_backend());
  store->finish();
  return model;
}

struct Case {
  std::shared_ptr<SafetensorsFile> g = test::open_case("controlnet.safetensors");
  Tensor sample = g->tensor("sample"), context = g->tensor("encoder_hidden_states");
  Tensor cond = g->tensor("controlnet_cond");
  float t = static_cast<float>(g->int64_values("timestep").at(0));
  Tensor ref(int i) const {
    return g->tensor(i < 12 ? "scale1.down_block_res_samples." + std::to_string(i)
                            : std::string("scale1.mid_block_res_sample"));
  }
};

// "bgr" flips the condition's channel axis first: a channel-flipped input gives the rgb result.
TEST(ControlNetSwitches, BgrChannelOrder) {
  auto model = edited_controlnet("controlnet_conditioning_channel_order", "bgr");
  Case c;
  const int64_t plane = c.cond.size(2) * c.cond.size(3);
  std::vector<float> flipped(c.cond.numel());
  const float* src = static_cast<const Tensor&>(c.cond).data();
  for (int64_t ch = 0; ch < 3; ++ch)
    std::copy(src + (2 - ch) * plane, src + (3 - ch) * plane,
              flipped.begin() + ch * plane);
  const auto r = model->forward(c.sample, c.t, c.context, Tensor::from_vector(c.cond.shape(), flipped), 1.0f);
  EXPECT_CLOSE(r.down[0], c.ref(0));
  EXPECT_CLOSE(r.mid, c.ref(12));
}

// guess_mode: residual i scaled by 10^(-1 + i/12) (torch.logspace(-1, 0, 13)) times the scale.
TEST(ControlNetSwitches, GuessModeScales) {
  auto model = ControlNetModel::load(test::golden_path("tiny/controlnet"), cpu_backend());
  Case c;
  const auto r = model->forward(c.sample, c.t, c.context, c.cond, 0.5f, /*guess_mode=*/true);
  for (int i = 0; i <= 12; ++i) {
    const Tensor ref = c.ref(i);
    const double s = std::pow(10.0, -1.0 + i / 12.0) * 0.5;
    std::vector<float> v(ref.numel());
    for (int64_t k = 0; k < ref.numel(); ++k) v[k] = static_cast<float>(ref[k] * s);
    EXPECT_CLOSE(i < 12 ? r.down[i] : r.mid, Tensor::from_vector(ref.shape(), v)) << i;
  }
}

// global_pool_conditions: every residual becomes its spatial mean [N, C, 1, 1]
// (no logspace scaling), and the U-Net broadcasts it over H, W.
TEST(ControlNetSwitches, GlobalPoolConditions) {
  auto model = edited_controlnet("global_pool_conditions", true);
  Case c;
  const auto r = model->forward(c.sample, c.t, c.context, c.cond, 1.0f, /*guess_mode=*/true);
  ControlNetResiduals expanded;
  for (int i = 0; i <= 12; ++i) {
    const Tensor ref = c.ref(i);
    const int64_t ch = ref.size(1), hw = ref.size(2) * ref.size(3);
    std::vector<float> mean(ch), full(ref.numel());
    for (int64_t k = 0; k < ch; ++k) {
      double acc = 0;
      for (int64_t p = 0; p < hw; ++p) acc += ref[k * hw + p];
      mean[k] = static_cast<float>(acc / hw);
      std::fill(full.begin() + k * hw, full.begin() + (k + 1) * hw, mean[k]);
    }
    EXPECT_CLOSE(i < 12 ? r.down[i] : r.mid, Tensor::from_vector({1, ch, 1, 1}, mean)) << i;
    (i < 12 ? expanded.down.emplace_back() : expanded.mid) = Tensor::from_vector(ref.shape(), full);
  }
  auto unet = UNet2DConditionModel::load(test::golden_path("tiny/unet"), cpu_backend());
  EXPECT_CLOSE(unet->forward(c.sample, c.t, c.context, &r), unet->forward(c.sample, c.t, c.context, &expanded));
}

}  // namespace
}  // namespace sdvsr
