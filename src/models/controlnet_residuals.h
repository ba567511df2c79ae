#pragma once
// What the ControlNet hands the U-Net: one residual per U-Net skip connection
// (conv_in output, every down-stage output) and one for the mid block output.
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr {

struct ControlNetResiduals {
  std::vector<Tensor> down;
  Tensor mid;
};

}  // namespace sdvsr
