// Resampling with PyTorch's exact index rules (ATen UpSample.h,
// UpSampleKernel.cpp, GridSamplerKernel.cpp, AvgPoolKernel.cpp as of 1.13).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_blocked_rows.h"
#include "runtime/cpu/cpu_dnnl.h"
#include "runtime/resample_taps.h"

namespace sdvsr {

namespace cpu {

void check_resize(const Tensor& x, int64_t out_h, int64_t out_w, const char* op) {
  check(x.dim() == 4, op, "x " + shape_str(x.shape()) + " must be [N, C, H, W]");
  check(out_h > 0 && out_w > 0, op, "output size must be positive");
  check(x.size(2) > 0 && x.size(3) > 0, op,
        "input " + shape_str(x.shape()) + " has no pixels to resize");
}

}  // namespace cpu

namespace {

using cpu::check_resize;
using resample::AxisTaps;
using resample::cubic_taps;
using resample::linear_taps;
using resample::nearest_index;

void check_image(const Tensor& x, const char* op) {
  cpu::check(x.dim() == 4, op, "x " + shape_str(x.shape()) + " must be [N, C, H, W]");
}

// Separable 2-D interpolation in ATen's order: along x for each source row
// tap, then those row results combined along y, summed tap by tap. A source
// row's x-interpolation is the same for every output row that reads it, so it
// is computed once per band of output rows and kept in a ring of rows (slot =
// row mod kRing, checked by its tag; sources are read in increasing order).
// The float operations are the ones of the direct per-pixel form. One per
// thread; start() at each plane and band.
class RowInterpolator {
 public:
  static constexpr int64_t kBandRows = 32;

  RowInterpolator(int64_t w, int64_t out_w, const AxisTaps& ty, const AxisTaps& tx)
      : w_(w), out_w_(out_w), ty_(ty), tx_(tx), ring_(static_cast<size_t>(kRing * out_w)) {}

  void start(const float* plane) {
    plane_ = plane;
    std::fill(tag_, tag_ + kRing, int64_t{-1});
  }
  // Output row `oy` of the plane into row[out_w].
  void row(int64_t oy, float* row) {
    for (int ky = 0; ky < ty_.taps; ++ky) {
      const float* a = x_row(ty_.index[oy * ty_.taps + ky]);
      const float wy = ty_.weight[oy * ty_.taps + ky];
      if (ky == 0) {
        for (int64_t ox = 0; ox < out_w_; ++ox) row[ox] = a[ox] * wy;
      } else {
        for (int64_t ox = 0; ox < out_w_; ++ox) row[ox] = row[ox] + a[ox] * wy;
      }
    }
  }

 private:
  static constexpr int64_t kRing = 8;

  // The x-interpolation of source row `sy`, from the ring or computed into it.
  const float* x_row(int64_t sy) {
    float* r = ring_.data() + (sy % kRing) * out_w_;
    if (tag_[sy % kRing] == sy) return r;
    tag_[sy % kRing] = sy;
    const float* srow = plane_ + sy * w_;
    for (int64_t ox = 0; ox < out_w_; ++ox) {
      const int64_t* ix = &tx_.index[ox * tx_.taps];
      const float* wx = &tx_.weight[ox * tx_.taps];
      float a = srow[ix[0]] * wx[0];
      for (int kx = 1; kx < tx_.taps; ++kx) a += srow[ix[kx]] * wx[kx];
      r[ox] = a;
    }
    return r;
  }

  int64_t w_, out_w_;
  const AxisTaps& ty_;
  const AxisTaps& tx_;
  std::vector<float> ring_;
  int64_t tag_[kRing];
  const float* plane_ = nullptr;
};

Tensor separable(const Tensor& x, int64_t out_h, int64_t out_w, const AxisTaps& ty,
                 const AxisTaps& tx) {
  constexpr int64_t kBandRows = RowInterpolator::kBandRows;
  const int64_t nc = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const int64_t bands = (out_h + kBandRows - 1) / kBandRows;
  Tensor out = Tensor::uninitialized({x.size(0), x.size(1), out_h, out_w});
  const float* src = x.data();
  float* dst = out.data();
#pragma omp parallel
  {
    RowInterpolator rows(w, out_w, ty, tx);
#pragma omp for collapse(2) schedule(static)
    for (int64_t p = 0; p < nc; ++p)
      for (int64_t band = 0; band < bands; ++band) {
        rows.start(src + p * h * w);
        const int64_t oy1 = std::min(out_h, (band + 1) * kBandRows);
        for (int64_t oy = band * kBandRows; oy < oy1; ++oy)
          rows.row(oy, dst + (p * out_h + oy) * out_w);
      }
  }
  return out;
}

}  // namespace

Tensor CpuBackend::upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_resize(x, out_h, out_w, "upsample_nearest");
  const int64_t nc = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  std::vector<int64_t> ix(out_w);
  for (int64_t d = 0; d < out_w; ++d) ix[d] = nearest_index(d, w, out_w);
  Tensor out = Tensor::uninitialized({x.size(0), x.size(1), out_h, out_w});
  const float* src = x.data();
  float* dst = out.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t p = 0; p < nc; ++p)
    for (int64_t oy = 0; oy < out_h; ++oy) {
      const float* srow = src + (p * h + nearest_index(oy, h, out_h)) * w;
      float* row = dst + (p * out_h + oy) * out_w;
      for (int64_t ox = 0; ox < out_w; ++ox) row[ox] = srow[ix[ox]];
    }
  return out;
}

