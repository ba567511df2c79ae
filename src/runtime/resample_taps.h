#pragma once
// PyTorch's index rules for interpolation (ATen UpSample.h and
// UpSampleKernel.cpp as of 1.13), computed on the host: per output index along
// one axis, the source indices and weights. Every backend's resampling reads
// them, so all backends sample the same places with the same weights.
#include <cstdint>
#include <vector>

namespace sdvsr::resample {

// The sizes-only form of PyTorch's scale: in / out in float.
float size_scale(int64_t in, int64_t out);
// area_pixel_compute_scale.
float linear_scale(int64_t in, int64_t out, bool align_corners);
// area_pixel_compute_source_index: the half-pixel form is evaluated in double
// (int + 0.5 promotes) and rounded to float once, as in ATen.
float source_index(float scale, int64_t dst, bool align_corners, bool cubic);
// nearest_idx.
int64_t nearest_index(int64_t dst, int64_t in, int64_t out);

// Per output index along one axis: `taps` source indices and weights.
struct AxisTaps {
  int taps = 0;
  std::vector<int64_t> index;  // [out * taps]
  std::vector<float> weight;   // [out * taps]
};

AxisTaps linear_taps(int64_t in, int64_t out, bool align_corners);
// Keys cubic convolution (A = -0.75) with border-clamped taps.
AxisTaps cubic_taps(int64_t in, int64_t out, bool align_corners);

}  // namespace sdvsr::resample
