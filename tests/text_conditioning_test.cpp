// Prompt embeddings: shipped file, the empty prompt's token ids, and the text
// encoder run through the on-disk cache.
#include "pipeline/text_conditioning.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "golden.h"
#include "pipeline/sha256.h"
#include "weights/safetensors.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

// Sets an environment variable for one scope, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A model folder holding (links to) the golden text encoder and tokenizer.
std::string model_folder_with(const std::string& tag, const std::string& encoder) {
  fs::path dir = test::temp_dir(tag);
  fs::create_directory_symlink(test::golden_path("tiny-text/" + encoder), dir / "text_encoder");
  fs::create_directory_symlink(test::golden_path("tiny-text/tokenizer"), dir / "tokenizer");
  return dir.string();
}

std::vector<int64_t> expected_tiny_ids() {
  std::vector<int64_t> ids(77, 0);
  ids[0] = 998;
  ids[1] = 999;
  return ids;
}

TEST(TextConditioning, EmptyPromptIdsFromGoldenTokenizer) {
  EXPECT_EQ(empty_prompt_ids(test::golden_path("tiny-text/tokenizer"), 77), expected_tiny_ids());
  auto ref = SafetensorsFile::open(test::golden_path("tiny-text/cases/empty_prompt.safetensors"));
  EXPECT_EQ(empty_prompt_ids(test::golden_path("tiny-text/tokenizer"), 77),
            ref->int64_values("input_ids"));
}

TEST(TextConditioning, SpecialTokenPrecedenceAndForms) {
  fs::path dir = test::temp_dir("tokenizer_forms");
  write_file(dir / "vocab.json",
             R"({"!": 0, "a": 1, "<|startoftext|>": 5, "<|endoftext|>": 6, "<pad>": 7})");
  // No special files at all: CLIPTokenizer's defaults (pad = <|endoftext|>), 77 positions.
  std::vector<int64_t> ids = empty_prompt_ids(dir.string(), 77);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids[0], 5);
  EXPECT_EQ(ids[1], 6);
  EXPECT_EQ(ids[76], 6);
  // tokenizer_config.json alone, tokens as {"content": ...} objects, shorter max length.
  write_file(dir / "tokenizer_config.json",
             R"({"pad_token": {"content": "<|endoftext|>", "lstrip": false},
                 "bos_token": {"content": "<|startoftext|>"}, "model_max_length": 10})");
  ids = empty_prompt_ids(dir.string(), 77);
  EXPECT_EQ(ids, (std::vector<int64_t>{5, 6, 6, 6, 6, 6, 6, 6, 6, 6}));
  // special_tokens_map.json wins over tokenizer_config.json.
  write_file(dir / "special_tokens_map.json", R"({"pad_token": "!"})");
  ids = empty_prompt_ids(dir.string(), 77);
  EXPECT_EQ(ids, (std::vector<int64_t>{5, 6, 0, 0, 0, 0, 0, 0, 0, 0}));
  // Added tokens outside vocab.json.
  write_file(dir / "special_tokens_map.json", R"({"pad_token": "<extra>"})");
  write_file(dir / "added_tokens.json", R"({"<extra>": 42})");
  EXPECT_EQ(empty_prompt_ids(dir.string(), 77)[9], 42);
  write_file(dir / "special_tokens_map.json", R"({"pad_token": "<unknown>"})");
  EXPECT_THROW(empty_prompt_ids(dir.string(), 77), std::runtime_error);
  // A max length beyond the text encoder's positions.
  write_file(dir / "special_tokens_map.json", R"({})");
  write_file(dir / "tokenizer_config.json", R"({"model_max_length": 100})");
  EXPECT_THROW(empty_prompt_ids(dir.string(), 77), std::runtime_error);
  // transformers' "no limit" marker: the positions decide.
  write_file(dir / "tokenizer_config.json", R"({"model_max_length": 1e30})");
  EXPECT_EQ(empty_prompt_ids(dir.string(), 77).size(), 77u);
}

TEST(TextConditioning, ShippedPromptEmbeds) {
  const std::string tiny = test::golden_path("tiny");
  Tensor embeds = prompt_embeds_for(tiny, cpu_backend());
  auto ref = SafetensorsFile::open(tiny + "/prompt_embeds.safetensors");
  Tensor expect = ref->tensor("prompt_embeds");
  ASSERT_EQ(embeds.shape(), expect.shape());
  for (int64_t i = 0; i < embeds.numel(); ++i) ASSERT_EQ(embeds[i], expect[i]) << i;

  fs::path bad = test::temp_dir("bad_prompt_embeds");
  save_safetensors((bad / "prompt_embeds.safetensors").string(),
                   {{"prompt_embeds", Tensor::zeros({77, 32})}});
  EXPECT_THROW(prompt_embeds_for(bad.string(), cpu_backend()), std::runtime_error);
  save_safetensors((bad / "prompt_embeds.safetensors").string(),
                   {{"embeds", Tensor::zeros({1, 77, 32})}});
  EXPECT_THROW(prompt_embeds_for(bad.string(), cpu_backend()), std::runtime_error);
  EXPECT_THROW(prompt_embeds_for(test::temp_dir("empty_model").c_str(), cpu_backend()),
               std::runtime_error);
}

