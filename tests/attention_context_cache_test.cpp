// Cross-attention keeps the keys and values of its (constant) context between
// calls. The results must equal a fresh computation bit for bit, for the same
// context, for another context, and for a new context at a recycled address.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "nn/attention.h"
#include "runtime/backend.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

Tensor filled(const Shape& s, float seed) {
  Tensor t = Tensor::uninitialized(s);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = 0.5f * std::sin(seed * 0.37f + static_cast<float>(i) * 0.017f * seed);
  return t;
}

constexpr int64_t kDim = 24, kContextDim = 20, kHeads = 2, kHeadDim = 8, kInner = 16;

std::map<std::string, Tensor> attention_weights() {
  return {{"to_q.weight", filled({kInner, kDim}, 1.1f)},
          {"to_k.weight", filled({kInner, kContextDim}, 1.2f)},
          {"to_v.weight", filled({kInner, kContextDim}, 1.3f)},
          {"to_out.0.weight", filled({kDim, kInner}, 1.4f)},
          {"to_out.0.bias", filled({kDim}, 1.5f)}};
}

// softmax(q k^T / sqrt(d)) v through the backend, without any caching.
Tensor reference(std::map<std::string, Tensor>& w, const Tensor& x, const Tensor& ctx) {
  Backend& be = cpu_backend();
  const Tensor q = be.linear(x, w["to_q.weight"], nullptr);
  const Tensor k = be.linear(ctx, w["to_k.weight"], nullptr);
  const Tensor v = be.linear(ctx, w["to_v.weight"], nullptr);
  const Tensor a = be.attention(q, k, v, kHeads, static_cast<float>(std::pow(8.0, -0.5)), false);
  return be.linear(a, w["to_out.0.weight"], &w["to_out.0.bias"]);
}

void expect_identical(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << i;
}

TEST(AttentionContextCache, EqualsFreshComputationForEveryContext) {
  auto w = attention_weights();
  auto store = WeightStore::from_tensors(w, "attention test");
  const nn::Attention attn(WeightScope(store), cpu_backend(), kDim, kContextDim, kHeads, kHeadDim);
  store->finish();

  const Tensor x = filled({1, 11, kDim}, 2.f);
  const Tensor ctx_a = filled({1, 7, kContextDim}, 3.f);
  const Tensor ctx_b = filled({1, 5, kContextDim}, 4.f);
  expect_identical(attn.forward(x, ctx_a), reference(w, x, ctx_a));
  expect_identical(attn.forward(x, ctx_a), reference(w, x, ctx_a));  // cached keys/values
  expect_identical(attn.forward(x, ctx_b), reference(w, x, ctx_b));
  expect_identical(attn.forward(x, ctx_a), reference(w, x, ctx_a));
  for (int round = 0; round < 4; ++round) {
    // A context freed at the end of each round: the allocator tends to give
    // the next one the same address, which must not find the old keys.
    const Tensor ctx = filled({1, 7, kContextDim}, 5.f + static_cast<float>(round));
    expect_identical(attn.forward(x, ctx), reference(w, x, ctx));
  }
  // Self-attention (the context is x itself) recomputes its keys every call.
  const Tensor x2 = filled({1, 11, kDim}, 6.f);
  auto w_self = attention_weights();
  w_self["to_k.weight"] = filled({kInner, kDim}, 1.2f);
  w_self["to_v.weight"] = filled({kInner, kDim}, 1.3f);
  const nn::Attention self_attn(WeightScope(WeightStore::from_tensors(w_self, "self")),
                                cpu_backend(), kDim, kDim, kHeads, kHeadDim);
  expect_identical(self_attn.forward(x, x), reference(w_self, x, x));
  expect_identical(self_attn.forward(x2, x2), reference(w_self, x2, x2));
}

// The GEGLU feed-forward is applied token by token: going through a long
// sequence in row chunks (here 3 rows, 22 rows in all over a batch of 2) gives
// the same values as the whole sequence at once.
TEST(FeedForwardChunks, EqualTheWholeSequence) {
  constexpr int64_t kFfInner = 4 * kDim;
  std::map<std::string, Tensor> w{{"net.0.proj.weight", filled({2 * kFfInner, kDim}, 1.6f)},
                                  {"net.0.proj.bias", filled({2 * kFfInner}, 1.7f)},
                                  {"net.2.weight", filled({kDim, kFfInner}, 1.8f)},
                                  {"net.2.bias", filled({kDim}, 1.9f)}};
  auto store = WeightStore::from_tensors(w, "feed-forward test");
  nn::FeedForwardGEGLU whole(WeightScope(store), cpu_backend(), kDim, kFfInner);
  nn::FeedForwardGEGLU chunked(WeightScope(store), cpu_backend(), kDim, kFfInner);
  store->finish();
  chunked.set_chunk_bytes(3 * 2 * kFfInner * int64_t{sizeof(float)});
  const Tensor x = filled({2, 11, kDim}, 2.5f);
  const Tensor want = whole.forward(x), got = chunked.forward(x);
  ASSERT_EQ(got.shape(), x.shape());
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff += (got[i] - want[i]) * double(got[i] - want[i]);
    ref += want[i] * double(want[i]);
  }
  EXPECT_LE(std::sqrt(diff / ref), 1e-6);
  EXPECT_GT(ref, 0);
}

}  // namespace
}  // namespace sdvsr
