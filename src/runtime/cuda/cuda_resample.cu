// Resampling on the device with cpu_resample.cpp's summation order: the
// per-axis taps (source indices and weights) come from runtime/resample_taps,
// as on the CPU, and are uploaded once per size; the kernels only gather and sum.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_activation.cuh"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"
#include "runtime/resample_taps.h"

namespace sdvsr {
namespace {

using cuda::blocks_for;
using cuda::kThreads;
using resample::AxisTaps;
using resample::cubic_taps;
using resample::linear_taps;
using resample::nearest_index;

void check_image(const Tensor& x, const char* op) {
  cuda::require(x.dim() == 4, op, "x " + shape_str(x.shape()) + " must be [N, C, H, W]");
}

// A resize of x to (out_h, out_w): both sizes positive, as PyTorch requires
// (an empty source has no pixel to take).
void check_resize(const Tensor& x, int64_t out_h, int64_t out_w, const char* op) {
  check_image(x, op);
  cuda::require(out_h > 0 && out_w > 0, op, "output size must be positive");
  cuda::require(x.size(2) > 0 && x.size(3) > 0, op,
                "input " + shape_str(x.shape()) + " has no pixels to resize");
}

// A host vector on the device, uploaded once per (kind, source size, output
// size, align_corners, part) and kept by the context.
enum class TableKind : int64_t { kNearest, kLinear, kCubic };
template <typename T>
std::shared_ptr<void> device_vector(cuda::Context& c, TableKind kind, int64_t in, int64_t out,
                                    bool align_corners, int64_t part, const std::vector<T>& v) {
  return c.device_table({static_cast<int64_t>(kind), in, out, align_corners ? 1 : 0, part},
                        v.data(), v.size() * sizeof(T));
}

// ---- device ----
// Output element i of a plane-wise separable resampling: the sum over ky of
// (sum over kx of src * wx) * wy, in cpu_resample's order.
struct SeparableTaps {
  int64_t h, w, out_h, out_w;
  int ty;
  const int64_t* iy;
  const float* wy;
  int tx;
  const int64_t* ix;
  const float* wx;
};
__device__ inline float separable_at(const float* src, int64_t i, const SeparableTaps& t) {
  const int64_t ox = i % t.out_w, oy = (i / t.out_w) % t.out_h, p = i / (t.out_w * t.out_h);
  const float* plane = src + p * t.h * t.w;
  float acc = 0.f;
  for (int ky = 0; ky < t.ty; ++ky) {
    const float* srow = plane + t.iy[oy * t.ty + ky] * t.w;
    float a = srow[t.ix[ox * t.tx]] * t.wx[ox * t.tx];
    for (int kx = 1; kx < t.tx; ++kx) a += srow[t.ix[ox * t.tx + kx]] * t.wx[ox * t.tx + kx];
    const float term = a * t.wy[oy * t.ty + ky];
    acc = ky == 0 ? term : acc + term;
  }
  return acc;
}

__global__ void separable_kernel(const float* src, float* dst, int64_t total, SeparableTaps t) {
  SDVSR_GRID_STRIDE(i, total) dst[i] = separable_at(src, i, t);
}

// act((x + resampled(small) * s) + residual): the float operations of
// upsample_bilinear, scale, add, add and the activation one after another.
__global__ void add_resampled_kernel(const float* x, const float* small, const float* residual,
                                     float* dst, int64_t total, SeparableTaps t, float s,
                                     Activation a) {
  SDVSR_GRID_STRIDE(i, total) {
    float v = x[i] + separable_at(small, i, t) * s;
    if (residual) v = v + residual[i];
    dst[i] = cuda::apply_activation(v, a);
  }
}

__global__ void nearest_kernel(const float* src, float* dst, int64_t total, int64_t h, int64_t w,
                               int64_t out_h, int64_t out_w, const int64_t* iy,
                               const int64_t* ix) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t ox = i % out_w, oy = (i / out_w) % out_h, p = i / (out_w * out_h);
    dst[i] = src[(p * h + iy[oy]) * w + ix[ox]];
  }
}

