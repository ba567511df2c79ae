#include "pipeline/bicubic_upscale.h"

#include <stdexcept>

namespace sdvsr {

Tensor bicubic_upscale(Backend& backend, const Tensor& x) {
  if (x.dim() != 4)
    throw std::runtime_error("bicubic_upscale: x " + shape_str(x.shape()) +
                             " must be [N, C, H, W]");
  return backend.upsample_bicubic(x, 4 * x.size(2), 4 * x.size(3), /*align_corners=*/false);
}

}  // namespace sdvsr
