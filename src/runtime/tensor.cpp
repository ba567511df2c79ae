#include "runtime/tensor.h"

#include <cstring>
#include <sstream>
#include <stdexcept>

#include "runtime/host_blocks.h"

namespace sdvsr {

const char* device_name(Device d) {
  switch (d) {
    case Device::kCpu: return "cpu";
    case Device::kCuda: return "cuda";
  }
  return "unknown";
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

namespace {
// 64-byte aligned storage so oneDNN and vector loops see aligned rows; large
// blocks are reused from frame to frame (see host_blocks.h).
std::shared_ptr<float> allocate(int64_t n) {
  const size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(float);
  return std::static_pointer_cast<float>(host_blocks::allocate(bytes));
}
}  // namespace

Tensor Tensor::uninitialized(Shape shape) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  auto storage = allocate(t.numel_);
  t.data_ = storage.get();
  t.owner_ = storage;
  return t;
}

Tensor::Tensor(Shape shape) {
  *this = uninitialized(std::move(shape));
  std::memset(data_, 0, static_cast<size_t>(numel_) * sizeof(float));
}

Tensor Tensor::full(Shape shape, float value) {
  Tensor t = uninitialized(std::move(shape));
  for (int64_t i = 0; i < t.numel_; ++i) t.data_[i] = value;
  return t;
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values) {
  Tensor t = uninitialized(std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel_)
    throw std::invalid_argument("from_vector: " + std::to_string(values.size()) +
                                " values for shape " + shape_str(t.shape_));
  std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::borrow(Shape shape, const float* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.data_ = const_cast<float*>(data);
  t.owner_ = std::move(owner);
  t.borrowed_ = true;
  return t;
}

Tensor Tensor::wrap(Device device, Shape shape, float* data, std::shared_ptr<const void> owner) {
  Tensor t = borrow(std::move(shape), data, std::move(owner));
  t.device_ = device;
  return t;
}

Tensor Tensor::frozen() const {
  Tensor t = *this;
  t.borrowed_ = true;
  return t;
}

void Tensor::throw_not_host() const {
  throw std::logic_error("host access to a tensor on " + std::string(device_name(device_)) +
                         " " + shape_str(shape_) + ": copy it with Backend::to_host() first");
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n)
    throw std::out_of_range("dimension " + std::to_string(d) + " of shape " + shape_str(shape_));
  return shape_[static_cast<size_t>(d)];
}

float* Tensor::data() {
  if (device_ != Device::kCpu) throw_not_host();
  if (borrowed_) throw std::logic_error("write access to a borrowed (read-only) tensor");
  return data_;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel_)
    throw std::invalid_argument("reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  if (shape_.empty() || begin < 0 || begin > end || end > shape_[0])
    throw std::invalid_argument("rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") of " + shape_str(shape_));
  const int64_t row = shape_[0] > 0 ? numel_ / shape_[0] : 0;
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.data_ = data_ ? data_ + begin * row : nullptr;
  return t;
}

Tensor Tensor::clone() const {
  const float* src = data();  // host only
  Tensor t = uninitialized(shape_);
  if (numel_) std::memcpy(t.data_, src, static_cast<size_t>(numel_) * sizeof(float));
  return t;
}

std::vector<float> Tensor::to_vector() const {
  const float* p = data();  // host only
  return std::vector<float>(p, p + numel_);
}

}  // namespace sdvsr
