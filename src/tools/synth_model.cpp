// sdvsr-synth-model: writes a random-weight model with the shapes of a config
// manifest (../shared/golden/full-config-manifest.json) in the real folder
// layout, for speed and memory tests of the full-size network:
//
//   OUT/model_index.json
//   OUT/<module>/config.json + diffusion_pytorch_model.safetensors   (unet, controlnet, vae, ...)
//   OUT/raft/raft_large.safetensors                                   (if the manifest has "raft")
//   OUT/scheduler/scheduler_config.json                               (manifest "scheduler_config")
//   OUT/prompt_embeds.safetensors  [1, 77, unet cross_attention_dim]
//
// Values: norm layers (a 1-D "<p>.weight") weight 1 and bias 0; BatchNorm
// running_mean 0, running_var 1; integer tensors (num_batches_tracked) 0;
// 0-dim float tensors (the temporal VAE's alpha) 0.5; everything else
// N(0, 0.02) from the Philox generator (pipeline/noise.h) with stream =
// FNV-1a hash of "<module>/<key>", so each tensor is reproducible on its own.
// prompt_embeds are N(0, 1). Tensors are generated and written in pieces, so
// memory stays small whatever the model size.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/noise.h"
#include "weights/safetensors_writer_stream.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdvsr {
namespace {

constexpr float kWeightStd = 0.02f;
constexpr int64_t kChunk = int64_t{1} << 20;  // elements generated per piece

struct Args {
  std::string manifest, out;
  uint64_t seed = 0;
};

[[noreturn]] void usage_error(const std::string& problem) {
  std::cerr << "sdvsr-synth-model: " << problem << "\n"
            << "usage: sdvsr-synth-model --manifest FILE --out DIR [--seed N]\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << "usage: sdvsr-synth-model --manifest FILE --out DIR [--seed N]\n";
      std::exit(0);
    }
    if (flag != "--manifest" && flag != "--out" && flag != "--seed") usage_error("unknown argument '" + flag + "'");
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--manifest") a.manifest = value;
    if (flag == "--out") a.out = value;
    if (flag == "--seed") {
      size_t used = 0;
      try {
        a.seed = std::stoull(value, &used, 0);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || value.empty() || value[0] == '-')
        usage_error("--seed must be a non-negative integer, got '" + value + "'");
    }
  }
  if (a.manifest.empty()) usage_error("--manifest is required");
  if (a.out.empty()) usage_error("--out is required");
  return a;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void write_json(const fs::path& path, const json& j) {
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) throw std::runtime_error(path.string() + ": write failed");
  }
  fs::rename(tmp, path);
}

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "float32") return DType::kF32;
  if (s == "int64") return DType::kI64;
  throw std::runtime_error(where + ": unsupported dtype '" + s + "' (float32 and int64 only)");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What one tensor is filled with.
enum class Fill { kRandom, kZero, kOne, kHalf };

Fill fill_for(const std::string& key, const StreamTensorSpec& spec, const std::set<std::string>& norm_prefixes) {
  if (spec.dtype != DType::kF32) return Fill::kZero;
  if (ends_with(key, ".running_mean")) return Fill::kZero;
  if (ends_with(key, ".running_var")) return Fill::kOne;
  const size_t dot = key.rfind('.');
  const std::string prefix = dot == std::string::npos ? "" : key.substr(0, dot);
  if (norm_prefixes.count(prefix)) {
    if (ends_with(key, ".weight")) return Fill::kOne;
    if (ends_with(key, ".bias")) return Fill::kZero;
  }
  if (spec.shape.empty()) return Fill::kHalf;
  return Fill::kRandom;
}

// Streams every tensor of `state_dict` (manifest order) into one safetensors file.
uint64_t write_weights(const fs::path& path, const std::string& module, const json& state_dict, uint64_t seed) {
  const std::string where = path.string();
  if (!state_dict.is_object()) throw std::runtime_error(where + ": manifest state_dict is not an object");
  std::vector<StreamTensorSpec> specs;
  std::set<std::string> norm_prefixes;  // layers whose weight is 1-D: GroupNorm, LayerNorm, BatchNorm
  for (const auto& [key, desc] : state_dict.items()) {
    StreamTensorSpec s;
    s.name = key;
    s.dtype = parse_dtype(desc.at("dtype").get<std::string>(), where + " " + key);
    s.shape = desc.at("shape").get<Shape>();
    if (ends_with(key, ".weight") && s.shape.size() == 1) norm_prefixes.insert(key.substr(0, key.size() - 7));
    specs.push_back(std::move(s));
  }
  SafetensorsStreamWriter writer(path.string(), specs, {{"format", "pt"}, {"generator", "sdvsr-synth-model"}});
  std::vector<float> fbuf;
  std::vector<int64_t> ibuf;
  uint64_t elements = 0;
  for (const StreamTensorSpec& spec : specs) {
    const int64_t n = shape_numel(spec.shape);
    elements += static_cast<uint64_t>(n);
    const Fill fill = fill_for(spec.name, spec, norm_prefixes);
    const uint64_t stream = fnv1a64(module + "/" + spec.name);
    for (int64_t first = 0; first < n; first += kChunk) {
      const int64_t count = std::min(kChunk, n - first);
      if (spec.dtype == DType::kI64) {
        ibuf.assign(static_cast<size_t>(count), 0);
        writer.append(ibuf.data(), sizeof(int64_t) * count);
        continue;
      }
      fbuf.resize(static_cast<size_t>(count));
      switch (fill) {
        case Fill::kRandom:
          gaussian_fill(fbuf.data(), count, static_cast<uint64_t>(first), seed, stream);
          for (float& v : fbuf) v *= kWeightStd;
          break;
        case Fill::kZero: std::fill(fbuf.begin(), fbuf.end(), 0.0f); break;
        case Fill::kOne: std::fill(fbuf.begin(), fbuf.end(), 1.0f); break;
        case Fill::kHalf: std::fill(fbuf.begin(), fbuf.end(), 0.5f); break;
      }
      writer.append(fbuf.data(), sizeof(float) * count);
    }
  }
  writer.finish();
  return elements;
}

