#include "pipeline/text_conditioning.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "models/clip_text_model.h"
#include "pipeline/sha256.h"
#include "runtime/warnings.h"
#include "weights/model_config.h"
#include "weights/safetensors.h"

namespace sdvsr {

namespace fs = std::filesystem;

namespace {

std::optional<nlohmann::json> read_json_if_present(const fs::path& path) {
  if (!fs::is_regular_file(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// A special token as transformers stores it: "<tok>" or {"content": "<tok>", ...}.
std::optional<std::string> token_text(const nlohmann::json* file, const std::string& key,
                                      const fs::path& origin) {
  if (!file || !file->is_object()) return std::nullopt;
  auto it = file->find(key);
  if (it == file->end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw std::runtime_error(origin.string() + ": key '" + key +
                           "' is neither a string nor {\"content\": ...}");
}

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string join_ids(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

// The cache file at `path` when it can be used: readable, holding a
// `prompt_embeds` of `expected_shape` (any [1, L, D] when null) and the
// expected metadata; otherwise null (missing, corrupt or stale: the caller
// recomputes and rewrites it). Only the header is read.
std::shared_ptr<SafetensorsFile> usable_cache(const fs::path& path,
                                              const std::map<std::string, std::string>& expected_metadata,
                                              const Shape* expected_shape) {
  if (path.empty() || !fs::exists(path)) return nullptr;
  try {
    auto file = SafetensorsFile::open(path.string());
    for (const auto& [key, value] : expected_metadata) {
      auto it = file->metadata().find(key);
      if (it == file->metadata().end() || it->second != value) return nullptr;
    }
    if (!file->has("prompt_embeds")) return nullptr;
    const Shape& s = file->info("prompt_embeds").shape;
    const bool fits = expected_shape ? s == *expected_shape
                                     : s.size() == 3 && s[0] == 1 && s[1] >= 1 && s[2] >= 1;
    return fits ? file : nullptr;
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

std::vector<int64_t> empty_prompt_ids(const std::string& tokenizer_folder, int64_t max_positions) {
  const fs::path dir(tokenizer_folder);
  const fs::path map_path = dir / "special_tokens_map.json";
  const fs::path config_path = dir / "tokenizer_config.json";
  const fs::path vocab_path = dir / "vocab.json";
  auto special_map = read_json_if_present(map_path);
  auto tok_config = read_json_if_present(config_path);
  auto vocab = read_json_if_present(vocab_path);
  if (!vocab || !vocab->is_object())
    throw std::runtime_error(vocab_path.string() + ": missing or not a JSON object");

  // special_tokens_map.json wins over tokenizer_config.json; then CLIPTokenizer's defaults.
  auto special = [&](const std::string& key, const std::string& fallback) {
    if (auto t = token_text(special_map ? &*special_map : nullptr, key, map_path)) return *t;
    if (auto t = token_text(tok_config ? &*tok_config : nullptr, key, config_path)) return *t;
    return fallback;
  };
  auto id_of = [&](const std::string& token) -> int64_t {
    auto it = vocab->find(token);
    if (it != vocab->end() && it->is_number_integer()) return it->get<int64_t>();
    if (auto added = read_json_if_present(dir / "added_tokens.json")) {
      auto a = added->find(token);
      if (a != added->end() && a->is_number_integer()) return a->get<int64_t>();
    }
    if (tok_config && tok_config->contains("added_tokens_decoder")) {
      for (const auto& [id, entry] : (*tok_config)["added_tokens_decoder"].items())
        if (entry.is_object() && entry.value("content", "") == token) return std::stoll(id);
    }
    throw std::runtime_error(vocab_path.string() + ": special token '" + token +
                             "' has no id");
  };
  const int64_t bos = id_of(special("bos_token", "<|startoftext|>"));
  const int64_t eos = id_of(special("eos_token", "<|endoftext|>"));
  const int64_t pad = id_of(special("pad_token", "<|endoftext|>"));

  int64_t length = max_positions;
  if (tok_config && tok_config->contains("model_max_length") &&
      (*tok_config)["model_max_length"].is_number()) {
    const double m = (*tok_config)["model_max_length"].get<double>();
    // transformers writes 1e30 for "no limit"; the text model's positions bound it then.
    if (m < 1e29) {
      if (m < 2 || m > static_cast<double>(max_positions))
        throw std::runtime_error(config_path.string() + ": model_max_length " +
                                 std::to_string(static_cast<int64_t>(m)) +
                                 " does not fit the text encoder's " +
                                 std::to_string(max_positions) + " positions");
      length = static_cast<int64_t>(m);
    }
  }
  if (length < 2) throw std::runtime_error(tokenizer_folder + ": prompt length below 2");
  std::vector<int64_t> ids(static_cast<size_t>(length), pad);
  ids[0] = bos;
  ids[1] = eos;
  return ids;
}

std::string sdvsr_cache_dir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (std::string d = env("SDVSR_CACHE"); !d.empty()) return d;
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty()) return (fs::path(d) / "sdvsr").string();
  if (std::string d = env("HOME"); !d.empty()) return (fs::path(d) / ".cache" / "sdvsr").string();
  return {};
}

namespace {

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

fs::path commit_record_path(const std::string& commit) {
  const std::string root = sdvsr_cache_dir();
  const bool safe = !commit.empty() && commit.size() <= 64 &&
                    commit.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (root.empty() || !safe) return {};
  return fs::path(root) / "prompt_embeds" / ("hub-commit-" + commit + ".sha256");
}

}  // namespace

std::string prompt_embeds_cache_path(const std::string& text_encoder_sha256) {
  const std::string root = sdvsr_cache_dir();
  if (root.empty() || !is_sha256_hex(text_encoder_sha256)) return {};
  return (fs::path(root) / "prompt_embeds" / (text_encoder_sha256 + ".safetensors")).string();
}

bool prompt_embeds_cached(const std::string& text_encoder_sha256) {
  return usable_cache(prompt_embeds_cache_path(text_encoder_sha256), {}, nullptr) != nullptr;
}

void remember_text_encoder_sha256(const std::string& snapshot_commit,
                                  const std::string& text_encoder_sha256) {
  const fs::path record = commit_record_path(snapshot_commit);
  if (record.empty() || !is_sha256_hex(text_encoder_sha256)) return;
  try {  // only saves a download later: failures are not errors
    fs::create_directories(record.parent_path());
    std::ofstream(record) << text_encoder_sha256 << "\n";
  } catch (const std::exception&) {
  }
}

std::string remembered_text_encoder_sha256(const std::string& snapshot_commit) {
  const fs::path record = commit_record_path(snapshot_commit);
  if (record.empty()) return {};
  std::ifstream in(record);
  std::string sha;
  in >> sha;
  return is_sha256_hex(sha) ? sha : std::string();
}

Tensor prompt_embeds_for(const std::string& model_folder, Backend& be,
                         const std::string& text_encoder_sha256) {
  const fs::path folder(model_folder);

  // 1. Shipped embeddings.
  const fs::path shipped = folder / "prompt_embeds.safetensors";
  if (fs::exists(shipped)) {
    auto file = SafetensorsFile::open(shipped.string());
    if (!file->has("prompt_embeds"))
      throw std::runtime_error(shipped.string() + ": no tensor 'prompt_embeds'");
    const Shape& s = file->info("prompt_embeds").shape;
    if (s.size() != 3 || s[0] != 1 || s[1] < 1 || s[2] < 1)
      throw std::runtime_error(shipped.string() + ": 'prompt_embeds' has shape " + shape_str(s) +
                               ", expected [1, tokens, hidden]");
    return file->tensor("prompt_embeds").clone();
  }

  // 2. The text encoder on the empty prompt, through the cache.
  const fs::path encoder_dir = folder / "text_encoder";
  if (!fs::is_directory(encoder_dir)) {
    if (!text_encoder_sha256.empty()) {
      // 3. The download left the text encoder out because this was cached.
      const std::string path = prompt_embeds_cache_path(text_encoder_sha256);
      if (auto cached = usable_cache(path, {}, nullptr)) return cached->tensor("prompt_embeds").clone();
      throw std::runtime_error(model_folder + ": no text encoder was downloaded because the prompt "
                               "embedding " + path + " was cached, and it is gone or unreadable "
                               "now; run again online to fetch the text encoder");
    }
    throw std::runtime_error(model_folder +
                             ": neither prompt_embeds.safetensors nor a text_encoder folder");
  }
  const fs::path config_path = encoder_dir / "config.json";
  const ClipTextConfig config = ClipTextConfig::from_config(ModelConfig::load(config_path.string()));
  const std::vector<int64_t> ids =
      empty_prompt_ids((folder / "tokenizer").string(), config.max_position_embeddings);
  const Shape shape{1, static_cast<int64_t>(ids.size()), config.hidden_size};

  const std::string weights = ClipTextModel::weights_path(encoder_dir.string());
  // The file name keys the weights; the metadata pins what else shaped the result
  // (the same weights under another config, e.g. another activation, or other ids).
  const std::map<std::string, std::string> metadata{
      {"text_encoder_config_sha256", sha256_hex(file_text(config_path))},
      {"input_ids", join_ids(ids)}};
  const std::string cache_root = sdvsr_cache_dir();
  fs::path cache_path;
  if (!cache_root.empty()) {
    cache_path = fs::path(cache_root) / "prompt_embeds" / (sha256_file_hex(weights) + ".safetensors");
    if (auto cached = usable_cache(cache_path, metadata, &shape))
      return cached->tensor("prompt_embeds").clone();
  }

  Tensor embeds = be.to_host(ClipTextModel::load(encoder_dir.string()).forward(ids, be));

  if (!cache_path.empty()) {
    try {
      fs::create_directories(cache_path.parent_path());
      save_safetensors(cache_path.string(), {{"prompt_embeds", embeds}}, metadata);
    } catch (const std::exception& e) {
      // The cache only saves time: carry on without it.
      warn("cannot write prompt-embedding cache " + cache_path.string() + ": " + e.what());
    }
  }
  return embeds;
}

}  // namespace sdvsr
