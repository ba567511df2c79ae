#pragma once
// RAFT's all-pairs correlation pyramid and its windowed lookup.
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::raft {

class CorrPyramid {
 public:
  // fmap1, fmap2 [N, C, h, w]: level 0 = <fmap1[i], fmap2[j]> / sqrt(C) as [N*h*w, 1, h, w],
  // each further level a 2x2 average pool (floor) of the previous one. Throws where
  // torch's avg_pool2d would (a level with no rows or columns).
  CorrPyramid(Backend& be, const Tensor& fmap1, const Tensor& fmap2, int levels, int radius);
  // coords [N, 2, h, w] (x, y in level-0 pixels) -> [N, levels*(2r+1)^2, h, w]
  Tensor lookup(const Tensor& coords) const;
  const std::vector<Tensor>& levels() const { return levels_; }

 private:
  std::vector<Tensor> levels_;
  int radius_;
};

}  // namespace sdvsr::raft
