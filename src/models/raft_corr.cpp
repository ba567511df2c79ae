#include "models/raft_corr.h"

#include <stdexcept>


namespace sdvsr::raft {

namespace {
void check_level_size(const Tensor& fmap, int level, int64_t h, int64_t w) {
  if (h < 1 || w < 1)
    throw std::runtime_error("RAFT: correlation level " + std::to_string(level) + " would be " +
                             std::to_string(h) + "x" + std::to_string(w) + " (feature map " +
                             std::to_string(fmap.size(2)) + "x" + std::to_string(fmap.size(3)) +
                             "); torchvision's avg_pool2d rejects it: input at least 64x64 px");
}
}  // namespace

CorrPyramid::CorrPyramid(Backend& be, const Tensor& fmap1, const Tensor& fmap2, int levels,
                         int radius, int64_t max_volume_bytes)
    : be_(be), radius_(radius) {
  if (fmap1.shape() != fmap2.shape())
    throw std::runtime_error("RAFT: feature maps differ in shape: " + shape_str(fmap1.shape()) +
                             " vs " + shape_str(fmap2.shape()));
  const int64_t N = fmap1.size(0), P = fmap1.size(2) * fmap1.size(3);
  const bool materialise = N * P * P * int64_t{sizeof(float)} <= max_volume_bytes;
  Tensor level = materialise ? be.correlation_volume(fmap1, fmap2) : fmap2;
  const std::vector<int> to_channels_last = {0, 2, 3, 1};
  auto keep = [&](const Tensor& t) {
    if (materialise) volume_.push_back(t);
    else fmap2_levels_.push_back(be.permute(t, to_channels_last));
  };
  keep(level);
  for (int l = 1; l < levels; ++l) {
    check_level_size(fmap1, l, level.size(2) / 2, level.size(3) / 2);
    level = be.avg_pool2d(level, 2, 2);
    keep(level);
  }
  if (!materialise) fmap1_cl_ = be.permute(fmap1, to_channels_last);
}

Tensor CorrPyramid::lookup(const Tensor& coords) const {
  if (materialised()) return be_.raft_corr_lookup(volume_, coords, radius_);
  return be_.raft_corr_lookup_direct(fmap1_cl_, fmap2_levels_, coords, radius_);
}

}  // namespace sdvsr::raft
