#pragma once
// Test data and comparisons shared by the CPU op tests: deterministic random
// tensors, convolution parameters, and "the same bits" for results that must
// not change at all.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace sdvsr::test {

// Uniform in [lo, hi), the same values for the same seed on every machine.
inline Tensor random_tensor(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::uninitialized(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = dist(rng);
  return t;
}

// Same shape and the same bytes; on failure, the first element that differs.
inline ::testing::AssertionResult SameBits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure()
           << "shapes " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  if (a.numel() == 0 ||
      std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0)
    return ::testing::AssertionSuccess();
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a.data()[i], &b.data()[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure()
             << "first difference at element " << i << ": " << a.data()[i] << " vs " << b.data()[i];
  return ::testing::AssertionFailure() << "bytes differ";
}

// Square strides, padding and dilation, and groups, as the CPU op tests vary them.
inline Conv2dParams conv_params(int stride, int pad, int dilation = 1, int groups = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

}  // namespace sdvsr::test
