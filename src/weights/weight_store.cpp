#include "weights/weight_store.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "weights/safetensors.h"

namespace sdvsr {

std::shared_ptr<WeightStore> WeightStore::from_safetensors(const std::string& path) {
  auto s = std::make_shared<WeightStore>();
  s->file_ = SafetensorsFile::open(path);
  s->source_ = path;
  return s;
}

std::shared_ptr<WeightStore> WeightStore::from_tensors(std::map<std::string, Tensor> tensors,
                                                       std::string source) {
  auto s = std::make_shared<WeightStore>();
  s->tensors_ = std::move(tensors);
  s->source_ = std::move(source);
  return s;
}

bool WeightStore::has(const std::string& key) const {
  return file_ ? file_->has(key) : tensors_.count(key) != 0;
}

Shape WeightStore::shape_of(const std::string& key) const {
  if (!has(key)) throw std::runtime_error(source_ + ": missing tensor '" + key + "'");
  return file_ ? file_->info(key).shape : tensors_.at(key).shape();
}

Tensor WeightStore::get(const std::string& key, const Shape& expected) {
  const Shape actual = shape_of(key);
  if (actual != expected)
    throw std::runtime_error(source_ + ": tensor '" + key + "' has shape " + shape_str(actual) +
                             " but the model expects " + shape_str(expected));
  used_.insert(key);
  // Frozen: weights are never written after loading, and backends key their
  // uploaded/converted copies on that (runtime/cuda: Context::input, reduced).
  return (file_ ? file_->tensor(key) : tensors_.at(key)).frozen();
}

std::vector<std::string> WeightStore::keys_with_prefix(const std::string& prefix) const {
  std::vector<std::string> out;
  if (file_) {
    for (const auto& info : file_->tensors())
      if (info.name.compare(0, prefix.size(), prefix) == 0) out.push_back(info.name);
    std::sort(out.begin(), out.end());
  } else {
    for (auto it = tensors_.lower_bound(prefix);
         it != tensors_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      out.push_back(it->first);
  }
  return out;
}

// Ignored keys count as used: finish() only reports keys nobody accounted for.
void WeightStore::ignore(const std::string& key) { used_.insert(key); }

void WeightStore::finish() const {
  std::vector<std::string> unused;
  auto check = [&](const std::string& key) {
    if (!used_.count(key)) unused.push_back(key);
  };
  if (file_) {
    for (const auto& info : file_->tensors()) check(info.name);
    std::sort(unused.begin(), unused.end());
  } else {
    for (const auto& [key, t] : tensors_) check(key);
  }
  if (unused.empty()) return;
  std::string msg = source_ + ": unexpected tensor '" + unused.front() + "'";
  if (unused.size() > 1) msg += " (and " + std::to_string(unused.size() - 1) + " more)";
  throw std::runtime_error(msg);
}

WeightScope WeightScope::sub(const std::string& name) const { return WeightScope(store_, key(name)); }

std::string WeightScope::key(const std::string& name) const {
  return prefix_.empty() ? name : prefix_ + "." + name;
}

Tensor WeightScope::get(const std::string& name, const Shape& expected) const {
  return store_->get(key(name), expected);
}

bool WeightScope::has(const std::string& name) const { return store_->has(key(name)); }

}  // namespace sdvsr
