#include "nn/transformer_2d.h"

namespace sdvsr::nn {

namespace {
// BasicTransformerBlock's LayerNorms use diffusers' default norm_eps.
constexpr float kBlockNormEps = 1e-5f;
// Transformer2DModel's input GroupNorm is created with eps=1e-6, unlike the ResNets.
constexpr float kInputNormEps = 1e-6f;
}  // namespace

BasicTransformerBlock::BasicTransformerBlock(const WeightScope& w, Backend& be, int64_t dim,
                                             const TransformerSettings& s)
    : be_(&be),
      only_cross_(s.only_cross_attention),
      norm1_(w.sub("norm1"), be, dim, kBlockNormEps),
      norm2_(w.sub("norm2"), be, dim, kBlockNormEps),
      norm3_(w.sub("norm3"), be, dim, kBlockNormEps),
      attn1_(w.sub("attn1"), be, dim, s.only_cross_attention ? s.cross_attention_dim : dim,
             s.heads, s.head_dim),
      attn2_(w.sub("attn2"), be, dim, s.cross_attention_dim, s.heads, s.head_dim),
      ff_(w.sub("ff"), be, dim, 4 * dim) {}

Tensor BasicTransformerBlock::forward(const Tensor& x, const Tensor& context) const {
  // Each sub-layer's output projection adds its skip connection itself.
  Tensor n = norm1_(x);
  Tensor h = attn1_.forward(n, only_cross_ ? context : n, &x);
  h = attn2_.forward(norm2_(h), context, &h);
  return ff_.forward(norm3_(h), &h);
}

Transformer2D::Transformer2D(const WeightScope& w, Backend& be, int64_t in_channels,
                             const TransformerSettings& s)
    : be_(&be), linear_proj_(s.use_linear_projection) {
  const int64_t inner = s.heads * s.head_dim;
  norm_ = GroupNorm(w.sub("norm"), be, s.groups, in_channels, kInputNormEps);
  if (linear_proj_) {
    proj_in_lin_ = Linear(w.sub("proj_in"), be, in_channels, inner);
    proj_out_lin_ = Linear(w.sub("proj_out"), be, inner, in_channels);
  } else {
    proj_in_conv_ = Conv2d(w.sub("proj_in"), be, in_channels, inner, 1);
    proj_out_conv_ = Conv2d(w.sub("proj_out"), be, inner, in_channels, 1);
  }
  WeightScope blocks = w.sub("transformer_blocks");
  blocks_.reserve(s.num_layers);
  for (int i = 0; i < s.num_layers; ++i) blocks_.emplace_back(blocks.sub(i), be, inner, s);
}

Tensor Transformer2D::forward(const Tensor& x, const Tensor& context) const {
  const int64_t h = x.size(2), w = x.size(3);
  // With linear projections the norm writes tokens and the output leaves them
  // with the skip added, each in one pass (the bits of the separate ops).
  Tensor t = linear_proj_
                 ? proj_in_lin_(be_->group_norm_act_tokens(x, norm_.with_act(Activation::kNone)))
                 : be_->nchw_to_tokens(proj_in_conv_(norm_(x)));
  for (const auto& block : blocks_) t = block.forward(t, context);
  if (linear_proj_) return be_->tokens_to_nchw_add(proj_out_lin_(t), h, w, x);
  return be_->add(proj_out_conv_(be_->tokens_to_nchw(t, h, w)), x);
}

}  // namespace sdvsr::nn
