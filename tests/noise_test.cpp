// The counter-based default noise: Philox4x32-10 known-answer vectors, the
// element-to-counter mapping, independence from threads, and its statistics.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "pipeline/noise.h"

namespace sdvsr {
namespace {

TEST(Noise, PhiloxKnownAnswers) {
  // Random123 kat_vectors, philox4x32 with 10 rounds.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

// Element i computed on its own from the documented formula.
float reference_element(uint64_t seed, uint64_t stream, int64_t i) {
  const uint64_t b = static_cast<uint64_t>(i) / 4;
  const PhiloxCounter w = philox4x32_10(
      {uint32_t(b), uint32_t(b >> 32), uint32_t(stream), uint32_t(stream >> 32)}, {uint32_t(seed), uint32_t(seed >> 32)});
  const int pair = static_cast<int>(i % 4) / 2;
  const double u1 = (double(w[2 * pair]) + 0.5) / 4294967296.0;
  const double u2 = double(w[2 * pair + 1]) / 4294967296.0;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * M_PI * u2;
  return static_cast<float>(i % 2 == 0 ? r * std::cos(a) : r * std::sin(a));
}

TEST(Noise, ElementsFollowTheDocumentedMapping) {
  const uint64_t seed = 0x0123456789abcdefull, stream = 0x100000003ull;
  const Tensor t = gaussian_noise({1, 4, 3, 5}, seed, stream);  // 60 elements
  ASSERT_EQ(t.shape(), (Shape{1, 4, 3, 5}));
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t[i], reference_element(seed, stream, i)) << i;
  // An odd element count ends inside a block; leading elements do not depend on the shape.
  const Tensor small = gaussian_noise({7}, seed, stream);
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(small[i], t[i]);
  // Filling piecewise from any offset gives the same elements.
  std::vector<float> piece(23);
  gaussian_fill(piece.data(), 23, 37, seed, stream);
  for (int64_t j = 0; j < 23; ++j) EXPECT_EQ(piece[j], t[37 + j]) << j;
  // Streams and seeds give different noise.
  EXPECT_NE(gaussian_noise({4}, seed, stream + 1)[0], t[0]);
  EXPECT_NE(gaussian_noise({4}, seed + 1, stream)[0], t[0]);
}

TEST(Noise, SameForAnyThreadCount) {
  const Shape shape = {1, 4, 90, 160};
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor one = gaussian_noise(shape, 42, 7);
  omp_set_num_threads(2);
  const Tensor two = gaussian_noise(shape, 42, 7);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), sizeof(float) * one.numel()), 0);
}

TEST(Noise, StandardNormalStatistics) {
  const int64_t n = 1 << 21;
  const Tensor t = gaussian_noise({n}, 1234, 0);
  double sum = 0, sum2 = 0, sum3 = 0, sum4 = 0;
  int64_t within1 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = t[i];
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum2 += v * v;
    sum3 += v * v * v;
    sum4 += v * v * v * v;
    within1 += std::fabs(v) < 1.0;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  // Bounds ~5 standard errors: sd(mean) = 1/sqrt(n), sd(var) = sqrt(2/n), sd(m3) = sqrt(15/n), sd(m4) = sqrt(96/n).
  EXPECT_LT(std::fabs(mean), 5.0 / std::sqrt(double(n)));
  EXPECT_LT(std::fabs(var - 1.0), 5.0 * std::sqrt(2.0 / n));
  EXPECT_LT(std::fabs(sum3 / n), 5.0 * std::sqrt(15.0 / n));
  EXPECT_LT(std::fabs(sum4 / n - 3.0), 5.0 * std::sqrt(96.0 / n));
  // P(|z| < 1) = 0.682689...
  EXPECT_LT(std::fabs(double(within1) / n - 0.6826895), 5.0 * std::sqrt(0.6827 * 0.3173 / n));
  // Neighbouring elements (cos/sin of a pair, and across pairs) are uncorrelated.
  double c01 = 0, c12 = 0;
  for (int64_t i = 0; i + 2 < n; i += 4) {
    c01 += double(t[i]) * t[i + 1];
    c12 += double(t[i + 1]) * t[i + 2];
  }
  EXPECT_LT(std::fabs(c01 / (n / 4)), 5.0 / std::sqrt(n / 4.0));
  EXPECT_LT(std::fabs(c12 / (n / 4)), 5.0 / std::sqrt(n / 4.0));
}

}  // namespace
}  // namespace sdvsr
