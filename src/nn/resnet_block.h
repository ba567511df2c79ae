#pragma once
// diffusers ResnetBlock2D with time_embedding_norm "default" and pre-norm:
//   h = conv1(act(norm1(x))) + time_emb_proj(act(emb))[:, :, None, None]
//   h = conv2(act(norm2(h)))            (dropout is inference-inactive)
//   out = (shortcut(x) + h) / output_scale_factor
#include "nn/layers.h"

namespace sdvsr::nn {

struct ResnetSettings {
  int64_t temb_channels = 0;  // 0: no time embedding input
  int64_t groups = 32;
  float eps = 1e-5f;
  Activation act = Activation::kSiLU;
  float output_scale_factor = 1.0f;
};

class ResnetBlock2D {
 public:
  ResnetBlock2D(const WeightScope& w, Backend& be, int64_t in, int64_t out, const ResnetSettings& s);
  // x [N, in, H, W], emb [N, temb_channels] (the raw time embedding; activated here).
  Tensor forward(const Tensor& x, const Tensor& emb) const;

 private:
  Backend* be_;
  ResnetSettings s_;
  GroupNorm norm1_, norm2_;
  Conv2d conv1_, conv2_, shortcut_;
  Linear time_emb_proj_;
  bool has_shortcut_;
};

}  // namespace sdvsr::nn