TEST(TextConditioning, TextEncoderThroughTheCache) {
  const std::string cache = test::temp_dir("prompt_cache");
  ScopedEnv env("SDVSR_CACHE", cache);
  const std::string model = model_folder_with("model_gelu", "text_encoder");
  auto ref = SafetensorsFile::open(test::golden_path("tiny-text/cases/empty_prompt.safetensors"));
  Tensor expect = ref->tensor("last_hidden_state");

  Tensor first = prompt_embeds_for(model, cpu_backend());
  EXPECT_CLOSE(first, expect);
  test::Closeness c = test::compare(first, expect);
  std::printf("  prompt_embeds (text encoder)  rel_l2 %.3g  max_abs %.3g\n", c.rel_l2, c.max_abs);

  const fs::path cached = fs::path(cache) / "prompt_embeds" /
                          (sha256_file_hex(test::golden_path("tiny-text/text_encoder/model.safetensors")) +
                           ".safetensors");
  ASSERT_TRUE(fs::exists(cached)) << cached;
  Tensor second = prompt_embeds_for(model, cpu_backend());
  ASSERT_EQ(second.shape(), first.shape());
  for (int64_t i = 0; i < first.numel(); ++i) ASSERT_EQ(second[i], first[i]) << i;

  // The second call really reads the file: a doctored cache entry (same metadata) comes back.
  {
    auto file = SafetensorsFile::open(cached.string());
    auto metadata = file->metadata();
    metadata.erase("__metadata__");
    Tensor doctored = file->tensor("prompt_embeds").clone();
    doctored.data()[0] = 12345.0f;
    file.reset();
    save_safetensors(cached.string(), {{"prompt_embeds", doctored}}, metadata);
  }
  EXPECT_EQ(prompt_embeds_for(model, cpu_backend())[0], 12345.0f);

  // A corrupt cache file is ignored and rewritten.
  write_file(cached, "not a safetensors file");
  Tensor third = prompt_embeds_for(model, cpu_backend());
  for (int64_t i = 0; i < first.numel(); ++i) ASSERT_EQ(third[i], first[i]) << i;
  EXPECT_NO_THROW(SafetensorsFile::open(cached.string()));

  // Byte-identical weights under another config (quick_gelu) are not confused with it.
  const std::string quick = model_folder_with("model_quickgelu", "text_encoder_quickgelu");
  auto quick_ref =
      SafetensorsFile::open(test::golden_path("tiny-text/cases/empty_prompt_quickgelu.safetensors"));
  EXPECT_CLOSE(prompt_embeds_for(quick, cpu_backend()), quick_ref->tensor("last_hidden_state"));
}

TEST(TextConditioning, CacheDirectoryFromEnvironment) {
  {
    ScopedEnv a("SDVSR_CACHE", std::string("/tmp/a"));
    ScopedEnv b("XDG_CACHE_HOME", std::string("/tmp/xdg"));
    EXPECT_EQ(sdvsr_cache_dir(), "/tmp/a");
  }
  {
    ScopedEnv a("SDVSR_CACHE", std::nullopt);
    ScopedEnv b("XDG_CACHE_HOME", std::string("/tmp/xdg"));
    EXPECT_EQ(sdvsr_cache_dir(), "/tmp/xdg/sdvsr");
  }
  {
    ScopedEnv a("SDVSR_CACHE", std::nullopt);
    ScopedEnv b("XDG_CACHE_HOME", std::nullopt);
    ScopedEnv h("HOME", std::string("/home/u"));
    EXPECT_EQ(sdvsr_cache_dir(), "/home/u/.cache/sdvsr");
  }
  // The XDG location is the one written to.
  const std::string xdg = test::temp_dir("xdg_cache");
  ScopedEnv a("SDVSR_CACHE", std::nullopt);
  ScopedEnv b("XDG_CACHE_HOME", xdg);
  prompt_embeds_for(model_folder_with("model_xdg", "text_encoder"), cpu_backend());
  EXPECT_EQ(std::distance(fs::directory_iterator(fs::path(xdg) / "sdvsr" / "prompt_embeds"),
                          fs::directory_iterator()),
            1);
}

}  // namespace
}  // namespace sdvsr
