#pragma once
// A dense, contiguous float32 tensor with shared storage.
// Storage is either owned (allocated here) or borrowed from something that
// outlives it (a memory-mapped weight file), kept alive by `owner_`.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdvsr {

using Shape = std::vector<int64_t>;

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

  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  // Negative indices count from the end, like PyTorch.
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0 && shape_.empty(); }
  bool defined() const { return data_ != nullptr || !shape_.empty(); }

  float* data();  // Copy-on-write is not done: borrowed tensors are read-only.
  const float* data() const { return data_; }
  float operator[](int64_t i) const { return data_[i]; }

  // Same storage, new shape (numel must match).
  Tensor reshape(Shape shape) const;
  Tensor clone() const;
  std::vector<float> to_vector() const;
  bool is_borrowed() const { return borrowed_; }
  // The object that keeps this tensor's storage alive, for caches keyed on
  // storage identity (derived data such as reordered weights): the weak_ptr
  // expires when the storage is freed, and while it is held no new storage can
  // share its control block, so a new buffer at a recycled address is never
  // taken for the old one. Empty for a default-constructed tensor.
  std::weak_ptr<const void> storage_owner() const { return owner_; }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  float* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  bool borrowed_ = false;
};

}  // namespace sdvsr
