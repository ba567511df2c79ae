#pragma once
// A dense, contiguous float32 tensor with shared storage.
// Storage is either owned (allocated here) or borrowed from something that
// outlives it (a memory-mapped weight file), kept alive by `owner_`.
// A tensor lives on a device: host code reads and writes only kCpu tensors
// (data() throws on any other); a backend moves data with to_host()/to_device().
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdvsr {

using Shape = std::vector<int64_t>;

// Where a tensor's storage lives. kCuda storage is device memory a backend owns.
enum class Device { kCpu, kCuda };
const char* device_name(Device d);

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor of the given shape.
  explicit Tensor(Shape shape);
  static Tensor zeros(Shape shape) { return Tensor(std::move(shape)); }
  static Tensor uninitialized(Shape shape);
  static Tensor full(Shape shape, float value);
  static Tensor from_vector(Shape shape, const std::vector<float>& values);
  // Wraps memory owned by `owner` without copying.
  static Tensor borrow(Shape shape, const float* data, std::shared_ptr<const void> owner);
  // Wraps storage on `device` (for backends: device memory they allocated, freed
  // by `owner`). The tensor is read-only through data() like a borrowed one.
  static Tensor wrap(Device device, Shape shape, float* data, std::shared_ptr<const void> owner);

  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  // Negative indices count from the end, like PyTorch.
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0 && shape_.empty(); }
  bool defined() const { return data_ != nullptr || !shape_.empty(); }

  Device device() const { return device_; }
  bool is_host() const { return device_ == Device::kCpu; }

  // Host data. Throws std::logic_error on a tensor that is not on the CPU.
  float* data();  // Copy-on-write is not done: borrowed tensors are read-only.
  const float* data() const {
    if (device_ != Device::kCpu) throw_not_host();
    return data_;
  }
  float operator[](int64_t i) const { return data()[i]; }
  // The storage address on whatever device, for backends that own that device
  // (kernel arguments, copies). Host code uses data().
  float* raw_data() const { return data_; }
  // The storage address as an identity key only (caches, "same tensor?" checks);
  // never dereference it. Safe on every device.
  const void* storage_ptr() const { return data_; }

  // Same storage, new shape (numel must match).
  Tensor reshape(Shape shape) const;
  // Indices [begin, end) of dimension 0: the same storage at an offset (no
  // copy, on any device), writable or frozen as this tensor is.
  Tensor rows(int64_t begin, int64_t end) const;
  Tensor clone() const;  // host tensors only
  std::vector<float> to_vector() const;  // host tensors only
  bool is_borrowed() const { return borrowed_; }
  // The same storage, read-only through the returned tensor like a borrowed
  // one. Model weights are handed out frozen (WeightStore::get), which is what
  // lets a backend keep derived copies (a device upload, a 16-bit conversion)
  // for as long as the storage lives, whether it was mapped from a file or
  // converted into memory at load.
  Tensor frozen() const;
  // Writable host storage that no other tensor (copy, reshape) shares: what a
  // backend checks before computing into a tensor its caller gave up.
  bool is_sole_writable_host_copy() const {
    return device_ == Device::kCpu && !borrowed_ && data_ && owner_.use_count() == 1;
  }
  // The object that keeps this tensor's storage alive, for caches keyed on
  // storage identity (derived data such as reordered weights): the weak_ptr
  // expires when the storage is freed, and while it is held no new storage can
  // share its control block, so a new buffer at a recycled address is never
  // taken for the old one. Empty for a default-constructed tensor.
  std::weak_ptr<const void> storage_owner() const { return owner_; }

 private:
  [[noreturn]] void throw_not_host() const;

  Shape shape_;
  int64_t numel_ = 0;
  float* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  bool borrowed_ = false;
  Device device_ = Device::kCpu;
};

}  // namespace sdvsr
