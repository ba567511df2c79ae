// ControlNetModel against the golden tiny model (diffusers 0.27.2 outputs):
// every down residual and the mid residual, at both conditioning scales.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "golden.h"
#include "models/controlnet.h"
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

}  // namespace
}  // namespace sdvsr
