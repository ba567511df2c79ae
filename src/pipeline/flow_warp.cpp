#include "pipeline/flow_warp.h"

#include <algorithm>
#include <stdexcept>

namespace sdvsr {

Tensor flow_warp(Backend& backend, const Tensor& x, const Tensor& flow, GridSampleMode mode) {
  if (x.dim() != 4 || flow.dim() != 4)
    throw std::runtime_error("flow_warp: x " + shape_str(x.shape()) + " and flow " +
                             shape_str(flow.shape()) + " must be 4-D");
  // The original permutes an [N, 2, H, W] flow to [N, H, W, 2].
  // The grid is built on the host (it is small next to the image it samples).
  const Tensor nhwc =
      backend.to_host(flow.size(1) == 2 ? backend.permute(flow, {0, 2, 3, 1}) : flow);
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (nhwc.size(0) != n || nhwc.size(1) != h || nhwc.size(2) != w || nhwc.size(3) != 2)
    throw std::runtime_error("flow_warp: flow " + shape_str(flow.shape()) +
                             " does not match x " + shape_str(x.shape()));
  // grid = (column, row) + flow, then 2 * v / max(size - 1, 1) - 1, all in float32.
  const float wd = static_cast<float>(std::max<int64_t>(w - 1, 1));
  const float hd = static_cast<float>(std::max<int64_t>(h - 1, 1));
  Tensor grid = Tensor::uninitialized({n, h, w, 2});
  const float* f = nhwc.data();
  float* g = grid.data();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xi = 0; xi < w; ++xi) {
        const int64_t i = ((b * h + y) * w + xi) * 2;
        const float vx = static_cast<float>(xi) + f[i];
        const float vy = static_cast<float>(y) + f[i + 1];
        g[i] = 2.f * vx / wd - 1.f;
        g[i + 1] = 2.f * vy / hd - 1.f;
      }
  return backend.grid_sample(x, grid, mode, /*align_corners=*/false);
}

}  // namespace sdvsr
