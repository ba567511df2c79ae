// RAFT on the device: the all-pairs correlation volume (cuBLAS), the pyramid
// lookup (materialised or from the feature maps) and the convex upsampling,
// with cpu_raft.cpp / cpu_raft_lookup.cpp's sampling rules and float order.
// One thread per output position; the direct lookup recomputes each tap's dot
// product instead of deduplicating taps (same values, simpler, slower).
#include <cmath>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {
namespace {

using cuda::blocks_for;
using cuda::kThreads;

constexpr int kMaxLevels = 8;
struct Levels {
  int count;
  const float* data[kMaxLevels];
  int64_t h[kMaxLevels], w[kMaxLevels];
};

__global__ void divide_kernel(float* x, int64_t n, float d) {
  SDVSR_GRID_STRIDE(i, n) x[i] /= d;
}

// torchvision's normalise (2p/(size-1) - 1) then grid_sample's unnormalise ((g+1) * (size-1)/2).
struct Axis {
  float size_minus_1, half_span;
  bool normalise;
  __device__ float to_source(float p) const {
    const float g = normalise ? (2.0f * p) / size_minus_1 - 1.0f : p;
    return (g + 1.0f) * half_span;
  }
};

__device__ bool in_range(float v, int64_t size) { return v > -1.0f && v < static_cast<float>(size); }

struct Bilinear {
  float x_w, y_n, nw, ne, sw, se;
  __device__ Bilinear(float ix, float iy) {
    x_w = floorf(ix);
    y_n = floorf(iy);
    const float w = ix - x_w, e = 1.0f - w;
    const float n = iy - y_n, s = 1.0f - n;
    nw = s * e;
    ne = s * w;
    sw = n * e;
    se = n * w;
  }
  __device__ float combine(float a, float b, float c, float d) const {
    return (a * nw) + (b * ne) + (c * sw) + (d * se);
  }
};

// cpu_raft_lookup's dot: 8 independent partial sums, then the tail.
__device__ float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[c + k] * b[c + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

__global__ void lookup_kernel(Levels lv, const float* coords, float* dst, int64_t N, int64_t plane,
                              int radius) {
  const int64_t P = N * plane, side = 2 * radius + 1, per_level = side * side, L = lv.count;
  SDVSR_GRID_STRIDE(i, P) {
    const int64_t n = i / plane, pos = i % plane;
    float cx = coords[(n * 2 + 0) * plane + pos];
    float cy = coords[(n * 2 + 1) * plane + pos];
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = lv.h[l], W = lv.w[l];
      const float* img = lv.data[l] + i * H * W;
      const Axis ax{static_cast<float>(W - 1), static_cast<float>(W - 1) / 2.0f, true};
      const Axis ay{static_cast<float>(H - 1), static_cast<float>(H - 1) / 2.0f, H > 1};
      float* o = dst + (n * L * per_level + l * per_level) * plane + pos;
      for (int64_t a = 0; a < side; ++a) {
        const float ix = ax.to_source(cx + static_cast<float>(a - radius));
        for (int64_t b = 0; b < side; ++b) {
          const float iy = ay.to_source(cy + static_cast<float>(b - radius));
          const Bilinear bl(ix, iy);
          const bool west = in_range(bl.x_w, W), east = in_range(bl.x_w + 1.0f, W);
          const bool north = in_range(bl.y_n, H), south = in_range(bl.y_n + 1.0f, H);
          const int64_t xw = west ? static_cast<int64_t>(bl.x_w) : 0;
          const int64_t xe = east ? static_cast<int64_t>(bl.x_w) + 1 : 0;
          const int64_t yn = north ? static_cast<int64_t>(bl.y_n) : 0;
          const int64_t ys = south ? static_cast<int64_t>(bl.y_n) + 1 : 0;
          o[(a * side + b) * plane] = bl.combine((north && west) ? img[yn * W + xw] : 0.0f,
                                                 (north && east) ? img[yn * W + xe] : 0.0f,
                                                 (south && west) ? img[ys * W + xw] : 0.0f,
                                                 (south && east) ? img[ys * W + xe] : 0.0f);
        }
      }
      cx = cx / 2.0f;
      cy = cy / 2.0f;
    }
  }
}

// fmap1 [N, h, w, C]; levels: fmap2 pooled, [N, H_l, W_l, C].
__global__ void lookup_direct_kernel(Levels lv, const float* fmap1, const float* coords,
                                     float* dst, int64_t N, int64_t plane, int64_t C, int radius,
                                     float norm) {
  const int64_t P = N * plane, side = 2 * radius + 1, per_level = side * side, L = lv.count;
  SDVSR_GRID_STRIDE(i, P) {
    const int64_t n = i / plane, pos = i % plane;
    const float* f1 = fmap1 + i * C;
    float cx = coords[(n * 2 + 0) * plane + pos];
    float cy = coords[(n * 2 + 1) * plane + pos];
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = lv.h[l], W = lv.w[l];
      const float* f2n = lv.data[l] + n * H * W * C;
      const Axis ax{static_cast<float>(W - 1), static_cast<float>(W - 1) / 2.0f, true};
      const Axis ay{static_cast<float>(H - 1), static_cast<float>(H - 1) / 2.0f, H > 1};
      float* o = dst + (n * L * per_level + l * per_level) * plane + pos;
      auto corr = [&](bool inside, float row, float col) {
        if (!inside) return 0.0f;
        const int64_t r = static_cast<int64_t>(row), c = static_cast<int64_t>(col);
        return dot8(f1, f2n + (r * W + c) * C, C) / norm;
      };
      for (int64_t a = 0; a < side; ++a) {
        const float ix = ax.to_source(cx + static_cast<float>(a - radius));
        for (int64_t b = 0; b < side; ++b) {
          const float iy = ay.to_source(cy + static_cast<float>(b - radius));
          const Bilinear bl(ix, iy);
          const bool west = in_range(bl.x_w, W), east = in_range(bl.x_w + 1.0f, W);
          const bool north = in_range(bl.y_n, H), south = in_range(bl.y_n + 1.0f, H);
          o[(a * side + b) * plane] =
              bl.combine(corr(north && west, bl.y_n, bl.x_w),
                         corr(north && east, bl.y_n, bl.x_w + 1.0f),
                         corr(south && west, bl.y_n + 1.0f, bl.x_w),
                         corr(south && east, bl.y_n + 1.0f, bl.x_w + 1.0f));
        }
      }
      cx = cx / 2.0f;
      cy = cy / 2.0f;
    }
  }
}

