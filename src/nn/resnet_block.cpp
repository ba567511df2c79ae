#include "nn/resnet_block.h"

namespace sdvsr::nn {

ResnetBlock2D::ResnetBlock2D(const WeightScope& w, Backend& be, int64_t in, int64_t out,
                             const ResnetSettings& s)
    : be_(&be), s_(s), has_shortcut_(in != out) {
  norm1_ = GroupNorm(w.sub("norm1"), be, s.groups, in, s.eps);
  conv1_ = Conv2d(w.sub("conv1"), be, in, out, 3, 1, 1);
  if (s.temb_channels > 0) time_emb_proj_ = Linear(w.sub("time_emb_proj"), be, s.temb_channels, out);
  norm2_ = GroupNorm(w.sub("norm2"), be, s.groups, out, s.eps);
  conv2_ = Conv2d(w.sub("conv2"), be, out, out, 3, 1, 1);
  // diffusers adds a 1x1 projection exactly when the channel count changes.
  if (has_shortcut_) shortcut_ = Conv2d(w.sub("conv_shortcut"), be, in, out, 1, 1, 0);
}

Tensor ResnetBlock2D::forward(const Tensor& x, const Tensor& emb) const {
  // Fused ops (norm + activation + conv, + time embedding, + skip) give the
  // bits of the separate ones.
  Tensor t;  // [N, out]
  if (s_.temb_channels > 0) t = time_emb_proj_(be_->activation(emb, s_.act));
  const Tensor h = conv1_.forward_normed(norm1_.with_act(s_.act), x, nullptr,
                                         s_.temb_channels > 0 ? &t : nullptr);
  // With a shortcut convolution its output is added as conv2's is made (the
  // cpu never holds it whole).
  Tensor out = has_shortcut_
                   ? conv2_.forward_normed_shortcut(norm2_.with_act(s_.act), h, shortcut_, x)
                   : conv2_.forward_normed(norm2_.with_act(s_.act), h, &x);
  if (s_.output_scale_factor != 1.0f) out = be_->scale(out, 1.0f / s_.output_scale_factor);
  return out;
}

}  // namespace sdvsr::nn
