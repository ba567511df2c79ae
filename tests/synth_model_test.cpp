// sdvsr-synth-model on a small manifest written here: folder layout, configs,
// every key/shape/dtype, the documented fill rules and the generator's values.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden.h"
#include "pipeline/noise.h"
#include "run_program.h"
#include "weights/safetensors.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json entry(Shape shape, const char* dtype = "float32") { return {{"shape", shape}, {"dtype", dtype}}; }

json small_manifest() {
  json m;
  m["scheduler_config"] = {{"_class_name", "DDIMScheduler"}, {"timestep_spacing", "trailing"}, {"steps_offset", 1}};
  m["modules"]["unet"]["config"] = {{"in_channels", 7}, {"cross_attention_dim", 8}};
  m["modules"]["unet"]["state_dict"] = {{"conv_in.weight", entry({4, 7, 3, 3})},
                                        {"conv_in.bias", entry({4})},
                                        {"down_blocks.0.resnets.0.norm1.weight", entry({4})},
                                        {"down_blocks.0.resnets.0.norm1.bias", entry({4})}};
  m["modules"]["vae"]["config"] = {{"latent_channels", 4}};
  m["modules"]["vae"]["state_dict"] = {{"encoder.layers.1.alpha", entry({})}};
  m["modules"]["raft"]["config"] = {{"torchvision", "raft_large(weights=None)"}};
  m["modules"]["raft"]["state_dict"] = {{"fnet.convnormrelu.0.weight", entry({2, 3, 1, 1})},
                                        {"fnet.convnormrelu.0.bias", entry({2})},
                                        {"fnet.convnormrelu.1.weight", entry({2})},
                                        {"fnet.convnormrelu.1.bias", entry({2})},
                                        {"fnet.convnormrelu.1.running_mean", entry({2})},
                                        {"fnet.convnormrelu.1.running_var", entry({2})},
                                        {"fnet.convnormrelu.1.num_batches_tracked", entry({}, "int64")}};
  return m;
}

