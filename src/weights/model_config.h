#pragma once
// A diffusers/transformers config.json. Lookups name the file and the key on error.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sdvsr {

class ModelConfig {
 public:
  static ModelConfig load(const std::string& path);
  static ModelConfig from_json(nlohmann::json j, std::string origin);

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return json_; }
  // True when the key is present and not null.
  bool has(const std::string& key) const;

  // Typed reads: the default applies when the key is absent or null (diffusers'
  // behaviour); a value of the wrong type throws naming file and key.
  int64_t get_int(const std::string& key, int64_t def) const;
  int64_t get_int(const std::string& key) const;  // required
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  std::optional<std::string> get_optional_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;  // required
  std::vector<std::string> get_string_list(const std::string& key) const;  // required
  // An int broadcast to `n` entries, or a list of exactly `n` ints.
  std::vector<int64_t> get_int_or_list(const std::string& key, size_t n, int64_t def) const;
  std::vector<bool> get_bool_or_list(const std::string& key, size_t n, bool def) const;
  std::vector<double> get_float_list(const std::string& key) const;

  // A std::runtime_error whose message starts with the file and key.
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

 private:
  std::string path_;
  nlohmann::json json_;
};

}  // namespace sdvsr
