#pragma once
// A model's parameters, fetched by state-dict key with their expected shape.
// Every key must be used exactly as the model expects: missing, mis-shaped and
// (at finish()) unexpected tensors are errors naming the key and the file.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "runtime/tensor.h"

namespace sdvsr {

class SafetensorsFile;

class WeightStore {
 public:
  // One safetensors file.
  static std::shared_ptr<WeightStore> from_safetensors(const std::string& path);
  // Tensors already in memory (PyTorch checkpoints, tests); `source` names them in errors.
  static std::shared_ptr<WeightStore> from_tensors(std::map<std::string, Tensor> tensors,
                                                   std::string source);

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const;
  Shape shape_of(const std::string& key) const;
  // The tensor under `key`; throws naming key and both shapes if it differs.
  Tensor get(const std::string& key, const Shape& expected);
  // Keys whose name starts with `prefix` (for config-independent probing).
  std::vector<std::string> keys_with_prefix(const std::string& prefix) const;
  // Marks keys the model knowingly ignores (e.g. text_model.embeddings.position_ids).
  void ignore(const std::string& key);
  // Throws if any key was never fetched, naming the first few.
  void finish() const;

 private:
  std::string source_;
  std::shared_ptr<SafetensorsFile> file_;
  std::map<std::string, Tensor> tensors_;  // when not backed by a file
  std::set<std::string> used_;
};

// A view of a WeightStore under a key prefix: scope.sub("resnets").sub(0).get("conv1.weight", ...)
class WeightScope {
 public:
  WeightScope(std::shared_ptr<WeightStore> store, std::string prefix = "")
      : store_(std::move(store)), prefix_(std::move(prefix)) {}
  WeightScope sub(const std::string& name) const;
  WeightScope sub(int64_t index) const { return sub(std::to_string(index)); }
  Tensor get(const std::string& name, const Shape& expected) const;
  bool has(const std::string& name) const;
  std::string key(const std::string& name) const;
  WeightStore& store() const { return *store_; }

 private:
  std::shared_ptr<WeightStore> store_;
  std::string prefix_;
};

}  // namespace sdvsr