// One thread per output position, looping over channels (cpu_resample's grid_sample).
__global__ void grid_sample_kernel(const float* src, const float* grid, float* dst, int64_t n,
                                   int64_t c, int64_t h, int64_t w, int64_t ho, int64_t wo,
                                   bool nearest, bool align_corners, float sx, float sy) {
  const int64_t positions = n * ho * wo;
  SDVSR_GRID_STRIDE(i, positions) {
    const int64_t b = i / (ho * wo), o = i % (ho * wo);
    const float* g = grid + i * 2;
    const float px = align_corners ? (g[0] + 1.f) * sx : fmaf(g[0] + 1.f, sx, -0.5f);
    const float py = align_corners ? (g[1] + 1.f) * sy : fmaf(g[1] + 1.f, sy, -0.5f);
    const int64_t plane = h * w, out_plane = ho * wo;
    if (nearest) {
      const float rx = rintf(px), ry = rintf(py);  // half to even
      const bool inside = rx >= 0.f && rx < static_cast<float>(w) && ry >= 0.f &&
                          ry < static_cast<float>(h);
      const int64_t ix = inside ? static_cast<int64_t>(rx) : 0;
      const int64_t iy = inside ? static_cast<int64_t>(ry) : 0;
      for (int64_t ch = 0; ch < c; ++ch)
        dst[(b * c + ch) * out_plane + o] = inside ? src[(b * c + ch) * plane + iy * w + ix] : 0.f;
      continue;
    }
    const float x0f = floorf(px), y0f = floorf(py);
    const float fx = px - x0f, fy = py - y0f;
    const float ex = 1.f - fx, sy1 = 1.f - fy;
    const float nw = sy1 * ex, ne = sy1 * fx, sw = fy * ex, se = fy * fx;
    const bool finite = isfinite(px) && isfinite(py);
    const bool near = finite && fabsf(px) < 1e9f && fabsf(py) < 1e9f;
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
      float r = v_nw * nw;  // fused multiply-adds in the reference's order
      r = fmaf(v_ne, ne, r);
      r = fmaf(v_sw, sw, r);
      r = fmaf(v_se, se, r);
      dst[(b * c + ch) * out_plane + o] = finite ? r : nanf("");
    }
  }
}

__global__ void avg_pool_kernel(const float* src, float* dst, int64_t total, int64_t h, int64_t w,
                                int64_t ho, int64_t wo, int kernel, int stride, float divisor) {
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t ox = i % wo, oy = (i / wo) % ho, p = i / (wo * ho);
    float sum = 0.f;
    for (int ky = 0; ky < kernel; ++ky)
      for (int kx = 0; kx < kernel; ++kx)
        sum += src[(p * h + oy * stride + ky) * w + ox * stride + kx];
    dst[i] = sum / divisor;
  }
}

// The taps of a resampling from x's size to (out_h, out_w), on the device
// (kept by the context; `keep` holds them for the caller).
SeparableTaps device_taps(cuda::Context& c, const Tensor& x, int64_t out_h, int64_t out_w,
                          TableKind kind, bool align_corners, const AxisTaps& ty,
                          const AxisTaps& tx, std::vector<std::shared_ptr<void>>& keep) {
  const int64_t h = x.size(2), w = x.size(3);
  keep = {device_vector(c, kind, h, out_h, align_corners, 0, ty.index),
          device_vector(c, kind, h, out_h, align_corners, 1, ty.weight),
          device_vector(c, kind, w, out_w, align_corners, 0, tx.index),
          device_vector(c, kind, w, out_w, align_corners, 1, tx.weight)};
  return SeparableTaps{h,
                       w,
                       out_h,
                       out_w,
                       ty.taps,
                       static_cast<const int64_t*>(keep[0].get()),
                       static_cast<const float*>(keep[1].get()),
                       tx.taps,
                       static_cast<const int64_t*>(keep[2].get()),
                       static_cast<const float*>(keep[3].get())};
}

Tensor separable(cuda::Context& c, const Tensor& x_in, int64_t out_h, int64_t out_w,
                 TableKind kind, bool align_corners, const AxisTaps& ty, const AxisTaps& tx,
                 const char* op) {
  const Tensor x = c.input(x_in);
  Tensor out = c.empty({x.size(0), x.size(1), out_h, out_w});
  const int64_t total = out.numel();
  if (total == 0) return out;
  std::vector<std::shared_ptr<void>> keep;
  const SeparableTaps t = device_taps(c, x, out_h, out_w, kind, align_corners, ty, tx, keep);
  SDVSR_LAUNCH(separable_kernel, blocks_for(total), kThreads, c.stream)(
      x.raw_data(), out.raw_data(), total, t);
  cuda::check_launch(op);
  return out;
}

}  // namespace

Tensor CudaBackend::upsample_nearest(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  check_resize(x_in, out_h, out_w, "upsample_nearest");
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  const int64_t h = x.size(2), w = x.size(3);
  std::vector<int64_t> iy(out_h), ix(out_w);
  for (int64_t d = 0; d < out_h; ++d) iy[d] = nearest_index(d, h, out_h);
  for (int64_t d = 0; d < out_w; ++d) ix[d] = nearest_index(d, w, out_w);
  Tensor out = c.empty({x.size(0), x.size(1), out_h, out_w});
  const int64_t total = out.numel();
  if (total == 0) return out;
  const auto dy = device_vector(c, TableKind::kNearest, h, out_h, false, 0, iy);
  const auto dx = device_vector(c, TableKind::kNearest, w, out_w, false, 0, ix);
  SDVSR_LAUNCH(nearest_kernel, blocks_for(total), kThreads, c.stream)(
      x.raw_data(), out.raw_data(), total, h, w, out_h, out_w,
      static_cast<const int64_t*>(dy.get()), static_cast<const int64_t*>(dx.get()));
  cuda::check_launch("upsample_nearest");
  return out;
}

