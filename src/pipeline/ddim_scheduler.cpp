#include "pipeline/ddim_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

#include "weights/model_config.h"

namespace sdvsr {

std::vector<float> torch_linspace_f32(double start, double end, int64_t steps) {
  if (steps < 0) throw std::invalid_argument("linspace: negative number of steps");
  if (steps == 0) return {};
  const float first = static_cast<float>(start);
  const float last = static_cast<float>(end);
  if (steps == 1) return {first};
  const float step = (last - first) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  // PyTorch's AVX2 kernel build contracts `start + step * i` and
  // `end - step * (steps - i - 1)` into fused multiply-adds; so do we, explicitly
  // (this project compiles with -ffp-contract=off). The first half counts up from
  // start, the second half down from end.
  auto value_at = [&](int64_t i) {
    if (i < halfway) return std::fma(step, static_cast<float>(i), first);
    return std::fma(-step, static_cast<float>(steps - i - 1), last);
  };
  std::vector<float> out(static_cast<size_t>(steps));
  // The vectorised loop fills pairs of 8-lane vectors: each vector takes its base
  // from the formula above at its first index, then adds k * step per lane.
  constexpr int64_t kLanes = 8;
  int64_t i = 0;
  for (; i <= steps - 2 * kLanes; i += 2 * kLanes) {
    for (int64_t v = i; v < i + 2 * kLanes; v += kLanes) {
      const float base = value_at(v);
      out[v] = base;
      for (int64_t k = 1; k < kLanes; ++k)
        out[v + k] = std::fma(static_cast<float>(k), step, base);
    }
  }
  // The remainder goes through the scalar formula.
  for (; i < steps; ++i) out[i] = value_at(i);
  return out;
}

namespace {

// diffusers' betas_for_alpha_bar (cosine, max_beta 0.999): Python floats, stored as float32.
std::vector<float> glide_cosine_betas(int64_t n) {
  auto alpha_bar = [](double t) {
    double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
    return c * c;
  };
  std::vector<float> betas(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double t1 = static_cast<double>(i) / static_cast<double>(n);
    double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas[i] = static_cast<float>(std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return betas;
}

// torch.cumprod on a CPU float32 tensor: a double accumulator, each output rounded.
std::vector<float> cumprod(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  double acc = 1.0;
  for (size_t i = 0; i < x.size(); ++i) {
    acc *= static_cast<double>(x[i]);
    out[i] = static_cast<float>(acc);
  }
  return out;
}

std::vector<float> one_minus(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = 1.0f - x[i];
  return out;
}

// diffusers' rescale_zero_terminal_snr: shift and scale sqrt(alpha_bar) so the
// last one is exactly zero, then undo the sqrt and the cumulative product.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> root = cumprod(one_minus(betas));
  for (float& v : root) v = std::sqrt(v);
  const float first = root.front(), last = root.back();
  const float scale = first / (first - last);
  for (float& v : root) v = (v - last) * scale;
  std::vector<float> bar(root.size()), alphas(root.size());
  for (size_t i = 0; i < root.size(); ++i) bar[i] = root[i] * root[i];
  for (size_t i = 0; i < bar.size(); ++i) alphas[i] = i == 0 ? bar[0] : bar[i] / bar[i - 1];
  return one_minus(alphas);
}

// torch.clamp: NaN passes through.
inline float clamp(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }

}  // namespace

DdimScheduler DdimScheduler::from_config(const ModelConfig& cfg) {
  DdimConfig c;
  c.num_train_timesteps = cfg.get_int("num_train_timesteps", c.num_train_timesteps);
  c.beta_start = cfg.get_float("beta_start", c.beta_start);
  c.beta_end = cfg.get_float("beta_end", c.beta_end);
  c.beta_schedule = cfg.get_string("beta_schedule", c.beta_schedule);
  if (cfg.has("trained_betas")) c.trained_betas = cfg.get_float_list("trained_betas");
  c.clip_sample = cfg.get_bool("clip_sample", c.clip_sample);
  c.set_alpha_to_one = cfg.get_bool("set_alpha_to_one", c.set_alpha_to_one);
  c.steps_offset = cfg.get_int("steps_offset", c.steps_offset);
  c.prediction_type = cfg.get_string("prediction_type", c.prediction_type);
  c.thresholding = cfg.get_bool("thresholding", c.thresholding);
  c.dynamic_thresholding_ratio =
      cfg.get_float("dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
  c.clip_sample_range = cfg.get_float("clip_sample_range", c.clip_sample_range);
  c.sample_max_value = cfg.get_float("sample_max_value", c.sample_max_value);
  c.timestep_spacing = cfg.get_string("timestep_spacing", c.timestep_spacing);
  c.rescale_betas_zero_snr = cfg.get_bool("rescale_betas_zero_snr", c.rescale_betas_zero_snr);

  // Name the offending key here, where the file is known.
  if (c.num_train_timesteps < 1) cfg.fail("num_train_timesteps", "must be at least 1");
  if (c.trained_betas.empty() && c.beta_schedule != "linear" &&
      c.beta_schedule != "scaled_linear" && c.beta_schedule != "squaredcos_cap_v2")
    cfg.fail("beta_schedule", "'" + c.beta_schedule + "' is not supported");
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction" &&
      c.prediction_type != "sample")
    cfg.fail("prediction_type", "'" + c.prediction_type + "' is not supported");
  if (c.timestep_spacing != "leading" && c.timestep_spacing != "trailing" &&
      c.timestep_spacing != "linspace")
    cfg.fail("timestep_spacing", "'" + c.timestep_spacing + "' is not supported");
  return DdimScheduler(std::move(c));
}

DdimScheduler::DdimScheduler(DdimConfig config) : config_(std::move(config)) {
  const DdimConfig& c = config_;
  if (!c.trained_betas.empty()) {
    betas_.assign(c.trained_betas.begin(), c.trained_betas.end());  // float64 -> float32
  } else if (c.beta_schedule == "linear") {
    betas_ = torch_linspace_f32(c.beta_start, c.beta_end, c.num_train_timesteps);
  } else if (c.beta_schedule == "scaled_linear") {
    betas_ = torch_linspace_f32(std::pow(c.beta_start, 0.5), std::pow(c.beta_end, 0.5),
                                c.num_train_timesteps);
    for (float& b : betas_) b = b * b;
  } else if (c.beta_schedule == "squaredcos_cap_v2") {
    betas_ = glide_cosine_betas(c.num_train_timesteps);
  } else {
    throw std::runtime_error("DDIM scheduler: beta_schedule '" + c.beta_schedule +
                             "' is not supported");
  }
  if (betas_.empty()) throw std::runtime_error("DDIM scheduler: no betas");
  if (c.rescale_betas_zero_snr) betas_ = rescale_zero_terminal_snr(betas_);
  alphas_cumprod_ = cumprod(one_minus(betas_));
  final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : alphas_cumprod_.front();
}

void DdimScheduler::set_timesteps(int n) {
  const int64_t T = config_.num_train_timesteps;
  if (n < 1 || n > T)
    throw std::invalid_argument("DDIM scheduler: num_inference_steps " + std::to_string(n) +
                                " must be in [1, num_train_timesteps = " + std::to_string(T) +
                                "]");
  std::vector<int64_t> ts;
  const std::string& spacing = config_.timestep_spacing;
  if (spacing == "leading") {
    // (arange(n) * (T // n))[::-1] + steps_offset
    const int64_t ratio = T / n;
    for (int64_t k = n - 1; k >= 0; --k) ts.push_back(k * ratio + config_.steps_offset);
  } else if (spacing == "trailing") {
    // round(np.arange(T, 0, -T / n)) - 1; NumPy's arange fills start + i * delta
    // with delta = (start + step) - start, and has ceil((stop - start) / step) entries.
    const double start = static_cast<double>(T);
    const double step = -(static_cast<double>(T) / n);
    const double len = std::ceil((0.0 - start) / step);
    const int64_t count = len > 0 ? static_cast<int64_t>(len) : 0;
    const double delta = (start + step) - start;
    for (int64_t i = 0; i < count; ++i) {
      double v = i == 0 ? start : i == 1 ? start + step : start + static_cast<double>(i) * delta;
      ts.push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
    }
  } else if (spacing == "linspace") {
    // round(np.linspace(0, T - 1, n))[::-1]; the last point is exactly T - 1.
    const double stop = static_cast<double>(T - 1);
    std::vector<double> y(static_cast<size_t>(n), 0.0);
    if (n > 1) {
      const double step = stop / static_cast<double>(n - 1);
      for (int i = 0; i < n; ++i) y[i] = static_cast<double>(i) * step;
      y[n - 1] = stop;
    }
    for (int i = n - 1; i >= 0; --i) ts.push_back(static_cast<int64_t>(std::nearbyint(y[i])));
  } else {
    throw std::runtime_error("DDIM scheduler: timestep_spacing '" + spacing +
                             "' is not supported");
  }
  num_inference_steps_ = n;
  timesteps_ = std::move(ts);
}

int64_t DdimScheduler::previous_timestep(int64_t t) const {
  if (num_inference_steps_ < 1)
    throw std::logic_error("DDIM scheduler: call set_timesteps() before step()");
  return t - config_.num_train_timesteps / num_inference_steps_;
}

float DdimScheduler::alphas_cumprod(int64_t t) const {
  if (t < 0 || t >= static_cast<int64_t>(alphas_cumprod_.size()))
    throw std::out_of_range("DDIM scheduler: timestep " + std::to_string(t) +
                            " outside [0, " + std::to_string(alphas_cumprod_.size()) + ")");
  return alphas_cumprod_[static_cast<size_t>(t)];
}

// diffusers' _threshold_sample: per sample, s = quantile(|x0|, ratio) clamped to
// [1, sample_max_value]; x0 = clamp(x0, -s, s) / s.
void DdimScheduler::threshold_sample(float* x0, int64_t batch, int64_t per_sample) const {
  const float q = static_cast<float>(config_.dynamic_thresholding_ratio);
  const float max_value = static_cast<float>(config_.sample_max_value);
  std::vector<float> sorted(static_cast<size_t>(per_sample));
  for (int64_t b = 0; b < batch; ++b) {
    float* x = x0 + b * per_sample;
    bool has_nan = false;
    for (int64_t i = 0; i < per_sample; ++i) {
      sorted[i] = std::fabs(x[i]);
      has_nan = has_nan || std::isnan(x[i]);
    }
    float s;
    if (has_nan) {
      s = std::numeric_limits<float>::quiet_NaN();
    } else {
      std::sort(sorted.begin(), sorted.end());
      // torch.quantile, linear interpolation; rank and weight in float32, lerp as
      // torch's CPU kernel does it (fused in PyTorch's AVX2 build).
      const float rank = q * static_cast<float>(per_sample - 1);
      const int64_t below = static_cast<int64_t>(rank);
      const int64_t above = static_cast<int64_t>(std::ceil(rank));
      const float w = rank - static_cast<float>(below);
      const float lo = sorted[below], hi = sorted[above];
      s = std::fabs(w) < 0.5f ? std::fma(w, hi - lo, lo) : std::fma(-(hi - lo), 1.0f - w, hi);
    }
    s = clamp(s, 1.0f, max_value);
    for (int64_t i = 0; i < per_sample; ++i) x[i] = clamp(x[i], -s, s) / s;
  }
}

DdimScheduler::StepOutput DdimScheduler::step(const Tensor& model_output, int64_t t,
                                              const Tensor& sample) const {
  if (model_output.shape() != sample.shape())
    throw std::invalid_argument("DDIM step: model_output " + shape_str(model_output.shape()) +
                                " and sample " + shape_str(sample.shape()) + " differ");
  const int64_t prev_t = previous_timestep(t);
  // 0-dim float32 tensors in diffusers: every coefficient is rounded to float32.
  const float alpha_t = alphas_cumprod(t);
  const float alpha_prev = prev_t >= 0 ? alphas_cumprod(prev_t) : final_alpha_cumprod_;
  const float beta_t = 1.0f - alpha_t;
  const float sqrt_alpha_t = std::sqrt(alpha_t);
  const float sqrt_beta_t = std::sqrt(beta_t);

  const int64_t n = sample.numel();
  const float* m = model_output.data();
  const float* x = sample.data();
  Tensor x0_t = Tensor::uninitialized(sample.shape());
  Tensor eps_t = Tensor::uninitialized(sample.shape());
  float* x0 = x0_t.data();
  float* eps = eps_t.data();
  // Products first, then the sum/difference, each rounded (separate torch ops).
  const std::string& kind = config_.prediction_type;
  if (kind == "epsilon") {
    for (int64_t i = 0; i < n; ++i) {
      x0[i] = (x[i] - sqrt_beta_t * m[i]) / sqrt_alpha_t;
      eps[i] = m[i];
    }
  } else if (kind == "sample") {
    for (int64_t i = 0; i < n; ++i) {
      x0[i] = m[i];
      eps[i] = (x[i] - sqrt_alpha_t * x0[i]) / sqrt_beta_t;
    }
  } else if (kind == "v_prediction") {
    for (int64_t i = 0; i < n; ++i) {
      x0[i] = sqrt_alpha_t * x[i] - sqrt_beta_t * m[i];
      eps[i] = sqrt_alpha_t * m[i] + sqrt_beta_t * x[i];
    }
  } else {
    throw std::runtime_error("DDIM scheduler: prediction_type '" + kind + "' is not supported");
  }

  if (config_.thresholding) {
    if (sample.dim() < 2)
      throw std::invalid_argument("DDIM step: thresholding needs a [batch, channels, ...] sample");
    threshold_sample(x0, sample.size(0), n / std::max<int64_t>(sample.size(0), 1));
  } else if (config_.clip_sample) {
    const float r = static_cast<float>(config_.clip_sample_range);
    for (int64_t i = 0; i < n; ++i) x0[i] = clamp(x0[i], -r, r);
  }

  // eta = 0: the noise term vanishes, but diffusers still folds 0 * sqrt(variance)
  // into the direction coefficient (NaN would propagate), so compute it the same way.
  const float beta_prev = 1.0f - alpha_prev;
  const float variance = (beta_prev / beta_t) * (1.0f - alpha_t / alpha_prev);
  const float std_dev_t = 0.0f * std::sqrt(variance);
  const float direction_coef = std::sqrt(1.0f - alpha_prev - std_dev_t * std_dev_t);
  const float sqrt_alpha_prev = std::sqrt(alpha_prev);

  Tensor prev = Tensor::uninitialized(sample.shape());
  float* p = prev.data();
  for (int64_t i = 0; i < n; ++i) {
    const float direction = direction_coef * eps[i];
    p[i] = sqrt_alpha_prev * x0[i] + direction;
  }
  return {std::move(prev), std::move(x0_t)};
}

}  // namespace sdvsr
