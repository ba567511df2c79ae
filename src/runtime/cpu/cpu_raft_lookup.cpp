#include "runtime/cpu/cpu_raft_lookup.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "runtime/cpu/cpu_simd.h"

// Lanes8 values never cross a call that is not inlined (see cpu_simd.h).
#pragma GCC diagnostic ignored "-Wpsabi"

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

// Bilinear weights of the 4 taps around (ix, iy), in PyTorch's CPU kernel order.
struct Bilinear {
  float x_w, y_n;         // floor of the position: the north-west tap
  float nw, ne, sw, se;   // weights
  Bilinear(float ix, float iy) {
    x_w = std::floor(ix);
    y_n = std::floor(iy);
    const float w = ix - x_w, e = 1.0f - w;
    const float n = iy - y_n, s = 1.0f - n;
    nw = s * e;
    ne = s * w;
    sw = n * e;
    se = n * w;
  }
  // Masked taps read 0 but keep their (possibly NaN) weight, as the original.
  float combine(float nw_v, float ne_v, float sw_v, float se_v) const {
    return (nw_v * nw) + (ne_v * ne) + (sw_v * sw) + (se_v * se);
  }
};

// Float comparisons are false for NaN, like PyTorch's int conversion (NaN ->
// INT_MIN, out of bounds).
inline bool in_range(float v, int64_t size) { return v > -1.0f && v < static_cast<float>(size); }

// Bilinear sample of one [H, W] map with zero padding.
inline float sample_bilinear(const float* img, int64_t H, int64_t W, float ix, float iy) {
  const Bilinear b(ix, iy);
  const bool west = in_range(b.x_w, W), east = in_range(b.x_w + 1.0f, W);
  const bool north = in_range(b.y_n, H), south = in_range(b.y_n + 1.0f, H);
  const int64_t xw = west ? static_cast<int64_t>(b.x_w) : 0;
  const int64_t xe = east ? static_cast<int64_t>(b.x_w) + 1 : 0;
  const int64_t yn = north ? static_cast<int64_t>(b.y_n) : 0;
  const int64_t ys = south ? static_cast<int64_t>(b.y_n) + 1 : 0;
  return b.combine((north && west) ? img[yn * W + xw] : 0.0f,
                   (north && east) ? img[yn * W + xe] : 0.0f,
                   (south && west) ? img[ys * W + xw] : 0.0f,
                   (south && east) ? img[ys * W + xe] : 0.0f);
}

// Dot product in 8 lanes (lane k sums elements k, k+8, ...), the lanes then
// added pairwise, the tail last: an order that vectorises without reassociation.
// The baseline build keeps the lanes in an array (two SSE registers); the wide
// build's dot4 does the same additions in one AVX register per product.
SDVSR_ALWAYS_INLINE float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[c + k] * b[c + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

// Four dot products of `a` at once, each in dot()'s order (so the same bits):
// four independent sums keep the vector units busy instead of waiting on one.
SDVSR_ALWAYS_INLINE void dot4(const float* a, const float* const b[4], int64_t n, float out[4]) {
  Lanes8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const Lanes8 x = load8(a + c);
    s0 += x * load8(b[0] + c);
    s1 += x * load8(b[1] + c);
    s2 += x * load8(b[2] + c);
    s3 += x * load8(b[3] + c);
  }
  float r0 = sum8(s0), r1 = sum8(s1), r2 = sum8(s2), r3 = sum8(s3);
  for (; c < n; ++c) {
    r0 += a[c] * b[0][c];
    r1 += a[c] * b[1][c];
    r2 += a[c] * b[2][c];
    r3 += a[c] * b[3][c];
  }
  out[0] = r0;
  out[1] = r1;
  out[2] = r2;
  out[3] = r3;
}

// The distinct in-range integer taps of one window axis, each with a slot number.
struct TapSet {
  static constexpr int kMax = 64;
  int64_t index[kMax];
  int count = 0;
  // Slot of tap `v` (a floor value) or -1 when out of range.
  int slot(float v, int64_t size) {
    if (!in_range(v, size)) return -1;
    const int64_t t = static_cast<int64_t>(v);
    for (int k = 0; k < count; ++k)
      if (index[k] == t) return k;
    index[count] = t;
    return count++;
  }
};

// torch's vec::maximum: NaN wins.
inline float nan_max(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::nanf("");
  return a > b ? a : b;
}

// Correlations at every needed integer tap of one window:
// corr[r][c] = <f1, fmap2[rows[r], cols[c]]> / sqrt(C), one tap at a time or
// (kFourAtOnce, the wide build) four.
using CorrTable = float[TapSet::kMax][TapSet::kMax];
template <bool kFourAtOnce>
SDVSR_ALWAYS_INLINE void corr_taps(const float* f1, const float* f2n, int64_t W, int64_t C,
                                   const TapSet& rows, const TapSet& cols, float norm,
                                   CorrTable& corr) {
  const int ncols = cols.count, total = rows.count * ncols;
  auto tap = [&](int p) { return f2n + (rows.index[p / ncols] * W + cols.index[p % ncols]) * C; };
  int p = 0;
  if constexpr (kFourAtOnce) {
    for (; p + 4 <= total; p += 4) {
      const float* const b[4] = {tap(p), tap(p + 1), tap(p + 2), tap(p + 3)};
      float d[4];
      dot4(f1, b, C, d);
      for (int t = 0; t < 4; ++t) corr[(p + t) / ncols][(p + t) % ncols] = d[t] / norm;
    }
  }
  for (; p < total; ++p) corr[p / ncols][p % ncols] = dot(f1, tap(p), C) / norm;
}

