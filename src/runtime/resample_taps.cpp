#include "runtime/resample_taps.h"

#include <algorithm>
#include <cmath>

namespace sdvsr::resample {

float size_scale(int64_t in, int64_t out) {
  return static_cast<float>(in) / static_cast<float>(out);
}

float linear_scale(int64_t in, int64_t out, bool align_corners) {
  if (align_corners) return out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
  return size_scale(in, out);
}

float source_index(float scale, int64_t dst, bool align_corners, bool cubic) {
  if (align_corners) return scale * static_cast<float>(dst);
  const float src = static_cast<float>(scale * (static_cast<double>(dst) + 0.5) - 0.5);
  return (!cubic && src < 0.f) ? 0.f : src;
}

AxisTaps linear_taps(int64_t in, int64_t out, bool align_corners) {
  AxisTaps t;
  t.taps = 2;
  t.index.resize(out * 2);
  t.weight.resize(out * 2);
  const float scale = linear_scale(in, out, align_corners);
  for (int64_t d = 0; d < out; ++d) {
    const float real = source_index(scale, d, align_corners, false);
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(real)), in - 1);
    const float lambda = std::min(std::max(real - static_cast<float>(i0), 0.f), 1.f);
    t.index[2 * d] = i0;
    t.index[2 * d + 1] = i0 + (i0 < in - 1 ? 1 : 0);
    t.weight[2 * d] = 1.f - lambda;
    t.weight[2 * d + 1] = lambda;
  }
  return t;
}

namespace {

// Keys cubic convolution, A = -0.75.
constexpr float kCubicA = -0.75f;
float cubic_near(float x) { return ((kCubicA + 2.f) * x - (kCubicA + 3.f)) * x * x + 1.f; }
float cubic_far(float x) {
  return ((kCubicA * x - 5.f * kCubicA) * x + 8.f * kCubicA) * x - 4.f * kCubicA;
}

}  // namespace

AxisTaps cubic_taps(int64_t in, int64_t out, bool align_corners) {
  AxisTaps t;
  t.taps = 4;
  t.index.resize(out * 4);
  t.weight.resize(out * 4);
  const float scale = linear_scale(in, out, align_corners);
  for (int64_t d = 0; d < out; ++d) {
    const float real = source_index(scale, d, align_corners, true);
    const float fl = std::floor(real);
    const int64_t i = static_cast<int64_t>(fl);
    const float frac = real - fl;
    const float w[4] = {cubic_far(frac + 1.f), cubic_near(frac), cubic_near(1.f - frac),
                        cubic_far((1.f - frac) + 1.f)};
    for (int k = 0; k < 4; ++k) {
      t.index[4 * d + k] = std::min(std::max<int64_t>(i - 1 + k, 0), in - 1);  // border taps
      t.weight[4 * d + k] = w[k];
    }
  }
  return t;
}

int64_t nearest_index(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = size_scale(in, out);
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(dst) * scale)), in - 1);
}

}  // namespace sdvsr::resample
