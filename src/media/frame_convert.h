#pragma once
// Frames between 8-bit RGB images and NCHW float tensors, as the original
// pipeline converts them (diffusers 0.27.2 VaeImageProcessor + NumPy + PIL).
#include "media/image_io.h"
#include "runtime/tensor.h"

namespace sdvsr {

// [1, 3, H, W] float32 in [0, 1]: value / 255 (correctly rounded float32
// division, as NumPy's float32 true-divide). The pipeline's 2x-1 comes after.
Tensor image_to_tensor(const Image& image);

// Postprocessing of a decoded frame x ([1, 3, H, W], nominally [-1, 1]):
// v = x / 2 + 0.5 (float32, each op rounded), clamped to [0, 1], times 255
// in float32, rounded half to even (NumPy round), cast to uint8. NaN -> 0.
Image tensor_to_image(const Tensor& x);

}  // namespace sdvsr