// The tool's documented per-tensor stream: FNV-1a 64 of "<module>/<key>".
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::vector<float> expected_random(const std::string& module, const std::string& key, const Shape& shape,
                                   uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  gaussian_fill(v.data(), static_cast<int64_t>(v.size()), 0, seed, fnv1a64(module + "/" + key));
  for (float& x : v) x *= 0.02f;
  return v;
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

TEST(SynthModel, WritesTheManifestModel) {
  const std::string dir = test::temp_dir("synth_model");
  const json manifest = small_manifest();
  std::ofstream(dir + "/manifest.json") << manifest.dump();
  const std::string out = dir + "/model";
  const auto r = test::run_program("sdvsr-synth-model", {"--manifest", dir + "/manifest.json", "--out", out, "--seed", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Configs: the manifest's, plus the class name diffusers needs.
  json unet_cfg = read_json(out + "/unet/config.json");
  EXPECT_EQ(unet_cfg["_class_name"], "UNet2DConditionModel");
  EXPECT_EQ(unet_cfg["cross_attention_dim"], 8);
  EXPECT_EQ(read_json(out + "/vae/config.json")["_class_name"], "TemporalAutoencoderTiny");
  EXPECT_EQ(read_json(out + "/scheduler/scheduler_config.json"), manifest["scheduler_config"]);
  EXPECT_EQ(read_json(out + "/model_index.json")["unet"], json({"diffusers", "UNet2DConditionModel"}));
  EXPECT_FALSE(fs::exists(out + "/raft/config.json"));

  // Every key with its shape and dtype, nothing else.
  const std::map<std::string, std::string> files = {{"unet", out + "/unet/diffusion_pytorch_model.safetensors"},
                                                    {"vae", out + "/vae/diffusion_pytorch_model.safetensors"},
                                                    {"raft", out + "/raft/raft_large.safetensors"}};
  for (const auto& [module, path] : files) {
    SCOPED_TRACE(path);
    auto f = SafetensorsFile::open(path);
    const json& sd = manifest["modules"][module]["state_dict"];
    EXPECT_EQ(f->tensors().size(), sd.size());
    for (const auto& [key, desc] : sd.items()) {
      ASSERT_TRUE(f->has(key)) << key;
      EXPECT_EQ(f->info(key).shape, desc["shape"].get<Shape>()) << key;
      EXPECT_EQ(f->info(key).dtype, desc["dtype"] == "int64" ? DType::kI64 : DType::kF32) << key;
    }
  }

  auto unet = SafetensorsFile::open(files.at("unet"));
  EXPECT_EQ(unet->tensor("conv_in.weight").to_vector(), expected_random("unet", "conv_in.weight", {4, 7, 3, 3}, 7));
  EXPECT_EQ(unet->tensor("conv_in.bias").to_vector(), expected_random("unet", "conv_in.bias", {4}, 7));
  EXPECT_EQ(unet->tensor("down_blocks.0.resnets.0.norm1.weight").to_vector(), std::vector<float>(4, 1.0f));
  EXPECT_EQ(unet->tensor("down_blocks.0.resnets.0.norm1.bias").to_vector(), std::vector<float>(4, 0.0f));
  EXPECT_EQ(SafetensorsFile::open(files.at("vae"))->tensor("encoder.layers.1.alpha")[0], 0.5f);

  auto raft = SafetensorsFile::open(files.at("raft"));
  EXPECT_EQ(raft->tensor("fnet.convnormrelu.0.bias").to_vector(),
            expected_random("raft", "fnet.convnormrelu.0.bias", {2}, 7));  // a conv bias stays random
  EXPECT_EQ(raft->tensor("fnet.convnormrelu.1.weight").to_vector(), std::vector<float>(2, 1.0f));
  EXPECT_EQ(raft->tensor("fnet.convnormrelu.1.bias").to_vector(), std::vector<float>(2, 0.0f));
  EXPECT_EQ(raft->tensor("fnet.convnormrelu.1.running_mean").to_vector(), std::vector<float>(2, 0.0f));
  EXPECT_EQ(raft->tensor("fnet.convnormrelu.1.running_var").to_vector(), std::vector<float>(2, 1.0f));
  EXPECT_EQ(raft->int64_values("fnet.convnormrelu.1.num_batches_tracked"), std::vector<int64_t>{0});

  auto emb = SafetensorsFile::open(out + "/prompt_embeds.safetensors");
  EXPECT_EQ(emb->info("prompt_embeds").shape, (Shape{1, 77, 8}));

  // Another seed gives other random values, the same constants.
  const std::string out2 = dir + "/model2";
  ASSERT_EQ(test::run_program("sdvsr-synth-model", {"--manifest", dir + "/manifest.json", "--out", out2}).exit_code, 0);
  auto unet2 = SafetensorsFile::open(out2 + "/unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(unet2->tensor("conv_in.weight").to_vector(), expected_random("unet", "conv_in.weight", {4, 7, 3, 3}, 0));
  EXPECT_NE(unet2->tensor("conv_in.weight")[0], unet->tensor("conv_in.weight")[0]);
}

TEST(SynthModel, CommandLineErrors) {
  const std::string dir = test::temp_dir("synth_model_err");
  auto r = test::run_program("sdvsr-synth-model", {"--out", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--manifest is required"), std::string::npos) << r.err;
  r = test::run_program("sdvsr-synth-model", {"--manifest", dir + "/m.json", "--out", dir, "--seed", "x"});
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_program("sdvsr-synth-model", {"--manifest", dir + "/missing.json", "--out", dir + "/o"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir + "/missing.json: cannot open"), std::string::npos) << r.err;
  std::ofstream(dir + "/bad.json") << R"({"modules": {"unet": {"state_dict": {"w": {"shape": [2], "dtype": "float16"}}}}})";
  r = test::run_program("sdvsr-synth-model", {"--manifest", dir + "/bad.json", "--out", dir + "/o2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unsupported dtype 'float16'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sdvsr
