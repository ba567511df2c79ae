// sdvsr_tensor_file_read: reference tensors for parity tests written in C.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "capi/capi_internal.h"
#include "weights/safetensors.h"

using sdvsr::capi::fail;
using sdvsr::capi::guard;
using sdvsr::capi::require;

extern "C" {

sdvsr_status sdvsr_tensor_file_read(const char* path, const char* name, float* data,
                                    size_t capacity, int64_t shape[SDVSR_MAX_DIMS], int* ndim) {
  using namespace sdvsr;
  return guard("sdvsr_tensor_file_read", SDVSR_ERROR_IO, [&] {
    require(path, "path");
    require(name, "name");
    require(shape, "shape");
    require(ndim, "ndim");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      fail(SDVSR_ERROR_IO, std::string(path) + ": tensor file not found");
    std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open(path);
    if (!file->has(name)) fail(SDVSR_ERROR_IO, std::string(path) + ": no tensor '" + name + "'");
    const TensorInfo& info = file->info(name);
    if (info.shape.size() > SDVSR_MAX_DIMS)
      fail(SDVSR_ERROR_UNSUPPORTED, std::string(path) + ": tensor '" + name + "' has " +
                                        std::to_string(info.shape.size()) + " dimensions");
    const int64_t numel = shape_numel(info.shape);
    if (data) {
      if (capacity < static_cast<size_t>(numel))
        fail(SDVSR_ERROR_INVALID_ARGUMENT, std::string("capacity ") + std::to_string(capacity) +
                                               " < " + std::to_string(numel) + " values of '" +
                                               name + "' " + shape_str(info.shape));
      const Tensor t = file->tensor(name);
      std::copy_n(t.data(), numel, data);
    }
    std::copy(info.shape.begin(), info.shape.end(), shape);
    *ndim = static_cast<int>(info.shape.size());
  });
}

}  // extern "C"
