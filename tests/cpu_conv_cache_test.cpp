// The CPU conv2d keeps blocked copies of its weights between calls. These
// tests make sure a copy is only ever used for the storage it was made from:
// a freed weight whose address is reused, and weights that share one owner
// (a memory-mapped file), must give the new/other weights' results.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"

namespace sdvsr {
namespace {

// Direct convolution, stride 1, padding 1, no groups, in double.
std::vector<double> naive_conv(const Tensor& x, const Tensor& w) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), kh = w.size(2), kw = w.size(3);
  std::vector<double> out(static_cast<size_t>(n * o * h * wd), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xx = 0; xx < wd; ++xx) {
          double acc = 0;
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t dy = 0; dy < kh; ++dy)
              for (int64_t dx = 0; dx < kw; ++dx) {
                const int64_t iy = y + dy - 1, ix = xx + dx - 1;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += static_cast<double>(x[((b * c + ic) * h + iy) * wd + ix]) *
                       w[((oc * c + ic) * kh + dy) * kw + dx];
              }
          out[static_cast<size_t>(((b * o + oc) * h + y) * wd + xx)] = acc;
        }
  return out;
}

void expect_matches(const Tensor& out, const std::vector<double>& ref) {
  ASSERT_EQ(out.numel(), static_cast<int64_t>(ref.size()));
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(out[static_cast<int64_t>(i)], ref[i], 1e-4 * (1 + std::fabs(ref[i]))) << i;
}

Tensor filled(const Shape& s, float seed) {
  Tensor t = Tensor::uninitialized(s);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = std::sin(seed * 0.37f + static_cast<float>(i) * 0.11f * seed);
  return t;
}

Conv2dParams pad1() {
  Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  return p;
}

// 32 -> 32 channels: oneDNN picks a blocked weight layout, so the cache is used.
TEST(CpuConvWeightCache, RepeatedCallsAndRecycledAddressesUseTheRightWeights) {
  set_conv_weight_cache_mb(64);  // the cache is off by default
  Backend& be = cpu_backend();
  const Tensor x = filled({1, 32, 6, 5}, 1.f);
  for (int round = 0; round < 6; ++round) {
    // A fresh weight each round, freed at the end of it: the allocator tends to
    // hand the same address back, which must not find the old blocked copy.
    const Tensor w = filled({32, 32, 3, 3}, 2.f + static_cast<float>(round));
    const std::vector<double> ref = naive_conv(x, w);
    expect_matches(be.conv2d(x, w, nullptr, pad1()), ref);
    expect_matches(be.conv2d(x, w, nullptr, pad1()), ref);  // now from the cache
  }
}

TEST(CpuConvWeightCache, WeightsSharingOneOwnerAreKeptApart) {
  set_conv_weight_cache_mb(64);
  Backend& be = cpu_backend();
  const Tensor x = filled({1, 32, 4, 4}, 3.f);
  const int64_t per = 32 * 32 * 3 * 3;
  // Two weights borrowed from one buffer, like tensors of a mapped file.
  auto buffer = std::make_shared<std::vector<float>>(static_cast<size_t>(2 * per));
  for (size_t i = 0; i < buffer->size(); ++i) (*buffer)[i] = std::cos(static_cast<float>(i) * 0.013f);
  const Tensor w0 = Tensor::borrow({32, 32, 3, 3}, buffer->data(), buffer);
  const Tensor w1 = Tensor::borrow({32, 32, 3, 3}, buffer->data() + per, buffer);
  for (int i = 0; i < 2; ++i) {
    expect_matches(be.conv2d(x, w0, nullptr, pad1()), naive_conv(x, w0));
    expect_matches(be.conv2d(x, w1, nullptr, pad1()), naive_conv(x, w1));
  }
  // The same storage seen with another shape (a different layout) is its own entry.
  const Tensor w_small = Tensor::borrow({16, 32, 3, 3}, buffer->data(), buffer);
  expect_matches(be.conv2d(x, w_small, nullptr, pad1()), naive_conv(x, w_small));
}

}  // namespace
}  // namespace sdvsr