Tensor CudaBackend::upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                                      bool align_corners) {
  check_resize(x, out_h, out_w, "upsample_bilinear");
  return separable(*ctx_, x, out_h, out_w, TableKind::kLinear, align_corners,
                   linear_taps(x.size(2), out_h, align_corners),
                   linear_taps(x.size(3), out_w, align_corners), "upsample_bilinear");
}

Tensor CudaBackend::add_bilinear_upsampled(Tensor x_in, const Tensor& small_in, float s,
                                           const Tensor* residual_in, Activation a) {
  const char* op = "add_bilinear_upsampled";
  check_image(x_in, op);
  check_resize(small_in, x_in.size(2), x_in.size(3), op);
  cuda::require(small_in.size(0) == x_in.size(0) && small_in.size(1) == x_in.size(1), op,
                "small " + shape_str(small_in.shape()) + " does not match x " +
                    shape_str(x_in.shape()));
  cuda::require(!residual_in || residual_in->shape() == x_in.shape(), op,
                "residual " + (residual_in ? shape_str(residual_in->shape()) : std::string()) +
                    " does not match x " + shape_str(x_in.shape()));
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in), small = c.input(small_in);
  Tensor residual;
  if (residual_in) residual = c.input(*residual_in);
  const int64_t out_h = x.size(2), out_w = x.size(3);
  Tensor out = c.empty(x.shape());
  const int64_t total = out.numel();
  if (total == 0) return out;
  std::vector<std::shared_ptr<void>> keep;
  const SeparableTaps t = device_taps(c, small, out_h, out_w, TableKind::kLinear, false,
                                      linear_taps(small.size(2), out_h, false),
                                      linear_taps(small.size(3), out_w, false), keep);
  SDVSR_LAUNCH(add_resampled_kernel, blocks_for(total), kThreads, c.stream)(
      x.raw_data(), small.raw_data(), residual_in ? residual.raw_data() : nullptr,
      out.raw_data(), total, t, s, a);
  cuda::check_launch(op);
  return out;
}

Tensor CudaBackend::upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                                     bool align_corners) {
  check_resize(x, out_h, out_w, "upsample_bicubic");
  return separable(*ctx_, x, out_h, out_w, TableKind::kCubic, align_corners,
                   cubic_taps(x.size(2), out_h, align_corners),
                   cubic_taps(x.size(3), out_w, align_corners), "upsample_bicubic");
}

Tensor CudaBackend::grid_sample(const Tensor& x_in, const Tensor& grid_in, GridSampleMode mode,
                                bool align_corners) {
  check_image(x_in, "grid_sample");
  cuda::require(grid_in.dim() == 4 && grid_in.size(0) == x_in.size(0) && grid_in.size(3) == 2,
                "grid_sample",
                "grid " + shape_str(grid_in.shape()) + " must be [N, Ho, Wo, 2] for x " +
                    shape_str(x_in.shape()));
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in), grid = c.input(grid_in);
  const int64_t n = x.size(0), ch = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ho = grid.size(1), wo = grid.size(2);
  const float sx = align_corners ? static_cast<float>(w - 1) / 2.f : static_cast<float>(w) / 2.f;
  const float sy = align_corners ? static_cast<float>(h - 1) / 2.f : static_cast<float>(h) / 2.f;
  Tensor out = c.empty({n, ch, ho, wo});
  const int64_t positions = n * ho * wo;
  if (positions == 0 || ch == 0) return out;
  SDVSR_LAUNCH(grid_sample_kernel, blocks_for(positions), kThreads, c.stream)(
      x.raw_data(), grid.raw_data(), out.raw_data(), n, ch, h, w, ho, wo,
      mode == GridSampleMode::kNearest, align_corners, sx, sy);
  cuda::check_launch("grid_sample");
  return out;
}

Tensor CudaBackend::avg_pool2d(const Tensor& x_in, int kernel, int stride) {
  check_image(x_in, "avg_pool2d");
  const int64_t h = x_in.size(2), w = x_in.size(3);
  cuda::require(kernel > 0 && stride > 0 && h >= kernel && w >= kernel, "avg_pool2d",
                "kernel " + std::to_string(kernel) + " does not fit x " + shape_str(x_in.shape()));
  cuda::Context& c = *ctx_;
  const Tensor x = c.input(x_in);
  const int64_t ho = (h - kernel) / stride + 1, wo = (w - kernel) / stride + 1;
  Tensor out = c.empty({x.size(0), x.size(1), ho, wo});
  const int64_t total = out.numel();
  if (total == 0) return out;
  SDVSR_LAUNCH(avg_pool_kernel, blocks_for(total), kThreads, c.stream)(
      x.raw_data(), out.raw_data(), total, h, w, ho, wo, kernel, stride,
      static_cast<float>(kernel * kernel));
  cuda::check_launch("avg_pool2d");
  return out;
}

}  // namespace sdvsr
