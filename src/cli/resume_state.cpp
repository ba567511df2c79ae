#include "cli/resume_state.h"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "cli/signals.h"
#include "pipeline/sha256.h"
#include "runtime/backend.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

constexpr const char* kFieldPrefix = "fingerprint.";

std::string canonical(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

// A folder's or file's identity without reading gigabytes of weights: its
// canonical path and the names and sizes of the files directly inside.
std::string files_digest(const std::string& path) {
  std::string listing = canonical(path) + "\n";
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::map<std::string, uintmax_t> files;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file(ec)) files[e.path().filename().string()] = e.file_size(ec);
    for (const auto& [name, size] : files) listing += name + " " + std::to_string(size) + "\n";
  } else {
    listing += std::to_string(fs::file_size(path, ec)) + "\n";
  }
  return sha256_hex(listing);
}

}  // namespace

Fingerprint run_fingerprint(const Options& o, const ModelPaths& m) {
  Fingerprint fp;
  fp["model folder"] = canonical(m.model_dir) + " " +
                       sha256_hex(files_digest(m.model_dir) + files_digest(m.unet_dir) +
                                  files_digest(m.controlnet_dir) + files_digest(m.vae_dir) +
                                  files_digest(m.raft_path));
  fp["steps"] = std::to_string(o.num_inference_steps);
  fp["seed"] = std::to_string(o.seed);
  fp["noise file"] = o.noise_file.empty() ? "none" : files_digest(o.noise_file);
  // Only where not float32, so that states written before --dtype still match.
  if (o.dtype != "float32") fp["compute dtype"] = compute_dtype_name(parse_compute_dtype(o.dtype));
  return fp;
}

Fingerprint sequence_fingerprint(Fingerprint fp, const std::vector<std::string>& frame_names) {
  std::string joined;
  for (const std::string& n : frame_names) joined += n + "\n";
  fp["input frames"] = std::to_string(frame_names.size()) + " " + sha256_hex(joined);
  return fp;
}

std::string fingerprint_difference(const Fingerprint& saved, const Fingerprint& now) {
  std::string diff;
  for (const auto& [field, value] : now) {
    if (field == kThreadsField) continue;
    const auto it = saved.find(field);
    if (it == saved.end() || it->second != value) diff += (diff.empty() ? "" : ", ") + field;
  }
  // A field only the saved run had (its --dtype, now float32).
  for (const auto& [field, value] : saved)
    if (field != kThreadsField && !now.count(field)) diff += (diff.empty() ? "" : ", ") + field;
  return diff;
}

std::string state_path(const std::string& out_dir) {
  return (fs::path(out_dir) / kStateFileName).string();
}

void save_state(const std::string& out_dir, const StreamState& state, const Fingerprint& fp) {
  if (state.index == 0) {
    remove_state(out_dir);
    return;
  }
  std::map<std::string, std::string> meta;
  meta["index"] = std::to_string(state.index);
  for (const auto& [field, value] : fp) meta[kFieldPrefix + field] = value;
  const std::string path = state_path(out_dir);
  // save_safetensors fills "<path>.tmp.<pid>" then renames it; an abort removes it.
  set_pending_temp(path + ".tmp." + std::to_string(::getpid()));
  save_safetensors(path, {{"prev_upscaled", state.prev_upscaled}, {"prev_decoded", state.prev_decoded}},
                   meta);
  set_pending_temp("");
}

std::optional<SavedState> load_state(const std::string& out_dir) {
  const std::string path = state_path(out_dir);
  if (!fs::exists(path)) return std::nullopt;
  const auto file = SafetensorsFile::open(path);
  const auto& meta = file->metadata();
  const auto index = meta.find("index");
  if (index == meta.end() || !file->has("prev_upscaled") || !file->has("prev_decoded"))
    throw std::runtime_error(path + ": not an sdvsr stream state (delete it to start over)");
  SavedState s;
  try {
    s.state.index = std::stoll(index->second);
  } catch (const std::exception&) {
    throw std::runtime_error(path + ": bad frame index '" + index->second + "'");
  }
  s.state.prev_upscaled = file->tensor("prev_upscaled").clone();
  s.state.prev_decoded = file->tensor("prev_decoded").clone();
  const std::string prefix = kFieldPrefix;
  for (const auto& [key, value] : meta)
    if (key.rfind(prefix, 0) == 0) s.fingerprint[key.substr(prefix.size())] = value;
  return s;
}

void remove_state(const std::string& out_dir) {
  std::error_code ec;
  fs::remove(state_path(out_dir), ec);
}

}  // namespace sdvsr::cli
