// RAFT's all-pairs correlation volume.
#include <stdexcept>

#include "runtime/cpu/cpu_backend.h"

namespace sdvsr {

Tensor CpuBackend::correlation_volume(const Tensor&, const Tensor&) {
  throw std::logic_error("not implemented yet");
}

}  // namespace sdvsr
