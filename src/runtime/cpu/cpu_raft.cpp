// RAFT's all-pairs correlation volume (torchvision CorrBlock): one sgemm per
// image pair, then the division by sqrt(C) as torch does it.
#include <cmath>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_raft_lookup.h"

namespace sdvsr {

Tensor CpuBackend::correlation_volume(const Tensor& fmap1, const Tensor& fmap2) {
  cpu::check(fmap1.dim() == 4 && fmap1.shape() == fmap2.shape(), "correlation_volume",
             "fmap1 " + shape_str(fmap1.shape()) + " and fmap2 " + shape_str(fmap2.shape()) +
                 " must be equal [N, C, H, W]");
  const int64_t n = fmap1.size(0), c = fmap1.size(1), h = fmap1.size(2), w = fmap1.size(3);
  const int64_t hw = h * w;
  Tensor out = Tensor::uninitialized({n * hw, 1, h, w});
  for (int64_t b = 0; b < n; ++b)  // [HW, C] x [C, HW]: fmap1^T fmap2
    cpu::sgemm(true, false, hw, hw, c, 1.f, fmap1.data() + b * c * hw, hw,
               fmap2.data() + b * c * hw, hw, 0.f, out.data() + b * hw * hw, hw,
               "correlation_volume");
  const float root = std::sqrt(static_cast<float>(c));
  float* o = out.data();
  const int64_t total = out.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) o[i] /= root;
  return out;
}

}  // namespace sdvsr

namespace sdvsr {

// The gathers themselves live in cpu_raft_lookup.cpp (plain loops on host memory).
Tensor CpuBackend::raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                                    int radius) {
  return cpu::raft_corr_lookup(pyramid, coords, radius);
}

Tensor CpuBackend::raft_corr_lookup_direct(const Tensor& fmap1_cl,
                                           const std::vector<Tensor>& fmap2_levels,
                                           const Tensor& coords, int radius) {
  return cpu::raft_corr_lookup_direct(fmap1_cl, fmap2_levels, coords, radius);
}

Tensor CpuBackend::raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) {
  return cpu::raft_convex_upsample(flow, mask, factor);
}

}  // namespace sdvsr
