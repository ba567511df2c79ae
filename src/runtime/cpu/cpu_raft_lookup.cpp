#include "runtime/cpu/cpu_raft_lookup.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace sdvsr::cpu {

namespace {

// One level's sampling geometry, mirroring torchvision's _utils.grid_sample
// (normalise: 2*p/(size-1) - 1) followed by PyTorch's CPU grid_sample with
// align_corners=True (unnormalise: (g+1) * ((size-1)/2)). The round trip is kept
// because it is not bit-exact; size 1 in x gives NaN exactly as the original.
struct Axis {
  float size_minus_1;
  float half_span;
  bool normalise;  // false for a height-1 map: torchvision leaves y as is
  float to_source(float p) const {
    const float g = normalise ? (2.0f * p) / size_minus_1 - 1.0f : p;
    return (g + 1.0f) * half_span;
  }
};

// Bilinear sample of one [H, W] map with zero padding, in PyTorch's CPU kernel order.
inline float sample_bilinear(const float* img, int64_t H, int64_t W, float ix, float iy) {
  const float x_w = std::floor(ix);
  const float y_n = std::floor(iy);
  const float w = ix - x_w;
  const float e = 1.0f - w;
  const float n = iy - y_n;
  const float s = 1.0f - n;
  const float nw = s * e, ne = s * w, sw = n * e, se = n * w;
  // Float comparisons are false for NaN, like the int conversion in PyTorch
  // (NaN -> INT_MIN, out of bounds); a masked tap reads 0.
  const bool west = x_w > -1.0f && x_w < static_cast<float>(W);
  const bool east = x_w + 1.0f > -1.0f && x_w + 1.0f < static_cast<float>(W);
  const bool north = y_n > -1.0f && y_n < static_cast<float>(H);
  const bool south = y_n + 1.0f > -1.0f && y_n + 1.0f < static_cast<float>(H);
  const int64_t xi = west ? static_cast<int64_t>(x_w) : 0;
  const int64_t yi = north ? static_cast<int64_t>(y_n) : 0;
  const int64_t xe = east ? static_cast<int64_t>(x_w) + 1 : 0;
  const int64_t ys = south ? static_cast<int64_t>(y_n) + 1 : 0;
  const float nw_v = (north && west) ? img[yi * W + xi] : 0.0f;
  const float ne_v = (north && east) ? img[yi * W + xe] : 0.0f;
  const float sw_v = (south && west) ? img[ys * W + xi] : 0.0f;
  const float se_v = (south && east) ? img[ys * W + xe] : 0.0f;
  return (nw_v * nw) + (ne_v * ne) + (sw_v * sw) + (se_v * se);
}

// torch's vec::maximum: NaN wins.
inline float nan_max(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::nanf("");
  return a > b ? a : b;
}

}  // namespace

Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords, int radius) {
  if (coords.dim() != 4 || coords.size(1) != 2)
    throw std::runtime_error("raft_corr_lookup: coords must be [N, 2, h, w], got " +
                             shape_str(coords.shape()));
  const int64_t N = coords.size(0), h = coords.size(2), w = coords.size(3);
  const int64_t P = N * h * w;
  const int64_t side = 2 * radius + 1;
  const int64_t per_level = side * side;
  const int64_t L = static_cast<int64_t>(pyramid.size());
  for (const Tensor& level : pyramid) {
    if (level.dim() != 4 || level.size(0) != P || level.size(1) != 1)
      throw std::runtime_error("raft_corr_lookup: pyramid level " + shape_str(level.shape()) +
                               " does not match " + std::to_string(P) + " positions");
  }
  Tensor out = Tensor::uninitialized({N, L * per_level, h, w});
  float* dst = out.data();
  const float* src = coords.data();
  const int64_t plane = h * w;

#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < P; ++i) {
    const int64_t n = i / plane, pos = i % plane;
    float cx = src[(n * 2 + 0) * plane + pos];
    float cy = src[(n * 2 + 1) * plane + pos];
    for (int64_t l = 0; l < L; ++l) {
      const Tensor& level = pyramid[l];
      const int64_t H = level.size(2), W = level.size(3);
      const float* img = level.data() + i * H * W;
      const Axis ax{static_cast<float>(W - 1), static_cast<float>(W - 1) / 2.0f, true};
      const Axis ay{static_cast<float>(H - 1), static_cast<float>(H - 1) / 2.0f, H > 1};
      float* o = dst + (n * L * per_level + l * per_level) * plane + pos;
      for (int64_t a = 0; a < side; ++a) {
        // The first window index moves along x (torchvision's meshgrid "ij" of (dx, dy)).
        const float ix = ax.to_source(cx + static_cast<float>(a - radius));
        for (int64_t b = 0; b < side; ++b) {
          const float iy = ay.to_source(cy + static_cast<float>(b - radius));
          o[(a * side + b) * plane] = sample_bilinear(img, H, W, ix, iy);
        }
      }
      // Next level: plain halving (exact), no half-pixel correction.
      cx = cx / 2.0f;
      cy = cy / 2.0f;
    }
  }
  return out;
}

Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) {
  if (flow.dim() != 4 || flow.size(1) != 2)
    throw std::runtime_error("raft_convex_upsample: flow must be [N, 2, h, w], got " +
                             shape_str(flow.shape()));
  const int64_t N = flow.size(0), h = flow.size(2), w = flow.size(3);
  const int64_t f = factor, ff = f * f;
  if (mask.dim() != 4 || mask.size(0) != N || mask.size(1) != 9 * ff || mask.size(2) != h ||
      mask.size(3) != w)
    throw std::runtime_error("raft_convex_upsample: mask " + shape_str(mask.shape()) +
                             " does not match flow " + shape_str(flow.shape()));
  const int64_t H = h * f, W = w * f, plane = h * w;
  Tensor out = Tensor::uninitialized({N, 2, H, W});
  float* dst = out.data();
  const float* fl = flow.data();
  const float* mk = mask.data();
  const float scale = static_cast<float>(f);

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        // f * flow over the 3x3 neighbourhood, zero outside (F.unfold with padding 1).
        float nb[2][9];
        for (int64_t k = 0; k < 9; ++k) {
          const int64_t yy = y + k / 3 - 1, xx = x + k % 3 - 1;
          const bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
          for (int64_t c = 0; c < 2; ++c)
            nb[c][k] = inside ? scale * fl[(n * 2 + c) * plane + yy * w + xx] : 0.0f;
        }
        for (int64_t s = 0; s < ff; ++s) {
          const float* m = mk + (n * 9 * ff + s) * plane + y * w + x;
          float mx = m[0];
          for (int64_t k = 1; k < 9; ++k) mx = nan_max(mx, m[k * ff * plane]);
          float e[9];
          float sum = 0.0f;
          for (int64_t k = 0; k < 9; ++k) {
            e[k] = std::exp(m[k * ff * plane] - mx);
            sum = sum + e[k];
          }
          const int64_t Y = y * f + s / f, X = x * f + s % f;
          for (int64_t c = 0; c < 2; ++c) {
            float acc = 0.0f;
            for (int64_t k = 0; k < 9; ++k) acc = acc + (e[k] / sum) * nb[c][k];
            dst[((n * 2 + c) * H + Y) * W + X] = acc;
          }
        }
      }
    }
  }
  return out;
}

}  // namespace sdvsr::cpu
