#include "models/raft_corr.h"

#include <stdexcept>

#include "runtime/cpu/cpu_raft_lookup.h"

namespace sdvsr::raft {

CorrPyramid::CorrPyramid(Backend& be, const Tensor& fmap1, const Tensor& fmap2, int levels,
                         int radius)
    : radius_(radius) {
  if (fmap1.shape() != fmap2.shape())
    throw std::runtime_error("RAFT: feature maps differ in shape: " + shape_str(fmap1.shape()) +
                             " vs " + shape_str(fmap2.shape()));
  Tensor corr = be.correlation_volume(fmap1, fmap2);
  levels_.push_back(corr);
  for (int l = 1; l < levels; ++l) {
    const int64_t h = corr.size(2) / 2, w = corr.size(3) / 2;
    if (h < 1 || w < 1)
      throw std::runtime_error("RAFT: correlation level " + std::to_string(l) + " would be " +
                               std::to_string(h) + "x" + std::to_string(w) +
                               " (feature map " + std::to_string(fmap1.size(2)) + "x" +
                               std::to_string(fmap1.size(3)) +
                               "); torchvision's avg_pool2d rejects it: input at least 64x64 px");
    corr = be.avg_pool2d(corr, 2, 2);
    levels_.push_back(corr);
  }
}

Tensor CorrPyramid::lookup(const Tensor& coords) const {
  // No Backend op for this gather yet: the CPU loop (runtime/cpu/cpu_raft_lookup.cpp).
  return cpu::raft_corr_lookup(levels_, coords, radius_);
}

}  // namespace sdvsr::raft