namespace cpu {

void upsample_nearest_rows(const Tensor& x, int64_t out_h, int64_t out_w, int64_t row,
                           int64_t rows, int64_t block, float* dst) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  check(block >= 1 && c % block == 0 && row >= 0 && rows >= 0 && row + rows <= out_h,
        "upsample_nearest_conv2d", "bad rows or channel block for x " + shape_str(x.shape()));
  // Where each written position reads its value in a source plane: the same
  // indices upsample_nearest takes, so the same values.
  const int64_t positions = rows * out_w;
  std::vector<int64_t> ix(static_cast<size_t>(out_w)), at(static_cast<size_t>(positions));
  for (int64_t d = 0; d < out_w; ++d) ix[d] = nearest_index(d, w, out_w);
  for (int64_t y = 0; y < rows; ++y) {
    const int64_t sy = nearest_index(row + y, h, out_h);
    for (int64_t d = 0; d < out_w; ++d) at[y * out_w + d] = sy * w + ix[d];
  }
  const float* xs = x.data();
  write_channel_blocks(
      n, c, positions, block, dst,
      [&](int64_t image, int64_t ch, int64_t i0, int64_t i1, float* out, int64_t stride) {
        const float* plane = xs + (image * c + ch) * h * w;
        for (int64_t i = i0; i < i1; ++i) out[(i - i0) * stride] = plane[at[i]];
      },
      [](float*, int64_t) {});
}

}  // namespace cpu

Tensor CpuBackend::upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                                     bool align_corners) {
  check_resize(x, out_h, out_w, "upsample_bilinear");
  return separable(x, out_h, out_w, linear_taps(x.size(2), out_h, align_corners),
                   linear_taps(x.size(3), out_w, align_corners));
}

Tensor CpuBackend::upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                                    bool align_corners) {
  check_resize(x, out_h, out_w, "upsample_bicubic");
  return separable(x, out_h, out_w, cubic_taps(x.size(2), out_h, align_corners),
                   cubic_taps(x.size(3), out_w, align_corners));
}

Tensor CpuBackend::add_bilinear_upsampled(Tensor x, const Tensor& small, float s,
                                          const Tensor* residual, Activation a) {
  const char* op = "add_bilinear_upsampled";
  check_image(x, op);
  check_resize(small, x.size(2), x.size(3), op);
  const int64_t n = x.size(0), c = x.size(1), out_h = x.size(2), out_w = x.size(3);
  cpu::check(small.size(0) == n && small.size(1) == c, op,
             "small " + shape_str(small.shape()) + " does not match x " + shape_str(x.shape()));
  cpu::check(!residual || residual->shape() == x.shape(), op,
             "residual " + (residual ? shape_str(residual->shape()) : std::string()) +
                 " does not match x " + shape_str(x.shape()));
  cpu::check(cpu::activation_span_knows(a), op, "unknown activation");
  if (x.numel() == 0) return x;
  // Each output row as upsample_bilinear makes it, then the float operations of
  // scale, add, add and the activation in their order: the same bits.
  const int64_t h = small.size(2), w = small.size(3);
  const AxisTaps ty = linear_taps(h, out_h, false), tx = linear_taps(w, out_w, false);
  Tensor out = x.is_sole_writable_host_copy() ? x : Tensor::uninitialized(x.shape());
  constexpr int64_t kBandRows = RowInterpolator::kBandRows;
  const int64_t bands = (out_h + kBandRows - 1) / kBandRows;
  const float* xs = x.data();
  const float* src = small.data();
  const float* rs = residual ? residual->data() : nullptr;
  float* dst = out.data();
#pragma omp parallel
  {
    RowInterpolator rows(w, out_w, ty, tx);
    std::vector<float> up(static_cast<size_t>(out_w));
#pragma omp for collapse(2) schedule(static)
    for (int64_t p = 0; p < n * c; ++p)
      for (int64_t band = 0; band < bands; ++band) {
        rows.start(src + p * h * w);
        const int64_t oy1 = std::min(out_h, (band + 1) * kBandRows);
        for (int64_t oy = band * kBandRows; oy < oy1; ++oy) {
          rows.row(oy, up.data());
          const int64_t at = (p * out_h + oy) * out_w;
          float* d = dst + at;
          for (int64_t ox = 0; ox < out_w; ++ox) d[ox] = xs[at + ox] + up[ox] * s;
          if (rs)
            for (int64_t ox = 0; ox < out_w; ++ox) d[ox] = d[ox] + rs[at + ox];
          cpu::activation_span(a, d, out_w);
        }
      }
  }
  return out;
}

