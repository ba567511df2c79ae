// The full-size Stream-DiffVSR U-Net and ControlNet configs (golden
// full-config-manifest.json) build against exactly the state-dict keys and
// shapes diffusers 0.27.2 produces for them. No weights are needed: every
// tensor borrows one shared scratch buffer that is never read.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden.h"
#include "models/controlnet.h"
#include "models/unet2d_condition.h"
#include "weights/model_config.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

struct ManifestModule {
  ModelConfig config;
  std::shared_ptr<WeightStore> store;
};

ManifestModule manifest_module(const std::string& name) {
  const std::string path = test::golden_path("full-config-manifest.json");
  std::ifstream in(path);
  nlohmann::json m = nlohmann::json::parse(in);
  const auto& mod = m.at("modules").at(name);
  int64_t largest = 0;
  for (const auto& [key, info] : mod.at("state_dict").items())
    largest = std::max(largest, shape_numel(info.at("shape").get<Shape>()));
  auto scratch = std::make_shared<std::vector<float>>(largest, 0.0f);
  std::map<std::string, Tensor> tensors;
  for (const auto& [key, info] : mod.at("state_dict").items())
    tensors[key] = Tensor::borrow(info.at("shape").get<Shape>(), scratch->data(), scratch);
  return {ModelConfig::from_json(mod.at("config"), path + ":" + name),
          WeightStore::from_tensors(std::move(tensors), path + ":" + name)};
}

TEST(FullSizeKeys, UNetUsesEveryManifestKey) {
  auto m = manifest_module("unet");
  UNet2DConditionModel unet(m.config, WeightScope(m.store), cpu_backend());
  EXPECT_NO_THROW(m.store->finish());
  EXPECT_EQ(unet.in_channels(), 7);
  EXPECT_EQ(unet.out_channels(), 4);
  // attention_head_dim 8 means 8 heads: head size 64 at 512 channels, 128 at 1024.
  EXPECT_EQ(unet.spec().down[1].attn->heads, 8);
  EXPECT_EQ(unet.spec().down[1].attn->head_dim, 64);
  EXPECT_EQ(unet.spec().down[3].attn->head_dim, 128);
  EXPECT_TRUE(unet.spec().down[1].attn->only_cross_attention);
  EXPECT_FALSE(unet.spec().down[3].attn->only_cross_attention);
  EXPECT_FALSE(unet.spec().mid->attn->only_cross_attention);
}

TEST(FullSizeKeys, ControlNetUsesEveryManifestKey) {
  auto m = manifest_module("controlnet");
  ControlNetModel cn(m.config, WeightScope(m.store), cpu_backend());
  EXPECT_NO_THROW(m.store->finish());
  EXPECT_EQ(cn.in_channels(), 7);
  EXPECT_FALSE(cn.global_pool_conditions());
}

TEST(FullSizeKeys, UnsupportedSwitchesAreRefusedByName) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"resnet_time_scale_shift", "scale_shift"},
           {"addition_embed_type", "text"},
           {"num_attention_heads", 8},
           {"class_embed_type", "projection"},
           {"down_block_types", {"DownBlock2D", "SimpleCrossAttnDownBlock2D",
                                 "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"}}}) {
    auto m = manifest_module("unet");
    nlohmann::json j = m.config.json();
    j[key] = value;
    ModelConfig cfg = ModelConfig::from_json(j, "edited-config.json");
    try {
      UNet2DConditionModel unet(cfg, WeightScope(m.store), cpu_backend());
      ADD_FAILURE() << key << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace sdvsr