__device__ float nan_max(float a, float b) {
  if (isnan(a) || isnan(b)) return nanf("");
  return a > b ? a : b;
}

// One thread per fine output position (n, Y, X): both flow channels.
__global__ void convex_upsample_kernel(const float* fl, const float* mk, float* dst, int64_t N,
                                       int64_t h, int64_t w, int64_t f) {
  const int64_t H = h * f, W = w * f, plane = h * w, ff = f * f, total = N * H * W;
  const float scale = static_cast<float>(f);
  SDVSR_GRID_STRIDE(i, total) {
    const int64_t X = i % W, Y = (i / W) % H, n = i / (W * H);
    const int64_t y = Y / f, x = X / f, s = (Y % f) * f + (X % f);
    float nb[2][9];
    for (int64_t k = 0; k < 9; ++k) {
      const int64_t yy = y + k / 3 - 1, xx = x + k % 3 - 1;
      const bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
      for (int64_t c = 0; c < 2; ++c)
        nb[c][k] = inside ? scale * fl[(n * 2 + c) * plane + yy * w + xx] : 0.0f;
    }
    const float* m = mk + (n * 9 * ff + s) * plane + y * w + x;
    float mx = m[0];
    for (int64_t k = 1; k < 9; ++k) mx = nan_max(mx, m[k * ff * plane]);
    float e[9];
    float sum = 0.0f;
    for (int64_t k = 0; k < 9; ++k) {
      e[k] = expf(m[k * ff * plane] - mx);
      sum = sum + e[k];
    }
    for (int64_t c = 0; c < 2; ++c) {
      float acc = 0.0f;
      for (int64_t k = 0; k < 9; ++k) acc = acc + (e[k] / sum) * nb[c][k];
      dst[((n * 2 + c) * H + Y) * W + X] = acc;
    }
  }
}

