#include "runtime/backend.h"

#include <cstring>

namespace sdvsr {

void Backend::copy_into(const Tensor& dst, const Tensor& src) {
  if (!dst.is_host() || !src.is_host())
    throw std::logic_error(name() + ": copy_into between " + device_name(src.device()) + " and " +
                           device_name(dst.device()) + " storage is not implemented");
  if (dst.is_borrowed())
    throw std::logic_error(name() + ": copy_into a read-only tensor");
  if (dst.numel() != src.numel())
    throw std::invalid_argument(name() + ": copy_into " + shape_str(dst.shape()) + " from " +
                                shape_str(src.shape()) + " (element counts differ)");
  if (src.numel() > 0)
    std::memcpy(dst.raw_data(), src.data(), static_cast<size_t>(src.numel()) * sizeof(float));
}

}  // namespace sdvsr
