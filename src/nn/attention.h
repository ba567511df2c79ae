#pragma once
// diffusers Attention (default processor, no bias on q/k/v, no mask) and the
// GEGLU feed-forward, the two halves of a BasicTransformerBlock.
#include <memory>
#include <mutex>

#include "nn/layers.h"

namespace sdvsr::nn {

class Attention {
 public:
  // query_dim: width of the queries and of the output; kv_dim: width of the
  // context the keys/values are computed from (= query_dim for self-attention).
  Attention(const WeightScope& w, Backend& be, int64_t query_dim, int64_t kv_dim, int heads,
            int64_t head_dim);
  // x [B, Lq, query_dim], context [B, Lk, kv_dim] (or x itself); plus
  // `residual` [B, Lq, query_dim] when given (the block's skip connection).
  Tensor forward(const Tensor& x, const Tensor& context, const Tensor* residual = nullptr) const;

 private:
  // Keys and values of the last cross-attention context. The context is the
  // constant prompt embedding, so they are computed once instead of at every
  // step of every frame; the same linear layers on the same input give the
  // same numbers. Shared by streams running on several threads.
  struct ContextKv {
    std::mutex mutex;
    std::weak_ptr<const void> owner;  // the context's storage
    const void* data = nullptr;  // storage identity only
    Shape shape;
    Tensor k, v;
  };
  std::pair<Tensor, Tensor> context_kv(const Tensor& context) const;

  Backend* be_;
  int heads_;
  float scale_;
  Linear to_q_, to_k_, to_v_, to_out_;
  std::shared_ptr<ContextKv> context_kv_ = std::make_shared<ContextKv>();
};

// FeedForward(activation_fn="geglu", mult=4): proj -> [hidden | gate],
// hidden * gelu(gate) -> linear back to dim.
class FeedForwardGEGLU {
 public:
  FeedForwardGEGLU(const WeightScope& w, Backend& be, int64_t dim, int64_t inner_dim);
  // x [..., dim] -> [..., dim], plus `residual` (x's shape) when given; more
  // than kFeedForwardChunkBytes of projection output goes through in row chunks.
  Tensor forward(const Tensor& x, const Tensor* residual = nullptr) const;
  static constexpr int64_t kFeedForwardChunkBytes = int64_t{256} << 20;
  // Another chunk bound (tests: chunks of a few rows).
  void set_chunk_bytes(int64_t bytes) { chunk_bytes_ = bytes; }

 private:
  Tensor forward_rows(const Tensor& x, const Tensor* residual) const;
  int64_t chunk_bytes_ = kFeedForwardChunkBytes;

  Backend* be_;
  int64_t inner_;
  Linear proj_, out_;
};

}  // namespace sdvsr::nn
