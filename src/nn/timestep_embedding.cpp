#include "nn/timestep_embedding.h"

#include <cmath>

namespace sdvsr::nn {

Tensor sinusoidal_timestep_embedding(const std::vector<float>& timesteps, int64_t dim,
                                     bool flip_sin_to_cos, float freq_shift) {
  const int64_t half = dim / 2;
  const int64_t n = static_cast<int64_t>(timesteps.size());
  // exponent = -ln(10000) * arange(half) (float32 tensor times a scalar cast to float),
  // divided by (half - freq_shift), then exp.
  const float neg_log_period = static_cast<float>(-std::log(10000.0));
  const float denom = static_cast<float>(static_cast<double>(half) - freq_shift);
  std::vector<float> freq(half);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(i) * neg_log_period;
    freq[i] = std::exp(exponent / denom);
  }
  std::vector<float> out(n * dim, 0.0f);
  for (int64_t b = 0; b < n; ++b) {
    float* row = out.data() + b * dim;
    // [sin | cos], or [cos | sin] with flip_sin_to_cos; an odd dim keeps a zero last entry.
    float* sin_part = row + (flip_sin_to_cos ? half : 0);
    float* cos_part = row + (flip_sin_to_cos ? 0 : half);
    for (int64_t i = 0; i < half; ++i) {
      const float arg = timesteps[b] * freq[i];
      sin_part[i] = std::sin(arg);
      cos_part[i] = std::cos(arg);
    }
  }
  return Tensor::from_vector({n, dim}, out);
}

TimestepEmbedding::TimestepEmbedding(const WeightScope& w, Backend& be, int64_t in_dim,
                                     int64_t out_dim, Activation act,
                                     std::optional<Activation> post_act)
    : be_(&be), act_(act), post_act_(post_act) {
  linear_1_ = Linear(w.sub("linear_1"), be, in_dim, out_dim);
  linear_2_ = Linear(w.sub("linear_2"), be, out_dim, out_dim);
}

Tensor TimestepEmbedding::forward(const Tensor& x) const {
  Tensor h = linear_2_(be_->activation(linear_1_(x), act_));
  if (post_act_) h = be_->activation(h, *post_act_);
  return h;
}

}  // namespace sdvsr::nn
