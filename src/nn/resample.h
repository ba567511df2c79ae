#pragma once
// diffusers Downsample2D (use_conv) and Upsample2D (nearest + conv).
#include "nn/layers.h"

namespace sdvsr::nn {

class Downsample2D {
 public:
  // padding = the U-Net's downsample_padding; 0 means "pad right/bottom by one, then conv".
  Downsample2D(const WeightScope& w, Backend& be, int64_t channels, int padding);
  Tensor forward(const Tensor& x) const;  // [N, C, H, W] -> [N, C, ceil-ish H/2, W/2]

 private:
  Backend* be_;
  int padding_;
  Conv2d conv_;
};

class Upsample2D {
 public:
  Upsample2D(const WeightScope& w, Backend& be, int64_t channels);
  // Nearest resize to (out_h, out_w) (PyTorch's legacy 'nearest' index rule), then 3x3 conv.
  Tensor forward(const Tensor& x, int64_t out_h, int64_t out_w) const;

 private:
  Backend* be_;
  Conv2d conv_;
};

}  // namespace sdvsr::nn
