#pragma once
// The RAFT input: F.interpolate(lr, scale_factor=4, mode='bicubic'),
// align_corners False, not clamped (spec/warp-and-resample.md section 2).
#include "runtime/backend.h"

namespace sdvsr {

// x [N, C, H, W] -> [N, C, 4H, 4W].
Tensor bicubic_upscale(Backend& backend, const Tensor& x);

}  // namespace sdvsr
