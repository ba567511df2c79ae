#include "media/frame_convert.h"

#include <cfenv>
#include <cmath>
#include <stdexcept>

namespace sdvsr {

Tensor image_to_tensor(const Image& image) {
  const int64_t h = image.height, w = image.width, plane = h * w;
  if (image.rgb.size() != static_cast<size_t>(plane * 3))
    throw std::runtime_error("image_to_tensor: image size " + std::to_string(w) + "x" + std::to_string(h) +
                             " does not match its " + std::to_string(image.rgb.size()) + " bytes");
  Tensor t = Tensor::uninitialized({1, 3, h, w});
  float* out = t.data();
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) out[c * plane + i] = static_cast<float>(image.rgb[i * 3 + c]) / 255.0f;
  return t;
}

namespace {
// One output sample, in the operation order of denormalize() then numpy_to_pil().
uint8_t to_u8(float x) {
  float v = x / 2.0f + 0.5f;
  if (std::isnan(v)) return 0;
  v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
  const float scaled = v * 255.0f;
  // nearbyint rounds half to even in the default rounding mode (as np.round).
  return static_cast<uint8_t>(std::nearbyint(scaled));
}
}  // namespace

Image tensor_to_image(const Tensor& x) {
  const Shape& s = x.shape();
  if (s.size() != 4 || s[0] != 1 || s[1] != 3)
    throw std::runtime_error("tensor_to_image: expected a [1, 3, H, W] tensor, got " + shape_str(s));
  if (std::fegetround() != FE_TONEAREST)
    throw std::runtime_error("tensor_to_image: floating-point rounding mode is not round-to-nearest");
  const int64_t h = s[2], w = s[3], plane = h * w;
  Image image;
  image.width = static_cast<int>(w);
  image.height = static_cast<int>(h);
  image.rgb.resize(static_cast<size_t>(plane * 3));
  const float* in = x.data();
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) image.rgb[i * 3 + c] = to_u8(in[c * plane + i]);
  return image;
}

}  // namespace sdvsr
