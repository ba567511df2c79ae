#include "weights/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sdvsr {

namespace {
const char* type_name(const nlohmann::json& v) { return v.type_name(); }

bool whole_number(const nlohmann::json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15;
}

int64_t as_int(const nlohmann::json& v) {
  return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}
}  // namespace

ModelConfig ModelConfig::load(const std::string& path) {
  // A device, a FIFO or a huge file would be read without end: configs are
  // small regular files.
  constexpr std::uintmax_t kMaxConfigBytes = 16u << 20;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw std::runtime_error(path + ": cannot open config file");
  if (!std::filesystem::is_regular_file(status))
    throw std::runtime_error(path + ": config is not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxConfigBytes)
    throw std::runtime_error(path + ": config file is " + std::to_string(size) +
                             " bytes, more than the 16 MiB a config may have");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw std::runtime_error(path + ": config is not a JSON object");
  return from_json(std::move(j), path);
}

ModelConfig ModelConfig::from_json(nlohmann::json j, std::string origin) {
  if (!j.is_object()) throw std::runtime_error(origin + ": config is not a JSON object");
  ModelConfig c;
  c.json_ = std::move(j);
  c.path_ = std::move(origin);
  return c;
}

bool ModelConfig::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

void ModelConfig::fail(const std::string& key, const std::string& problem) const {
  throw std::runtime_error(path_ + ": key '" + key + "' " + problem);
}

int64_t ModelConfig::get_int(const std::string& key, int64_t def) const {
  if (!has(key)) return def;
  return get_int(key);
}

int64_t ModelConfig::get_int(const std::string& key) const {
  if (!has(key)) fail(key, "is required but missing");
  const auto& v = json_.at(key);
  if (!whole_number(v)) fail(key, std::string("should be an integer, got ") + type_name(v));
  return as_int(v);
}

double ModelConfig::get_float(const std::string& key, double def) const {
  if (!has(key)) return def;
  const auto& v = json_.at(key);
  if (!v.is_number()) fail(key, std::string("should be a number, got ") + type_name(v));
  return v.get<double>();
}

bool ModelConfig::get_bool(const std::string& key, bool def) const {
  if (!has(key)) return def;
  const auto& v = json_.at(key);
  if (!v.is_boolean()) fail(key, std::string("should be a boolean, got ") + type_name(v));
  return v.get<bool>();
}

std::string ModelConfig::get_string(const std::string& key, const std::string& def) const {
  if (!has(key)) return def;
  const auto& v = json_.at(key);
  if (!v.is_string()) fail(key, std::string("should be a string, got ") + type_name(v));
  return v.get<std::string>();
}

std::optional<std::string> ModelConfig::get_optional_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key, "");
}

std::vector<int64_t> ModelConfig::get_int_list(const std::string& key) const {
  if (!has(key)) fail(key, "is required but missing");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, std::string("should be a list of integers, got ") + type_name(v));
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!whole_number(e)) fail(key, std::string("should hold integers, found ") + type_name(e));
    out.push_back(as_int(e));
  }
  return out;
}

std::vector<std::string> ModelConfig::get_string_list(const std::string& key) const {
  if (!has(key)) fail(key, "is required but missing");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, std::string("should be a list of strings, got ") + type_name(v));
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) fail(key, std::string("should hold strings, found ") + type_name(e));
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<double> ModelConfig::get_float_list(const std::string& key) const {
  if (!has(key)) fail(key, "is required but missing");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, std::string("should be a list of numbers, got ") + type_name(v));
  std::vector<double> out;
  for (const auto& e : v) {
    if (!e.is_number()) fail(key, std::string("should hold numbers, found ") + type_name(e));
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<int64_t> ModelConfig::get_int_or_list(const std::string& key, size_t n,
                                                  int64_t def) const {
  if (!has(key)) return std::vector<int64_t>(n, def);
  const auto& v = json_.at(key);
  if (!v.is_array()) return std::vector<int64_t>(n, get_int(key));
  std::vector<int64_t> out = get_int_list(key);
  if (out.size() != n)
    fail(key, "has " + std::to_string(out.size()) + " entries but " + std::to_string(n) +
                  " are needed");
  return out;
}

std::vector<bool> ModelConfig::get_bool_or_list(const std::string& key, size_t n, bool def) const {
  if (!has(key)) return std::vector<bool>(n, def);
  const auto& v = json_.at(key);
  if (!v.is_array()) return std::vector<bool>(n, get_bool(key, def));
  if (v.size() != n)
    fail(key, "has " + std::to_string(v.size()) + " entries but " + std::to_string(n) +
                  " are needed");
  std::vector<bool> out;
  for (const auto& e : v) {
    if (!e.is_boolean()) fail(key, std::string("should hold booleans, found ") + type_name(e));
    out.push_back(e.get<bool>());
  }
  return out;
}

}  // namespace sdvsr
