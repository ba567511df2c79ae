#include "capi/stream_state_file.h"

#include <filesystem>
#include <map>
#include <memory>

#include "capi/capi_internal.h"
#include "weights/safetensors.h"

namespace sdvsr::capi {

namespace {

constexpr const char* kFormatKey = "sdvsr_stream_state";
constexpr const char* kFormatVersion = "1";

[[noreturn]] void not_a_state(const std::string& path, const std::string& problem) {
  fail(SDVSR_ERROR_INVALID_ARGUMENT, path + ": not a usable sdvsr stream state (" + problem + ")");
}

int64_t number(const std::string& path, const std::map<std::string, std::string>& meta,
               const char* key) {
  const auto it = meta.find(key);
  if (it == meta.end()) not_a_state(path, std::string("no '") + key + "' in its metadata");
  try {
    size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    if (used != it->second.size() || v < 0) throw std::invalid_argument(key);
    return v;
  } catch (const std::exception&) {
    not_a_state(path, std::string("'") + key + "' is '" + it->second + "'");
  }
}

}  // namespace

void save_stream_state(const std::string& path, const SavedStream& saved) {
  std::map<std::string, Tensor> tensors;
  if (saved.state.index > 0) {
    tensors["prev_upscaled"] = saved.state.prev_upscaled;
    tensors["prev_decoded"] = saved.state.prev_decoded;
  }
  const std::map<std::string, std::string> meta{
      {kFormatKey, kFormatVersion},
      {"index", std::to_string(saved.state.index)},
      {"seed", std::to_string(saved.seed)},
      {"num_inference_steps", std::to_string(saved.num_inference_steps)},
      {"width", std::to_string(saved.width)},
      {"height", std::to_string(saved.height)}};
  save_safetensors(path, tensors, meta);
}

SavedStream load_stream_state(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail(SDVSR_ERROR_IO, path + ": stream state file not found");
  std::shared_ptr<SafetensorsFile> file;
  try {
    file = SafetensorsFile::open(path);
  } catch (const std::exception& e) {
    fail(SDVSR_ERROR_IO, e.what());
  }
  const auto& meta = file->metadata();
  const auto format = meta.find(kFormatKey);
  if (format == meta.end()) not_a_state(path, "no sdvsr_stream_state metadata");
  if (format->second != kFormatVersion)
    not_a_state(path, "format version " + format->second + ", this library reads " + kFormatVersion);

  SavedStream saved;
  const std::string seed_text = meta.count("seed") ? meta.at("seed") : std::string();
  try {
    size_t used = 0;
    saved.seed = std::stoull(seed_text, &used);
    if (used != seed_text.size()) throw std::invalid_argument("seed");
  } catch (const std::exception&) {
    not_a_state(path, "'seed' is '" + seed_text + "'");
  }
  saved.state.index = number(path, meta, "index");
  saved.num_inference_steps = static_cast<int>(number(path, meta, "num_inference_steps"));
  saved.width = static_cast<int>(number(path, meta, "width"));
  saved.height = static_cast<int>(number(path, meta, "height"));
  if (saved.state.index == 0) return saved;

  for (const char* name : {"prev_upscaled", "prev_decoded"})
    if (!file->has(name)) not_a_state(path, std::string("no tensor '") + name + "'");
  // Copies: the file's mapping goes away with `file`.
  saved.state.prev_upscaled = file->tensor("prev_upscaled").clone();
  saved.state.prev_decoded = file->tensor("prev_decoded").clone();
  const Shape& up = saved.state.prev_upscaled.shape();
  if (up.size() != 4 || up[0] != 1 || up[1] != 3)
    not_a_state(path, "prev_upscaled has shape " + shape_str(up));
  if (saved.state.prev_decoded.shape() != up)
    not_a_state(path, "prev_decoded has shape " + shape_str(saved.state.prev_decoded.shape()) +
                          ", prev_upscaled " + shape_str(up));
  if (saved.width <= 0 || saved.height <= 0 || up[2] < 4 * saved.height || up[3] < 4 * saved.width)
    not_a_state(path, "frame size " + std::to_string(saved.width) + "x" +
                          std::to_string(saved.height) + " does not fit " + shape_str(up));
  return saved;
}

}  // namespace sdvsr::capi