Tensor CpuBackend::grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                               bool align_corners) {
  check_image(x, "grid_sample");
  cpu::check(grid.dim() == 4 && grid.size(0) == x.size(0) && grid.size(3) == 2, "grid_sample",
             "grid " + shape_str(grid.shape()) + " must be [N, Ho, Wo, 2] for x " +
                 shape_str(x.shape()));
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = grid.size(1), wo = grid.size(2);
  // Unnormalisation as in ATen's vectorised CPU kernel: (g + 1) * (size - 1) / 2 with
  // align_corners, else (g + 1) * size / 2 - 0.5, which the reference evaluates as one
  // fused multiply-add (see spec/warp-and-resample.md 4.1 step 4).
  const float sx = align_corners ? static_cast<float>(w - 1) / 2.f : static_cast<float>(w) / 2.f;
  const float sy = align_corners ? static_cast<float>(h - 1) / 2.f : static_cast<float>(h) / 2.f;
  auto unnormalise = [align_corners](float g, float s) {
    return align_corners ? (g + 1.f) * s : std::fma(g + 1.f, s, -0.5f);
  };
  Tensor out = Tensor::uninitialized({n, c, ho, wo});
  const float* src = x.data();
  const float* gd = grid.data();
  float* dst = out.data();
  const int64_t plane = h * w, out_plane = ho * wo;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        const float* g = gd + ((b * ho + oy) * wo + ox) * 2;
        const float px = unnormalise(g[0], sx);
        const float py = unnormalise(g[1], sy);
        const int64_t o = oy * wo + ox;
        if (mode == GridSampleMode::kNearest) {
          const float rx = std::nearbyint(px), ry = std::nearbyint(py);  // half to even
          const bool inside = rx >= 0.f && rx < static_cast<float>(w) && ry >= 0.f &&
                              ry < static_cast<float>(h);
          const int64_t ix = inside ? static_cast<int64_t>(rx) : 0;
          const int64_t iy = inside ? static_cast<int64_t>(ry) : 0;
          for (int64_t ch = 0; ch < c; ++ch)
            dst[(b * c + ch) * out_plane + o] =
                inside ? src[(b * c + ch) * plane + iy * w + ix] : 0.f;
          continue;
        }
        const float x0f = std::floor(px), y0f = std::floor(py);
        const float fx = px - x0f, fy = py - y0f;
        const float ex = 1.f - fx, sy1 = 1.f - fy;
        const float nw = sy1 * ex, ne = sy1 * fx, sw = fy * ex, se = fy * fx;
        // Far-away coordinates: every tap is outside. Non-finite ones give NaN
        // weights, hence NaN, as in ATen.
        const bool finite = std::isfinite(px) && std::isfinite(py);
        const bool near = finite && std::abs(px) < 1e9f && std::abs(py) < 1e9f;
        const int64_t x0 = near ? static_cast<int64_t>(x0f) : -2;
        const int64_t y0 = near ? static_cast<int64_t>(y0f) : -2;
        const bool in_x0 = x0 >= 0 && x0 < w, in_x1 = x0 + 1 >= 0 && x0 + 1 < w;
        const bool in_y0 = y0 >= 0 && y0 < h, in_y1 = y0 + 1 >= 0 && y0 + 1 < h;
        for (int64_t ch = 0; ch < c; ++ch) {
          const float* p = src + (b * c + ch) * plane;
          const float v_nw = in_y0 && in_x0 ? p[y0 * w + x0] : 0.f;
          const float v_ne = in_y0 && in_x1 ? p[y0 * w + x0 + 1] : 0.f;
          const float v_sw = in_y1 && in_x0 ? p[(y0 + 1) * w + x0] : 0.f;
          const float v_se = in_y1 && in_x1 ? p[(y0 + 1) * w + x0 + 1] : 0.f;
          // The reference accumulates with fused multiply-adds in this order.
          float r = v_nw * nw;
          r = std::fma(v_ne, ne, r);
          r = std::fma(v_sw, sw, r);
          r = std::fma(v_se, se, r);
          dst[(b * c + ch) * out_plane + o] = finite ? r : std::nanf("");
        }
      }
  return out;
}

Tensor CpuBackend::avg_pool2d(const Tensor& x, int kernel, int stride) {
  check_image(x, "avg_pool2d");
  const int64_t nc = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  cpu::check(kernel > 0 && stride > 0 && h >= kernel && w >= kernel, "avg_pool2d",
             "kernel " + std::to_string(kernel) + " does not fit x " + shape_str(x.shape()));
  const int64_t ho = (h - kernel) / stride + 1, wo = (w - kernel) / stride + 1;
  const float divisor = static_cast<float>(kernel * kernel);
  Tensor out = Tensor::uninitialized({x.size(0), x.size(1), ho, wo});
  const float* src = x.data();
  float* dst = out.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t p = 0; p < nc; ++p)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        float sum = 0.f;
        for (int64_t ky = 0; ky < kernel; ++ky)
          for (int64_t kx = 0; kx < kernel; ++kx)
            sum += src[(p * h + oy * stride + ky) * w + ox * stride + kx];
        dst[(p * ho + oy) * wo + ox] = sum / divisor;
      }
  return out;
}

}  // namespace sdvsr
