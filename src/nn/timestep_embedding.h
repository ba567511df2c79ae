#pragma once
// diffusers Timesteps (sinusoidal projection) + TimestepEmbedding (MLP).
#include <optional>
#include <vector>

#include "nn/layers.h"

namespace sdvsr::nn {

// get_timestep_embedding(t, dim, flip_sin_to_cos, freq_shift) for each value of
// `timesteps`, in float32 the way PyTorch evaluates it: [N, dim].
Tensor sinusoidal_timestep_embedding(const std::vector<float>& timesteps, int64_t dim,
                                     bool flip_sin_to_cos, float freq_shift);

// linear_1 -> act -> linear_2 (-> post_act).
class TimestepEmbedding {
 public:
  TimestepEmbedding() = default;
  TimestepEmbedding(const WeightScope& w, Backend& be, int64_t in_dim, int64_t out_dim,
                    Activation act, std::optional<Activation> post_act = std::nullopt);
  Tensor forward(const Tensor& x) const;

 private:
  Backend* be_ = nullptr;
  Activation act_ = Activation::kSiLU;
  std::optional<Activation> post_act_;
  Linear linear_1_, linear_2_;
};

}  // namespace sdvsr::nn