Levels levels_of(const std::vector<Tensor>& device_levels, bool channels_last) {
  Levels lv{};
  lv.count = static_cast<int>(device_levels.size());
  for (int l = 0; l < lv.count; ++l) {
    const Tensor& t = device_levels[static_cast<size_t>(l)];
    lv.data[l] = t.raw_data();
    lv.h[l] = channels_last ? t.size(1) : t.size(2);
    lv.w[l] = channels_last ? t.size(2) : t.size(3);
  }
  return lv;
}

void check_coords(const Tensor& coords, const char* op) {
  cuda::require(coords.dim() == 4 && coords.size(1) == 2, op,
                "coords must be [N, 2, h, w], got " + shape_str(coords.shape()));
}

}  // namespace

Tensor CudaBackend::correlation_volume(const Tensor& f1_in, const Tensor& f2_in) {
  cuda::require(f1_in.dim() == 4 && f1_in.shape() == f2_in.shape(), "correlation_volume",
                "fmap1 " + shape_str(f1_in.shape()) + " and fmap2 " + shape_str(f2_in.shape()) +
                    " must be equal [N, C, H, W]");
  cuda::Context& c = *ctx_;
  const Tensor f1 = c.input(f1_in), f2 = c.input(f2_in);
  const int64_t n = f1.size(0), ch = f1.size(1), hw = f1.size(2) * f1.size(3);
  Tensor out = c.empty({n * hw, 1, f1.size(2), f1.size(3)});
  if (out.numel() == 0) return out;
  // Row-major out[b] [hw, hw] = fmap1[b]^T fmap2[b]; column-major: out^T = fmap2^T fmap1.
  const float one = 1.f, zero = 0.f;
  cuda::check(cublasSgemmStridedBatched(c.cublas, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(hw),
                                        static_cast<int>(hw), static_cast<int>(ch), &one,
                                        f2.raw_data(), static_cast<int>(hw), ch * hw,
                                        f1.raw_data(), static_cast<int>(hw), ch * hw, &zero,
                                        out.raw_data(), static_cast<int>(hw), hw * hw,
                                        static_cast<int>(n)),
              "correlation_volume (cublasSgemmStridedBatched)");
  const int64_t total = out.numel();
  SDVSR_LAUNCH(divide_kernel, blocks_for(total), kThreads, c.stream)(
      out.raw_data(), total, std::sqrt(static_cast<float>(ch)));
  cuda::check_launch("correlation_volume");
  return out;
}

Tensor CudaBackend::raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords_in,
                                     int radius) {
  check_coords(coords_in, "raft_corr_lookup");
  const int64_t N = coords_in.size(0), h = coords_in.size(2), w = coords_in.size(3);
  const int64_t P = N * h * w, side = 2 * radius + 1;
  cuda::require(pyramid.size() <= kMaxLevels, "raft_corr_lookup", "more than 8 levels");
  cuda::Context& c = *ctx_;
  std::vector<Tensor> levels;
  for (const Tensor& level : pyramid) {
    cuda::require(level.dim() == 4 && level.size(0) == P && level.size(1) == 1, "raft_corr_lookup",
                  "pyramid level " + shape_str(level.shape()) + " does not match " +
                      std::to_string(P) + " positions");
    levels.push_back(c.input(level));
  }
  const Tensor coords = c.input(coords_in);
  const int64_t L = static_cast<int64_t>(levels.size());
  Tensor out = c.empty({N, L * side * side, h, w});
  if (P == 0 || L == 0) return out;
  SDVSR_LAUNCH(lookup_kernel, blocks_for(P), kThreads, c.stream)(
      levels_of(levels, false), coords.raw_data(), out.raw_data(), N, h * w, radius);
  cuda::check_launch("raft_corr_lookup");
  return out;
}

