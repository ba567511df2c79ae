#pragma once
// diffusers Transformer2DModel for continuous (image) input with
// BasicTransformerBlocks (norm_type "layer_norm", GEGLU feed-forward):
//   x -> GroupNorm(eps 1e-6) -> proj_in -> blocks over H*W tokens -> proj_out -> + x
#include <vector>

#include "nn/attention.h"

namespace sdvsr::nn {

struct TransformerSettings {
  int heads = 8;
  int64_t head_dim = 64;
  int num_layers = 1;           // BasicTransformerBlocks
  int64_t cross_attention_dim;  // width of encoder_hidden_states
  int64_t groups = 32;          // GroupNorm groups (the U-Net's norm_num_groups)
  bool use_linear_projection = false;
  bool only_cross_attention = false;  // attn1 attends to encoder_hidden_states too
};

class BasicTransformerBlock {
 public:
  BasicTransformerBlock(const WeightScope& w, Backend& be, int64_t dim,
                        const TransformerSettings& s);
  // x [B, L, dim], context [B, 77, cross_attention_dim].
  Tensor forward(const Tensor& x, const Tensor& context) const;

 private:
  Backend* be_;
  bool only_cross_;
  LayerNorm norm1_, norm2_, norm3_;
  Attention attn1_, attn2_;
  FeedForwardGEGLU ff_;
};

class Transformer2D {
 public:
  Transformer2D(const WeightScope& w, Backend& be, int64_t in_channels,
                const TransformerSettings& s);
  // x [N, C, H, W], context [N, L, cross_attention_dim] -> [N, C, H, W].
  Tensor forward(const Tensor& x, const Tensor& context) const;

 private:
  Backend* be_;
  bool linear_proj_;
  GroupNorm norm_;
  Linear proj_in_lin_, proj_out_lin_;
  Conv2d proj_in_conv_, proj_out_conv_;
  std::vector<BasicTransformerBlock> blocks_;
};

}  // namespace sdvsr::nn