const std::map<std::string, std::pair<std::string, std::string>>& known_classes() {
  static const std::map<std::string, std::pair<std::string, std::string>> m = {
      {"unet", {"diffusers", "UNet2DConditionModel"}},
      {"controlnet", {"diffusers", "ControlNetModel"}},
      {"vae", {"temporal_autoencoder.autoencoder_tiny", "TemporalAutoencoderTiny"}},
  };
  return m;
}

int run(const Args& args) {
  json manifest;
  {
    std::ifstream f(args.manifest);
    if (!f) throw std::runtime_error(args.manifest + ": cannot open");
    try {
      manifest = json::parse(f);
    } catch (const json::exception& e) {
      throw std::runtime_error(args.manifest + ": invalid JSON (" + e.what() + ")");
    }
  }
  if (!manifest.contains("modules") || !manifest["modules"].is_object())
    throw std::runtime_error(args.manifest + ": no \"modules\" object");
  const fs::path out(args.out);
  fs::create_directories(out);

  json model_index = {{"_class_name", "StreamDiffVSRPipeline"}, {"_diffusers_version", "0.27.2"}};
  for (const auto& [name, module] : manifest["modules"].items()) {
    try {
      if (!module.contains("state_dict")) throw std::runtime_error("no state_dict");
      if (name == "raft") {  // torchvision weights: no config.json
        fs::create_directories(out / "raft");
        const uint64_t n = write_weights(out / "raft" / "raft_large.safetensors", name, module["state_dict"], args.seed);
        std::cout << "raft: " << n << " values -> " << (out / "raft" / "raft_large.safetensors").string() << "\n";
        continue;
      }
      const fs::path dir = out / name;
      fs::create_directories(dir);
      json config = module.value("config", json::object());
      const auto cls = known_classes().find(name);
      if (cls != known_classes().end()) {
        if (!config.contains("_class_name")) config["_class_name"] = cls->second.second;
        model_index[name] = {cls->second.first, cls->second.second};
      }
      if (!config.contains("_diffusers_version")) config["_diffusers_version"] = "0.27.2";
      write_json(dir / "config.json", config);
      const fs::path weights = dir / "diffusion_pytorch_model.safetensors";
      const uint64_t n = write_weights(weights, name, module["state_dict"], args.seed);
      std::cout << name << ": " << n << " values -> " << weights.string() << "\n";
    } catch (const json::exception& e) {
      throw std::runtime_error(args.manifest + ": module '" + name + "': " + e.what());
    }
  }

  if (manifest.contains("scheduler_config")) {
    fs::create_directories(out / "scheduler");
    write_json(out / "scheduler" / "scheduler_config.json", manifest["scheduler_config"]);
    model_index["scheduler"] = {"diffusers", "DDIMScheduler"};
  }
  for (const char* absent : {"text_encoder", "tokenizer", "safety_checker", "feature_extractor"})
    model_index[absent] = {nullptr, nullptr};
  model_index["requires_safety_checker"] = false;
  write_json(out / "model_index.json", model_index);

  // The empty-prompt embeddings the pipeline would otherwise compute with CLIP.
  const json& modules = manifest["modules"];
  if (modules.contains("unet") && modules["unet"].contains("config") &&
      modules["unet"]["config"].contains("cross_attention_dim")) {
    const int64_t dim = modules["unet"]["config"]["cross_attention_dim"].get<int64_t>();
    const Shape shape = {1, 77, dim};
    const Tensor emb = gaussian_noise(shape, args.seed, fnv1a64("prompt_embeds"));
    SafetensorsStreamWriter w((out / "prompt_embeds.safetensors").string(), {{"prompt_embeds", DType::kF32, shape}},
                              {{"format", "pt"}, {"generator", "sdvsr-synth-model"}});
    w.append(emb.data(), sizeof(float) * emb.numel());
    w.finish();
    std::cout << "prompt_embeds: " << shape_str(shape) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace sdvsr

int main(int argc, char** argv) {
  const sdvsr::Args args = sdvsr::parse_args(argc, argv);
  try {
    return sdvsr::run(args);
  } catch (const std::exception& e) {
    std::cerr << "sdvsr-synth-model: " << e.what() << "\n";
    return 1;
  }
}
