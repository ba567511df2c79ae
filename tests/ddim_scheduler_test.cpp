// DDIMScheduler against diffusers 0.27.2 golden cases (tables, timesteps, steps)
// and small independent checks of the config switches.
#include "pipeline/ddim_scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "golden.h"
#include "weights/model_config.h"
#include "weights/safetensors.h"

namespace sdvsr {
namespace {

using test::open_case;

ModelConfig config_of(const std::string& json_text) {
  return ModelConfig::from_json(nlohmann::json::parse(json_text), "test scheduler_config.json");
}

// The scheduler a golden case was made with: the file's own metadata, or the
// tiny model's scheduler_config.json.
DdimScheduler scheduler_for(const SafetensorsFile& file) {
  auto it = file.metadata().find("scheduler_config");
  if (it != file.metadata().end())
    return DdimScheduler::from_config(
        ModelConfig::from_json(nlohmann::json::parse(it->second), file.path() + " metadata"));
  return DdimScheduler::from_config(
      ModelConfig::load(test::golden_path("tiny/scheduler/scheduler_config.json")));
}

int64_t count_bit_differences(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return -1;
  int64_t n = 0;
  for (int64_t i = 0; i < a.numel(); ++i) n += a[i] != b[i];
  return n;
}

void check_case(const std::string& name) {
  SCOPED_TRACE(name);
  auto file = open_case(name + ".safetensors");
  DdimScheduler sched = scheduler_for(*file);

  // Tables: bit-exact.
  Tensor ref_table = file->tensor("alphas_cumprod");
  const auto& table = sched.alphas_cumprod_table();
  ASSERT_EQ(static_cast<int64_t>(table.size()), ref_table.numel());
  int64_t table_diffs = 0;
  for (size_t t = 0; t < table.size(); ++t) table_diffs += table[t] != ref_table[t];
  EXPECT_EQ(table_diffs, 0) << "alphas_cumprod entries differing from torch";
  EXPECT_EQ(sched.final_alpha_cumprod(), file->tensor("final_alpha_cumprod")[0]);

  // Timesteps for every N stored.
  int timestep_lists = 0;
  for (const auto& info : file->tensors()) {
    if (info.name.rfind("timesteps_", 0) != 0) continue;
    int n = std::stoi(info.name.substr(10));
    sched.set_timesteps(n);
    EXPECT_EQ(sched.timesteps(), file->int64_values(info.name)) << info.name;
    ++timestep_lists;
  }
  EXPECT_GE(timestep_lists, 6);

  // Four steps of the 4-step schedule.
  sched.set_timesteps(4);
  for (int i = 0; i < 4; ++i) {
    const std::string p = "step" + std::to_string(i) + ".";
    SCOPED_TRACE(p);
    const int64_t t = file->int64_values(p + "timestep").at(0);
    EXPECT_EQ(t, sched.timesteps().at(i));
    if (file->has(p + "prev_timestep")) {
      EXPECT_EQ(sched.previous_timestep(t), file->int64_values(p + "prev_timestep").at(0));
    }
    auto out = sched.step(file->tensor(p + "model_output"), t, file->tensor(p + "sample"));
    Tensor ref_prev = file->tensor(p + "prev_sample");
    Tensor ref_x0 = file->tensor(p + "pred_original_sample");
    EXPECT_CLOSE(out.prev_sample, ref_prev);
    EXPECT_CLOSE(out.pred_original_sample, ref_x0);
    // diffusers' float32 op order reproduced exactly.
    EXPECT_EQ(count_bit_differences(out.prev_sample, ref_prev), 0);
    EXPECT_EQ(count_bit_differences(out.pred_original_sample, ref_x0), 0);
  }
}

TEST(DdimSchedulerGolden, LeadingVPrediction) { check_case("ddim_scheduler"); }
TEST(DdimSchedulerGolden, TrailingVPrediction) { check_case("ddim_trailing"); }
TEST(DdimSchedulerGolden, TrailingEpsilon) { check_case("ddim_trailing_epsilon"); }
TEST(DdimSchedulerGolden, LinspaceVPrediction) { check_case("ddim_linspace"); }

// The pipeline's own steps (tiny model scheduler, frame 0 of e2e_seq_a).
TEST(DdimSchedulerGolden, PipelineStepsOfE2eSequence) {
  auto file = open_case("e2e_seq_a.safetensors");
  DdimScheduler sched = DdimScheduler::from_config(
      ModelConfig::load(test::golden_path("tiny/scheduler/scheduler_config.json")));
  sched.set_timesteps(4);
  EXPECT_EQ(sched.timesteps(), file->int64_values("timesteps"));
  for (int i = 0; i < 4; ++i) {
    const std::string p = "frame0.step" + std::to_string(i) + ".";
    SCOPED_TRACE(p);
    const int64_t t = file->int64_values(p + "timestep").at(0);
    auto out = sched.step(file->tensor(p + "noise_pred"), t, file->tensor(p + "latents"));
    Tensor ref_next = file->tensor(p + "latents_next");
    EXPECT_CLOSE(out.prev_sample, ref_next);
    EXPECT_CLOSE(out.pred_original_sample, file->tensor(p + "pred_x0"));
    // Recorded on a GPU: no exactness promised, but it comes out bit-exact too.
    EXPECT_EQ(count_bit_differences(out.prev_sample, ref_next), 0);
  }
}

// ---- independent checks ----

TEST(DdimScheduler, DefaultsAreDiffusers) {
  DdimScheduler s = DdimScheduler::from_config(config_of("{}"));
  const DdimConfig& c = s.config();
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_EQ(c.beta_schedule, "linear");
  EXPECT_TRUE(c.clip_sample);
  EXPECT_TRUE(c.set_alpha_to_one);
  EXPECT_EQ(c.prediction_type, "epsilon");
  EXPECT_EQ(c.timestep_spacing, "leading");
  EXPECT_EQ(s.final_alpha_cumprod(), 1.0f);
  // linear betas: endpoints exact, alphas_cumprod[0] = 1 - beta_start.
  EXPECT_EQ(s.betas().front(), 0.0001f);
  EXPECT_EQ(s.betas().back(), 0.02f);
  EXPECT_EQ(s.alphas_cumprod(0), 1.0f - 0.0001f);
}

TEST(DdimScheduler, LinspaceMatchesArithmeticWithinAnUlp) {
  auto v = torch_linspace_f32(0.1, 0.9, 37);
  ASSERT_EQ(v.size(), 37u);
  EXPECT_EQ(v.front(), 0.1f);
  EXPECT_EQ(v.back(), 0.9f);
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(v[i], 0.1 + 0.8 * static_cast<double>(i) / 36.0, 2e-7);
  EXPECT_EQ(torch_linspace_f32(3.0, 5.0, 1), std::vector<float>{3.0f});
}

TEST(DdimScheduler, SpacingRules) {
  auto sched = [](const std::string& extra) {
    return DdimScheduler::from_config(config_of(R"({"steps_offset": 1)" + extra + "}"));
  };
  DdimScheduler leading = sched("");
  leading.set_timesteps(4);
  EXPECT_EQ(leading.timesteps(), (std::vector<int64_t>{751, 501, 251, 1}));
  DdimScheduler trailing = sched(R"(, "timestep_spacing": "trailing")");
  trailing.set_timesteps(3);
  EXPECT_EQ(trailing.timesteps(), (std::vector<int64_t>{999, 666, 332}));
  trailing.set_timesteps(4);
  EXPECT_EQ(trailing.timesteps(), (std::vector<int64_t>{999, 749, 499, 249}));
  EXPECT_EQ(trailing.previous_timestep(999), 749);
  DdimScheduler linspace = sched(R"(, "timestep_spacing": "linspace")");
  linspace.set_timesteps(4);
  EXPECT_EQ(linspace.timesteps(), (std::vector<int64_t>{999, 666, 333, 0}));
  // The previous timestep is t - T // n whatever the spacing.
  EXPECT_EQ(linspace.previous_timestep(666), 416);
  EXPECT_THROW(linspace.set_timesteps(1001), std::invalid_argument);
  EXPECT_THROW(sched(R"(, "timestep_spacing": "karras")"), std::runtime_error);
  EXPECT_THROW(sched(R"(, "prediction_type": "flow")"), std::runtime_error);
  EXPECT_THROW(sched(R"(, "beta_schedule": "sigmoid")"), std::runtime_error);
}

TEST(DdimScheduler, StepNeedsTimesteps) {
  DdimScheduler s = DdimScheduler::from_config(config_of("{}"));
  Tensor x = Tensor::full({1, 1, 2, 2}, 0.5f);
  EXPECT_THROW(s.step(x, 10, x), std::logic_error);
}

TEST(DdimScheduler, SquaredCosineBetas) {
  DdimScheduler s =
      DdimScheduler::from_config(config_of(R"({"beta_schedule": "squaredcos_cap_v2"})"));
  auto bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
  for (int i : {0, 1, 500, 998, 999}) {
    double expect = std::min(1 - bar((i + 1) / 1000.0) / bar(i / 1000.0), 0.999);
    EXPECT_EQ(s.betas()[i], static_cast<float>(expect)) << i;
  }
  EXPECT_EQ(s.betas()[999], 0.999f);  // capped
}

TEST(DdimScheduler, ZeroTerminalSnrRescale) {
  DdimScheduler s = DdimScheduler::from_config(
      config_of(R"({"beta_schedule": "scaled_linear", "rescale_betas_zero_snr": true})"));
  // The last alpha_bar is exactly zero; the first is unchanged up to rounding.
  EXPECT_EQ(s.alphas_cumprod(999), 0.0f);
  EXPECT_NEAR(s.alphas_cumprod(0), 1.0 - 0.0001, 1e-6);
  for (int t = 1; t < 1000; ++t) ASSERT_LE(s.alphas_cumprod(t), s.alphas_cumprod(t - 1));
}

TEST(DdimScheduler, TrainedBetasAndClipSample) {
  std::string betas = "[";
  for (int i = 0; i < 10; ++i) {
    if (i) betas += ',';
    betas += std::to_string(0.05 + 0.01 * i);
  }
  betas += "]";
  DdimScheduler s = DdimScheduler::from_config(config_of(
      R"({"num_train_timesteps": 10, "prediction_type": "sample", "clip_sample_range": 0.5,
          "set_alpha_to_one": false, "trained_betas": )" + betas + "}"));
  EXPECT_EQ(s.betas()[3], static_cast<float>(0.08));
  EXPECT_EQ(s.final_alpha_cumprod(), s.alphas_cumprod(0));
  s.set_timesteps(2);
  EXPECT_EQ(s.timesteps(), (std::vector<int64_t>{5, 0}));
  Tensor m = Tensor::from_vector({1, 1, 1, 3}, {-2.0f, 0.25f, 3.0f});
  Tensor x = Tensor::from_vector({1, 1, 1, 3}, {0.1f, 0.2f, 0.3f});
  auto out = s.step(m, 5, x);
  EXPECT_EQ(out.pred_original_sample.to_vector(), (std::vector<float>{-0.5f, 0.25f, 0.5f}));
  // prev = sqrt(a0) * x0 + sqrt(1 - a0) * eps, eps from the unclipped x0 (= model output).
  const double a5 = s.alphas_cumprod(5), a0 = s.alphas_cumprod(0);
  for (int i = 0; i < 3; ++i) {
    double eps = (x[i] - std::sqrt(a5) * m[i]) / std::sqrt(1 - a5);
    double expect = std::sqrt(a0) * out.pred_original_sample[i] + std::sqrt(1 - a0) * eps;
    EXPECT_NEAR(out.prev_sample[i], expect, 1e-5) << i;
  }
}

TEST(DdimScheduler, DynamicThresholding) {
  DdimScheduler s = DdimScheduler::from_config(config_of(
      R"({"prediction_type": "sample", "thresholding": true, "sample_max_value": 3.0,
          "dynamic_thresholding_ratio": 0.9})"));
  s.set_timesteps(10);
  // Batch 0: |x| = 0..10, quantile 0.9 of 11 values = 9 -> clamped to 3, x/3 clipped to +-1.
  // Batch 1: all small, s clamps up to 1: values unchanged.
  std::vector<float> m(22);
  for (int i = 0; i < 11; ++i) m[i] = (i % 2 ? -1.0f : 1.0f) * static_cast<float>(i);
  for (int i = 11; i < 22; ++i) m[i] = 0.05f * static_cast<float>(i - 16);
  Tensor mo = Tensor::from_vector({2, 1, 1, 11}, m);
  auto out = s.step(mo, 901, Tensor::zeros({2, 1, 1, 11}));
  for (int i = 0; i < 11; ++i) {
    float expect = std::clamp(m[i], -3.0f, 3.0f) / 3.0f;
    EXPECT_EQ(out.pred_original_sample[i], expect) << i;
    EXPECT_EQ(out.pred_original_sample[11 + i], m[11 + i]) << i;
  }
}

}  // namespace
}  // namespace sdvsr
