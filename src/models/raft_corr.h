#pragma once
// RAFT's all-pairs correlation pyramid and its windowed lookup, either
// materialised as torchvision does or computed on the fly for large frames.
#include <cstdint>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::raft {

class CorrPyramid {
 public:
  // fmap1, fmap2 [N, C, h, w]. Level 0 = <fmap1[i], fmap2[j]> / sqrt(C) as [N*h*w, 1, h, w],
  // each further level a 2x2 average pool (floor) of the previous one. When level 0
  // would exceed `max_volume_bytes`, nothing is materialised: fmap2 is pooled instead
  // and the needed correlations are computed at lookup time (same math, different
  // summation order; memory O(h*w*C) instead of O((h*w)^2)). Throws where torch's
  // avg_pool2d would (a level with no rows or columns).
  CorrPyramid(Backend& be, const Tensor& fmap1, const Tensor& fmap2, int levels, int radius,
              int64_t max_volume_bytes);
  // coords [N, 2, h, w] (x, y in level-0 pixels) -> [N, levels*(2r+1)^2, h, w]
  Tensor lookup(const Tensor& coords) const;
  bool materialised() const { return !volume_.empty(); }

 private:
  Backend& be_;
  std::vector<Tensor> volume_;        // materialised: correlation levels
  Tensor fmap1_cl_;                   // on the fly: fmap1 channels-last [N, h, w, C]
  std::vector<Tensor> fmap2_levels_;  // on the fly: pooled fmap2, channels-last
  int radius_;
};

}  // namespace sdvsr::raft
