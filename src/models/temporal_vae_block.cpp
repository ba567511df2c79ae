#include "models/temporal_vae_block.h"

#include <stdexcept>

namespace sdvsr {

namespace {
// The TPM pools with a fixed 4x4 window (stride 4, floor mode).
constexpr int kPool = 4;
// Weight of the temporal term, PyTorch's Python scalar 0.1 applied in float32.
constexpr float kTemporalScale = 0.1f;

Conv2dParams same_3x3() {
  Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  return p;
}

// Conv1d(k=3, padding=1) run as a 1-row conv2d: padding only along the sequence.
Conv2dParams conv1d_k3() {
  Conv2dParams p;
  p.pad_w = 1;
  return p;
}
}  // namespace

TemporalAutoencoderTinyBlock::TemporalAutoencoderTinyBlock(int64_t in_channels,
                                                           int64_t out_channels, Activation act,
                                                           const WeightScope& w,
                                                           bool load_temporal)
    : in_channels_(in_channels), out_channels_(out_channels), act_(act) {
  scope_key_ = w.key("*");  // "<prefix>.*" -> "<prefix>"
  scope_key_.resize(scope_key_.size() >= 2 ? scope_key_.size() - 2 : 0);
  const int64_t c = out_channels;
  conv0_w_ = w.get("conv.0.weight", {c, in_channels, 3, 3});
  conv0_b_ = w.get("conv.0.bias", {c});
  conv2_w_ = w.get("conv.2.weight", {c, c, 3, 3});
  conv2_b_ = w.get("conv.2.bias", {c});
  conv4_w_ = w.get("conv.4.weight", {c, c, 3, 3});
  conv4_b_ = w.get("conv.4.bias", {c});
  if (in_channels != out_channels) skip_w_ = w.get("skip.weight", {c, in_channels, 1, 1});
  if (load_temporal) {
    has_temporal_ = true;
    alpha_ = w.get("alpha", {})[0];  // 0-dim parameter
    tp0_w_ = w.get("temporal_processor.0.weight", {c, c, 3}).reshape({c, c, 1, 3});
    tp0_b_ = w.get("temporal_processor.0.bias", {c});
    tp2_w_ = w.get("temporal_processor.2.weight", {c, c, 3}).reshape({c, c, 1, 3});
    tp2_b_ = w.get("temporal_processor.2.bias", {c});
  }
}

Tensor TemporalAutoencoderTinyBlock::pool_feature(Backend& be, const Tensor& feature) {
  if (feature.dim() != 4 || feature.size(2) < kPool || feature.size(3) < kPool) return feature;
  return be.avg_pool2d(feature, kPool, kPool);
}

Tensor TemporalAutoencoderTinyBlock::temporal_term(Backend& be, const Tensor& current,
                                                   const Tensor& prev_pooled) const {
  const int64_t n = current.size(0), c = current.size(1);
  const int64_t h = current.size(2), w = current.size(3);
  if (!has_temporal_)
    throw std::runtime_error(scope_key_ + ": temporal features given to a block without a TPM");
  const int64_t ph = h / kPool, pw = w / kPool, len = ph * pw;
  if (len == 0)
    throw std::runtime_error(scope_key_ + ": feature map " + shape_str(current.shape()) +
                             " is smaller than the 4x4 temporal pooling window");
  if (prev_pooled.shape() != Shape{n, c, ph, pw})
    throw std::runtime_error(scope_key_ + ": pooled temporal feature has shape " +
                             shape_str(prev_pooled.shape()) + " but the block's features " +
                             shape_str(current.shape()) + " pool to " +
                             shape_str(Shape{n, c, ph, pw}));

  // [current | previous] pooled maps, flattened row-major into one sequence:
  // the Conv1d sees row wrap-around and the seam between the two frames.
  Tensor cur_seq = be.avg_pool2d(current, kPool, kPool).reshape({n, c, 1, len});
  Tensor prev_seq = prev_pooled.reshape({n, c, 1, len});
  Tensor seq = be.concat({cur_seq, prev_seq}, 3);

  seq = be.conv2d(seq, tp0_w_, &tp0_b_, conv1d_k3());
  seq = be.activation(seq, act_);
  seq = be.conv2d(seq, tp2_w_, &tp2_b_, conv1d_k3());

  const float one_minus_alpha = 1.0f - alpha_;
  Tensor cur_half = be.scale(be.slice(seq, 3, 0, len), alpha_);
  Tensor prev_half = be.scale(be.slice(seq, 3, len, 2 * len), one_minus_alpha);
  return be.add(cur_half, prev_half).reshape({n, c, ph, pw});
}

Tensor TemporalAutoencoderTinyBlock::skip_of(Backend& be, const Tensor& x) const {
  // diffusers' skip: a 1x1 projection when the channel count changes, else x.
  return skip_w_.defined() ? be.conv2d(x, skip_w_, nullptr, Conv2dParams{}) : x;
}

Tensor TemporalAutoencoderTinyBlock::forward(Backend& be, const Tensor& x,
                                             const Tensor* prev_pooled) const {
  if (x.dim() != 4 || x.size(1) != in_channels_)
    throw std::runtime_error(scope_key_ + ": expected input [N, " + std::to_string(in_channels_) +
                             ", H, W], got " + shape_str(x.shape()));
  const Conv2dParams p = same_3x3();
  // The three convolutions as one stack: the backend may keep its own layout
  // between them (Backend::conv2d_stack; the same bits). At a 1440p frame's
  // full-resolution block every tensor here is about 1 GB, so results go into
  // tensors already given up (the *_in_place ops) and no intermediate
  // outlives its use: at most x and two more are alive.
  const ConvStage conv0{&conv0_w_, &conv0_b_, p, act_};
  const ConvStage conv2{&conv2_w_, &conv2_b_, p, act_};
  if (!prev_pooled) {
    const Tensor skip = skip_of(be, x);
    // relu(conv4(cur) + skip), the sum formed as add(cur, skip) would (one float addition).
    const ConvStage conv4{&conv4_w_, &conv4_b_, p, Activation::kReLU};
    return be.conv2d_stack(x, {conv0, conv2, conv4}, &skip);
  }
  Tensor cur = be.conv2d_stack(x, {conv0, conv2, ConvStage{&conv4_w_, &conv4_b_, p}}, nullptr);
  const Tensor skip = skip_of(be, x);
  // relu((cur + 0.1 * bilinear(temporal term)) + skip): the original's order of
  // additions, with the term upsampled (bilinear, no corner alignment) as it is added.
  const Tensor temporal = temporal_term(be, cur, *prev_pooled);
  return be.add_bilinear_upsampled(std::move(cur), temporal, kTemporalScale, &skip,
                                   Activation::kReLU);
}

}  // namespace sdvsr
