#pragma once
// safetensors files: read through mmap (F32 zero-copy; F16/BF16 converted to
// float32 once), write for tools, caches and tests.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr {

enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data section
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws std::runtime_error naming the file and problem.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return infos_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // As float32: F32 borrowed from the mapping; other float dtypes converted,
  // integer dtypes converted too (for small golden tensors).
  Tensor tensor(const std::string& name) const;
  // Integer tensors (golden timesteps) as int64.
  std::vector<int64_t> int64_values(const std::string& name) const;
  const uint8_t* raw(const std::string& name) const;

  // Tells the kernel the mapped bytes of `name` are no longer needed (after conversion).
  void release_pages(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::weak_ptr<SafetensorsFile> self_;
};

// Writes float32 tensors (sorted by name) to `path` atomically (temp file + rename).
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace sdvsr