Tensor CudaBackend::raft_corr_lookup_direct(const Tensor& fmap1_in,
                                            const std::vector<Tensor>& fmap2_levels,
                                            const Tensor& coords_in, int radius) {
  check_coords(coords_in, "raft_corr_lookup_direct");
  const int64_t N = coords_in.size(0), h = coords_in.size(2), w = coords_in.size(3);
  cuda::require(fmap1_in.dim() == 4 && fmap1_in.size(0) == N && fmap1_in.size(1) == h &&
                    fmap1_in.size(2) == w,
                "raft_corr_lookup_direct",
                "fmap1 " + shape_str(fmap1_in.shape()) + " is not [N, h, w, C] for coords " +
                    shape_str(coords_in.shape()));
  const int64_t C = fmap1_in.size(3);
  cuda::require(fmap2_levels.size() <= kMaxLevels, "raft_corr_lookup_direct", "more than 8 levels");
  cuda::Context& c = *ctx_;
  std::vector<Tensor> levels;
  for (const Tensor& f : fmap2_levels) {
    cuda::require(f.dim() == 4 && f.size(0) == N && f.size(3) == C, "raft_corr_lookup_direct",
                  "fmap2 level " + shape_str(f.shape()) + " is not [N, h_l, w_l, " +
                      std::to_string(C) + "]");
    levels.push_back(c.input(f));
  }
  const Tensor fmap1 = c.input(fmap1_in), coords = c.input(coords_in);
  const int64_t side = 2 * radius + 1, L = static_cast<int64_t>(levels.size()), P = N * h * w;
  Tensor out = c.empty({N, L * side * side, h, w});
  if (P == 0 || L == 0) return out;
  SDVSR_LAUNCH(lookup_direct_kernel, blocks_for(P), kThreads, c.stream)(
      levels_of(levels, true), fmap1.raw_data(), coords.raw_data(), out.raw_data(), N, h * w, C,
      radius, std::sqrt(static_cast<float>(C)));
  cuda::check_launch("raft_corr_lookup_direct");
  return out;
}

Tensor CudaBackend::raft_convex_upsample(const Tensor& flow_in, const Tensor& mask_in,
                                         int factor) {
  cuda::require(flow_in.dim() == 4 && flow_in.size(1) == 2, "raft_convex_upsample",
                "flow must be [N, 2, h, w], got " + shape_str(flow_in.shape()));
  const int64_t N = flow_in.size(0), h = flow_in.size(2), w = flow_in.size(3);
  const int64_t f = factor, ff = f * f;
  cuda::require(mask_in.dim() == 4 && mask_in.size(0) == N && mask_in.size(1) == 9 * ff &&
                    mask_in.size(2) == h && mask_in.size(3) == w,
                "raft_convex_upsample",
                "mask " + shape_str(mask_in.shape()) + " does not match flow " +
                    shape_str(flow_in.shape()));
  cuda::Context& c = *ctx_;
  const Tensor flow = c.input(flow_in), mask = c.input(mask_in);
  Tensor out = c.empty({N, 2, h * f, w * f});
  const int64_t total = N * h * f * w * f;
  if (total == 0) return out;
  SDVSR_LAUNCH(convex_upsample_kernel, blocks_for(total), kThreads, c.stream)(
      flow.raw_data(), mask.raw_data(), out.raw_data(), N, h, w, f);
  cuda::check_launch("raft_convex_upsample");
  return out;
}

}  // namespace sdvsr
