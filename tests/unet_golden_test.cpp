// UNet2DConditionModel against the golden tiny model (diffusers 0.27.2 outputs),
// plus config handling that the golden model does not exercise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "golden.h"
#include "models/unet2d_condition.h"
#include "nn/timestep_embedding.h"
#include "runtime/backend.h"
#include "weights/model_config.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

void report(const std::string& what, const Tensor& out, const Tensor& ref) {
  const auto c = test::compare(out, ref);
  std::printf("[closeness] %-40s rel_l2 %.3g  max_abs %.3g  max_ref %.3g\n", what.c_str(), c.rel_l2,
              c.max_abs, c.max_ref);
}

class UNetGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(UNetGolden, OutputWithAndWithoutResiduals) {
  const std::string file = GetParam();
  auto model = UNet2DConditionModel::load(test::golden_path("tiny/unet"), cpu_backend());
  auto g = test::open_case(file);
  const Tensor sample = g->tensor("sample");
  const Tensor context = g->tensor("encoder_hidden_states");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));

  EXPECT_EQ(model->in_channels(), sample.size(1));
  const Tensor out = model->forward(sample, t, context);
  report(file + " output", out, g->tensor("output"));
  EXPECT_CLOSE(out, g->tensor("output"));

  ControlNetResiduals res;
  for (int i = 0; g->has("down_block_additional_residuals." + std::to_string(i)); ++i)
    res.down.push_back(g->tensor("down_block_additional_residuals." + std::to_string(i)));
  res.mid = g->tensor("mid_block_additional_residual");
  ASSERT_EQ(res.down.size(), 12u);
  const Tensor out_res = model->forward(sample, t, context, &res);
  report(file + " output_with_residuals", out_res, g->tensor("output_with_residuals"));
  EXPECT_CLOSE(out_res, g->tensor("output_with_residuals"));
  // Residuals handed over (released as they are added): the same bits.
  ControlNetResiduals handed = res;
  const Tensor out_handed = model->forward(sample, t, context, std::move(handed));
  ASSERT_EQ(out_handed.shape(), out_res.shape());
  for (int64_t i = 0; i < out_res.numel(); ++i) ASSERT_EQ(out_handed[i], out_res[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Tiny, UNetGolden,
                         ::testing::Values("unet.safetensors", "unet_odd.safetensors"),
                         [](const auto& info) {
                           return info.param == "unet.safetensors" ? std::string("Even")
                                                                   : std::string("Odd");
                         });

TEST(UNetConfig, MissingResidualsAreRefused) {
  auto model = UNet2DConditionModel::load(test::golden_path("tiny/unet"), cpu_backend());
  auto g = test::open_case("unet.safetensors");
  ControlNetResiduals res;
  res.down.push_back(g->tensor("down_block_additional_residuals.0"));
  res.mid = g->tensor("mid_block_additional_residual");
  EXPECT_THROW(model->forward(g->tensor("sample"), 751.0f, g->tensor("encoder_hidden_states"), &res),
               std::runtime_error);
}

// A class embedding table (the original x4 upscaler's num_class_embeds): the
// label is then required, and its row is added to the time embedding. With a
// zero row the result must equal the golden output without class embedding.
TEST(UNetConfig, ClassEmbeddingTable) {
  const std::string folder = test::golden_path("tiny/unet");
  auto file = SafetensorsFile::open(folder + "/diffusion_pytorch_model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& info : file->tensors()) tensors[info.name] = file->tensor(info.name);
  ModelConfig base = ModelConfig::load(folder + "/config.json");
  nlohmann::json j = base.json();
  j["num_class_embeds"] = 4;
  const int64_t temb = 4 * j.at("block_out_channels").at(0).get<int64_t>();
  std::vector<float> table(4 * temb, 0.5f);
  for (int64_t i = 0; i < temb; ++i) table[2 * temb + i] = 0.0f;  // row 2 is zero
  tensors["class_embedding.weight"] = Tensor::from_vector({4, temb}, table);
  auto store = WeightStore::from_tensors(std::move(tensors), "tiny-with-classes");
  UNet2DConditionModel model(ModelConfig::from_json(j, "tiny-with-classes.json"), WeightScope(store),
                             cpu_backend());
  store->finish();

  auto g = test::open_case("unet.safetensors");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));
  EXPECT_THROW(model.forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states")),
               std::runtime_error);
  const Tensor out = model.forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states"),
                                   nullptr, int64_t{2});
  EXPECT_CLOSE(out, g->tensor("output"));
  const Tensor shifted = model.forward(g->tensor("sample"), t, g->tensor("encoder_hidden_states"),
                                       nullptr, int64_t{1});
  EXPECT_GT(test::compare(shifted, g->tensor("output")).rel_l2, 1e-3);
}

// The sinusoid against an independent double-precision evaluation.
TEST(UNetTimestep, SinusoidMatchesFormula) {
  const Tensor e = nn::sinusoidal_timestep_embedding({0.0f, 751.0f}, 8, true, 0.0f);
  ASSERT_EQ(e.shape(), (Shape{2, 8}));
  for (int b = 0; b < 2; ++b) {
    const double t = b == 0 ? 0.0 : 751.0;
    for (int i = 0; i < 4; ++i) {
      const double f = std::exp(-std::log(10000.0) * i / 4.0);
      EXPECT_NEAR(e[b * 8 + i], std::cos(t * f), 2e-4) << "cos " << b << "," << i;
      EXPECT_NEAR(e[b * 8 + 4 + i], std::sin(t * f), 2e-4) << "sin " << b << "," << i;
    }
  }
  // flip_sin_to_cos false keeps [sin | cos]; an odd width gets a zero last entry.
  // dim 5, half 2, freq_shift 1: freq = exp(-ln(1e4) * i / 1) = {1, 1e-4}.
  const Tensor s = nn::sinusoidal_timestep_embedding({1.0f}, 5, false, 1.0f);
  ASSERT_EQ(s.shape(), (Shape{1, 5}));
  EXPECT_NEAR(s[0], std::sin(1.0), 1e-6);
  EXPECT_NEAR(s[1], std::sin(1e-4), 1e-9);
  EXPECT_NEAR(s[2], std::cos(1.0), 1e-6);
  EXPECT_NEAR(s[3], std::cos(1e-4), 1e-6);
  EXPECT_EQ(s[4], 0.0f);
}

}  // namespace
}  // namespace sdvsr
