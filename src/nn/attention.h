#pragma once
// diffusers Attention (default processor, no bias on q/k/v, no mask) and the
// GEGLU feed-forward, the two halves of a BasicTransformerBlock.
#include "nn/layers.h"

namespace sdvsr::nn {

class Attention {
 public:
  // query_dim: width of the queries and of the output; kv_dim: width of the
  // context the keys/values are computed from (= query_dim for self-attention).
  Attention(const WeightScope& w, Backend& be, int64_t query_dim, int64_t kv_dim, int heads,
            int64_t head_dim);
  // x [B, Lq, query_dim], context [B, Lk, kv_dim] (or x itself).
  Tensor forward(const Tensor& x, const Tensor& context) const;

 private:
  Backend* be_;
  int heads_;
  float scale_;
  Linear to_q_, to_k_, to_v_, to_out_;
};

// FeedForward(activation_fn="geglu", mult=4): proj -> [hidden | gate],
// hidden * gelu(gate) -> linear back to dim.
class FeedForwardGEGLU {
 public:
  FeedForwardGEGLU(const WeightScope& w, Backend& be, int64_t dim, int64_t inner_dim);
  Tensor forward(const Tensor& x) const;

 private:
  Backend* be_;
  int64_t inner_;
  Linear proj_, out_;
};

}  // namespace sdvsr::nn
