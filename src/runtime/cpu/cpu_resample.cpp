// Resampling with PyTorch's exact index rules.
#include <stdexcept>

#include "runtime/cpu/cpu_backend.h"

namespace sdvsr {

Tensor CpuBackend::upsample_nearest(const Tensor&, int64_t, int64_t) {
  throw std::logic_error("not implemented yet");
}
Tensor CpuBackend::upsample_bilinear(const Tensor&, int64_t, int64_t, bool) {
  throw std::logic_error("not implemented yet");
}
Tensor CpuBackend::upsample_bicubic(const Tensor&, int64_t, int64_t, bool) {
  throw std::logic_error("not implemented yet");
}
Tensor CpuBackend::grid_sample(const Tensor&, const Tensor&, GridSampleMode, bool) {
  throw std::logic_error("not implemented yet");
}
Tensor CpuBackend::avg_pool2d(const Tensor&, int, int) {
  throw std::logic_error("not implemented yet");
}

}  // namespace sdvsr
