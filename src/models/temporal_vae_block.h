#pragma once
// TemporalAutoencoderTinyBlock (upstream temporal_autoencoder/models/unets/unet_2d_blocks.py):
// the TAESD residual block plus the Temporal Processor Module (TPM) that fuses a
// feature map of the previous frame into the residual branch.
#include "runtime/backend.h"
#include "weights/weight_store.h"

namespace sdvsr {

class TemporalAutoencoderTinyBlock {
 public:
  // `weights` is the block's scope (e.g. "decoder.layers.2"). `act` is the
  // configured act_fn (used inside `conv` and `temporal_processor`; the final
  // fuse is always ReLU). With `load_temporal` false the alpha and
  // temporal_processor tensors are not read (the encoder never uses them).
  TemporalAutoencoderTinyBlock(int64_t in_channels, int64_t out_channels, Activation act,
                               const WeightScope& weights, bool load_temporal);

  // relu(conv(x) + skip(x)); with `prev_pooled` (pool_feature() of the previous
  // frame's feature map, which has conv(x)'s shape) the TPM term 0.1 * fuse(prev)
  // is added to conv(x) first.
  Tensor forward(Backend& be, const Tensor& x, const Tensor* prev_pooled) const;

  // The TPM reads a previous-frame feature map only through its 4x4 average
  // pool, so that pool is all a caller needs to keep (16x smaller: at a 1440p
  // frame's full resolution 59 MB instead of 943 MB). Maps smaller than the
  // window are returned as they are (forward() then names the problem).
  static Tensor pool_feature(Backend& be, const Tensor& feature);

  int64_t out_channels() const { return out_channels_; }

 private:
  // alpha * current half + (1 - alpha) * previous half of the Conv1d output, at
  // the pooled size (forward() resizes it back to (H, W) as it adds it).
  Tensor temporal_term(Backend& be, const Tensor& current, const Tensor& prev_pooled) const;
  // The block's skip branch of x (its 1x1 projection when it has one).
  Tensor skip_of(Backend& be, const Tensor& x) const;

  int64_t in_channels_, out_channels_;
  Activation act_;
  std::string scope_key_;  // for error messages
  // conv.0 / conv.2 / conv.4: 3x3, padding 1, with bias.
  Tensor conv0_w_, conv0_b_, conv2_w_, conv2_b_, conv4_w_, conv4_b_;
  Tensor skip_w_;  // 1x1 bias-free conv; undefined when in == out (Identity)
  bool has_temporal_ = false;
  float alpha_ = 0.5f;
  // temporal_processor.0 / .2: Conv1d k3 p1, stored as [C, C, 1, 3] for conv2d.
  Tensor tp0_w_, tp0_b_, tp2_w_, tp2_b_;
};

}  // namespace sdvsr
