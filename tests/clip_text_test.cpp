// CLIPTextModel against transformers 4.37.2 on the empty prompt (tiny-text golden):
// embeddings, every layer's output and last_hidden_state.
#include "models/clip_text_model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "golden.h"
#include "weights/model_config.h"
#include "weights/safetensors.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

void check_encoder(const std::string& encoder_folder, const std::string& case_file) {
  SCOPED_TRACE(case_file);
  auto ref = SafetensorsFile::open(test::golden_path("tiny-text/cases/" + case_file));
  ClipTextModel model = ClipTextModel::load(test::golden_path("tiny-text/" + encoder_folder));
  std::vector<int64_t> ids = ref->int64_values("input_ids");
  std::vector<Tensor> hidden;
  Tensor out = model.forward(ids, cpu_backend(), &hidden);

  const int64_t layers = model.config().num_hidden_layers;
  ASSERT_EQ(static_cast<int64_t>(hidden.size()), layers + 1);
  auto check = [&](const Tensor& mine, const std::string& key) {
    Tensor expect = ref->tensor(key);
    EXPECT_CLOSE(mine, expect) << key;
    test::Closeness c = test::compare(mine, expect);
    std::printf("  %-28s %-18s rel_l2 %.3g  max_abs %.3g  (max_ref %.3g)\n", case_file.c_str(),
                key.c_str(), c.rel_l2, c.max_abs, c.max_ref);
  };
  check(hidden[0], "embeddings_output");
  for (int64_t i = 0; i < layers; ++i)
    check(hidden[i + 1], "layer_" + std::to_string(i) + "_output");
  check(out, "last_hidden_state");
}

TEST(ClipTextGolden, EmptyPromptGelu) { check_encoder("text_encoder", "empty_prompt.safetensors"); }

TEST(ClipTextGolden, EmptyPromptQuickGelu) {
  check_encoder("text_encoder_quickgelu", "empty_prompt_quickgelu.safetensors");
}

TEST(ClipTextModel, ConfigReadsEverySwitch) {
  ClipTextConfig c = ClipTextConfig::from_config(
      ModelConfig::load(test::golden_path("tiny-text/text_encoder/config.json")));
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.hidden_act, Activation::kGELU);
  // A full CLIPConfig: its text_config is read; transformers' defaults fill the rest.
  ClipTextConfig nested = ClipTextConfig::from_config(ModelConfig::from_json(
      nlohmann::json::parse(R"({"model_type": "clip", "text_config": {"hidden_size": 64,
          "num_attention_heads": 4, "hidden_act": "gelu_new"}})"),
      "clip config"));
  EXPECT_EQ(nested.hidden_size, 64);
  EXPECT_EQ(nested.hidden_act, Activation::kGELUTanh);
  EXPECT_EQ(nested.num_hidden_layers, 12);
  EXPECT_EQ(nested.max_position_embeddings, 77);
  EXPECT_THROW(ClipTextConfig::from_config(ModelConfig::from_json(
                   nlohmann::json::parse(R"({"hidden_act": "mish"})"), "c")),
               std::runtime_error);
  EXPECT_THROW(ClipTextConfig::from_config(ModelConfig::from_json(
                   nlohmann::json::parse(R"({"hidden_size": 30, "num_attention_heads": 4})"), "c")),
               std::runtime_error);
}

// Checkpoints from older transformers carry position_ids; every other key must be used.
TEST(ClipTextModel, SkipsPositionIdsAndRejectsUnknownKeys) {
  const std::string src = test::golden_path("tiny-text/text_encoder");
  auto file = SafetensorsFile::open(src + "/model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& info : file->tensors()) tensors[info.name] = file->tensor(info.name);
  ClipTextConfig config =
      ClipTextConfig::from_config(ModelConfig::load(src + "/config.json"));

  std::vector<float> positions(77);
  for (int i = 0; i < 77; ++i) positions[i] = static_cast<float>(i);
  auto with_ids = tensors;
  with_ids["text_model.embeddings.position_ids"] = Tensor::from_vector({1, 77}, positions);
  auto store = WeightStore::from_tensors(with_ids, "with position_ids");
  ClipTextModel model(config, *store);
  auto ref = SafetensorsFile::open(test::golden_path("tiny-text/cases/empty_prompt.safetensors"));
  EXPECT_CLOSE(model.forward(ref->int64_values("input_ids"), cpu_backend()),
               ref->tensor("last_hidden_state"));

  auto extra = tensors;
  extra["text_model.encoder.layers.2.mlp.fc1.weight"] = Tensor::zeros({64, 32});
  auto bad = WeightStore::from_tensors(extra, "with an extra layer");
  EXPECT_THROW(ClipTextModel(config, *bad), std::runtime_error);

  auto missing = tensors;
  missing.erase("text_model.final_layer_norm.bias");
  auto short_store = WeightStore::from_tensors(missing, "without final norm bias");
  EXPECT_THROW(ClipTextModel(config, *short_store), std::runtime_error);
}

TEST(ClipTextModel, RejectsBadTokens) {
  ClipTextModel model = ClipTextModel::load(test::golden_path("tiny-text/text_encoder"));
  EXPECT_THROW(model.forward({998, 1000}, cpu_backend()), std::invalid_argument);
  EXPECT_THROW(model.forward(std::vector<int64_t>(78, 0), cpu_backend()), std::invalid_argument);
  EXPECT_THROW(model.forward({}, cpu_backend()), std::invalid_argument);
  // A shorter sequence runs (causal: its rows equal the first rows of the full run).
  auto ref = SafetensorsFile::open(test::golden_path("tiny-text/cases/empty_prompt.safetensors"));
  std::vector<int64_t> ids = ref->int64_values("input_ids");
  std::vector<Tensor> hidden;
  model.forward({ids.begin(), ids.begin() + 5}, cpu_backend(), &hidden);
  Tensor full = ref->tensor("layer_1_output");
  for (int64_t i = 0; i < 5 * 32; ++i) EXPECT_NEAR(hidden[2][i], full[i], 1e-4) << i;
}

}  // namespace
}  // namespace sdvsr
