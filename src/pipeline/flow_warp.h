#pragma once
// Backward warp of the previous output by the optical flow, exactly as the
// original util/flow_utils.flow_warp(x, flow, interp_mode, padding_mode='zeros',
// align_corners=False) does it, including its half-pixel quirk: the grid is
// normalised with (W-1) but sampled with align_corners=False, so even a zero
// flow is not the identity (spec/warp-and-resample.md section 4).
#include "runtime/backend.h"

namespace sdvsr {

// x [N, C, H, W]; flow in pixels, [N, H, W, 2] with (dx, dy) last, or [N, 2, H, W]
// (detected like the original: 4-D with dim 1 == 2). Zero padding outside.
Tensor flow_warp(Backend& backend, const Tensor& x, const Tensor& flow,
                 GridSampleMode mode = GridSampleMode::kBilinear);

}  // namespace sdvsr
