#pragma once
// diffusers 0.27.2 DDIMScheduler (eta = 0): the noise tables it builds from
// scheduler_config.json, the timesteps of set_timesteps() and one step().
// Every table and coefficient is rounded the way PyTorch 1.13 / NumPy compute
// it on the CPU, so alphas_cumprod and step() outputs match diffusers bit for bit.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr {

class ModelConfig;

// The DDIMScheduler.__init__ arguments, with diffusers' defaults.
struct DdimConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;     // non-empty: used instead of beta_schedule
  bool clip_sample = true;
  bool set_alpha_to_one = true;
  int64_t steps_offset = 0;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double clip_sample_range = 1.0;
  double sample_max_value = 1.0;
  std::string timestep_spacing = "leading";  // leading | trailing | linspace
  bool rescale_betas_zero_snr = false;
};

class DdimScheduler {
 public:
  // Reads every switch above from a scheduler_config.json (unknown keys are ignored,
  // like diffusers); unsupported values throw naming the file and key.
  static DdimScheduler from_config(const ModelConfig& config);
  explicit DdimScheduler(DdimConfig config);

  const DdimConfig& config() const { return config_; }

  // diffusers' set_timesteps(n): the descending timesteps for n inference steps.
  void set_timesteps(int n);
  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  int num_inference_steps() const { return num_inference_steps_; }
  // The timestep step() moves to from t: t - T // n for every spacing (may be negative).
  int64_t previous_timestep(int64_t t) const;

  struct StepOutput {
    Tensor prev_sample, pred_original_sample;
  };
  // x_t -> x_{t-1} with eta = 0 (no noise). Needs set_timesteps() first.
  StepOutput step(const Tensor& model_output, int64_t t, const Tensor& sample) const;

  // DDIM's scale_model_input is the identity; the initial noise is not scaled.
  float init_noise_sigma() const { return 1.0f; }

  float alphas_cumprod(int64_t t) const;
  const std::vector<float>& alphas_cumprod_table() const { return alphas_cumprod_; }
  const std::vector<float>& betas() const { return betas_; }
  // The alpha product used when the previous timestep is negative.
  float final_alpha_cumprod() const { return final_alpha_cumprod_; }

 private:
  void threshold_sample(float* x0, int64_t batch, int64_t per_sample) const;

  DdimConfig config_;
  std::vector<float> betas_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  int num_inference_steps_ = 0;
  std::vector<int64_t> timesteps_;
};

// torch.linspace(start, end, steps, dtype=float32) as PyTorch 1.13's AVX2 CPU
// kernel fills it (exposed for tests).
std::vector<float> torch_linspace_f32(double start, double end, int64_t steps);

}  // namespace sdvsr
