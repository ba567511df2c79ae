#pragma once
// RAFT's two gather-style steps, written directly on the CPU (no Backend op
// exists for them yet): the correlation-pyramid lookup and the convex x8 flow
// upsampling. Both follow torchvision 0.14.1 / PyTorch 1.13 CPU float order.
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr::cpu {

// pyramid[l]: [N*h*w, 1, h_l, w_l] correlation maps; coords: [N, 2, h, w] centroids
// in level-0 pixels (channel 0 = x, 1 = y). Returns [N, L*(2r+1)^2, h, w] with
// channel l*(2r+1)^2 + a*(2r+1) + b sampling (x/2^l + a - r, y/2^l + b - r):
// torchvision's CorrBlock.index_pyramid, including its height-1 rule (y left
// unnormalised, so row 0 is read) and NaN for a width-1 level.
Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords, int radius);

// The same lookup without the materialised volume (exact in math: every step
// from the feature maps to the lookup is linear in fmap2). fmap1: [N, h, w, C]
// channels-last; fmap2_levels[l]: [N, h_l, w_l, C], fmap2 average-pooled 2x2 l
// times. Each needed correlation is the dot product <fmap1[i], fmap2_l[j]> / sqrt(C),
// computed for the at most (2r+2)^2 integer taps of a window; sampling positions
// and weights follow raft_corr_lookup exactly, only the summation order differs.
Tensor raft_corr_lookup_direct(const Tensor& fmap1, const std::vector<Tensor>& fmap2_levels,
                               const Tensor& coords, int radius);

// flow [N, 2, h, w], mask [N, 9*f*f, h, w] (already scaled) -> [N, 2, f*h, f*w]:
// softmax over the 9 neighbours, weights applied to f * flow's zero-padded 3x3
// neighbourhood (torchvision _utils.upsample_flow with up_mask, f = 8).
Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor);

}  // namespace sdvsr::cpu