// corr_taps built for the baseline and, where it can run, for x86-64-v3.
using CorrTapsFn = void (*)(const float*, const float*, int64_t, int64_t, const TapSet&,
                            const TapSet&, float, CorrTable&);
void corr_taps_baseline(const float* f1, const float* f2n, int64_t W, int64_t C,
                        const TapSet& rows, const TapSet& cols, float norm, CorrTable& corr) {
  corr_taps<false>(f1, f2n, W, C, rows, cols, norm, corr);
}
#if SDVSR_HAVE_X86_V3
SDVSR_TARGET_X86_V3 void corr_taps_x86_v3(const float* f1, const float* f2n, int64_t W,
                                          int64_t C, const TapSet& rows, const TapSet& cols,
                                          float norm, CorrTable& corr) {
  corr_taps<true>(f1, f2n, W, C, rows, cols, norm, corr);
}
#endif

CorrTapsFn pick_corr_taps() {
#if SDVSR_HAVE_X86_V3
  if (wide_simd()) {
    count_wide_simd_run();
    return corr_taps_x86_v3;
  }
#endif
  return corr_taps_baseline;
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

Tensor raft_corr_lookup_direct(const Tensor& fmap1, const std::vector<Tensor>& fmap2_levels,
                               const Tensor& coords, int radius) {
  if (coords.dim() != 4 || coords.size(1) != 2)
    throw std::runtime_error("raft_corr_lookup_direct: coords must be [N, 2, h, w], got " +
                             shape_str(coords.shape()));
  const int64_t N = coords.size(0), h = coords.size(2), w = coords.size(3);
  if (fmap1.dim() != 4 || fmap1.size(0) != N || fmap1.size(1) != h || fmap1.size(2) != w)
    throw std::runtime_error("raft_corr_lookup_direct: fmap1 " + shape_str(fmap1.shape()) +
                             " is not [N, h, w, C] for coords " + shape_str(coords.shape()));
  const int64_t C = fmap1.size(3);
  for (const Tensor& f : fmap2_levels)
    if (f.dim() != 4 || f.size(0) != N || f.size(3) != C)
      throw std::runtime_error("raft_corr_lookup_direct: fmap2 level " + shape_str(f.shape()) +
                               " is not [N, h_l, w_l, " + std::to_string(C) + "]");
  const int64_t side = 2 * radius + 1, per_level = side * side;
  if (2 * side > TapSet::kMax) throw std::runtime_error("raft_corr_lookup_direct: radius too large");
  const int64_t L = static_cast<int64_t>(fmap2_levels.size());
  const int64_t plane = h * w, P = N * plane;
  // torch divides the matmul result by sqrt(C) (a tensor division).
  const float norm = std::sqrt(static_cast<float>(C));
  Tensor out = Tensor::uninitialized({N, L * per_level, h, w});
  float* dst = out.data();
  const float* src = coords.data();
  const CorrTapsFn corr_taps_fn = pick_corr_taps();

#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < P; ++i) {
    const int64_t n = i / plane, pos = i % plane;
    const float* f1 = fmap1.data() + i * C;
    float cx = src[(n * 2 + 0) * plane + pos];
    float cy = src[(n * 2 + 1) * plane + pos];
    for (int64_t l = 0; l < L; ++l) {
      const Tensor& f2 = fmap2_levels[l];
      const int64_t H = f2.size(1), W = f2.size(2);
      const float* f2n = f2.data() + n * H * W * C;
      const Axis ax{static_cast<float>(W - 1), static_cast<float>(W - 1) / 2.0f, true};
      const Axis ay{static_cast<float>(H - 1), static_cast<float>(H - 1) / 2.0f, H > 1};
      float ix[TapSet::kMax], iy[TapSet::kMax];
      int col_w[TapSet::kMax], col_e[TapSet::kMax], row_n[TapSet::kMax], row_s[TapSet::kMax];
      TapSet cols, rows;
      for (int64_t a = 0; a < side; ++a) {
        ix[a] = ax.to_source(cx + static_cast<float>(a - radius));
        const float x_w = std::floor(ix[a]);
        col_w[a] = cols.slot(x_w, W);
        col_e[a] = cols.slot(x_w + 1.0f, W);
      }
      for (int64_t b = 0; b < side; ++b) {
        iy[b] = ay.to_source(cy + static_cast<float>(b - radius));
        const float y_n = std::floor(iy[b]);
        row_n[b] = rows.slot(y_n, H);
        row_s[b] = rows.slot(y_n + 1.0f, H);
      }
      CorrTable corr;
      corr_taps_fn(f1, f2n, W, C, rows, cols, norm, corr);
      auto at = [&](int r, int c) { return (r >= 0 && c >= 0) ? corr[r][c] : 0.0f; };
      float* o = dst + (n * L * per_level + l * per_level) * plane + pos;
      for (int64_t a = 0; a < side; ++a)
        for (int64_t b = 0; b < side; ++b) {
          const Bilinear bl(ix[a], iy[b]);
          o[(a * side + b) * plane] = bl.combine(at(row_n[b], col_w[a]), at(row_n[b], col_e[a]),
                                                 at(row_s[b], col_w[a]), at(row_s[b], col_e[a]));
        }
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
