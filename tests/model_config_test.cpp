// config.json lookups: defaults, broadcasting, and errors naming file and key.
#include "weights/model_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "golden.h"

namespace sdvsr {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, TypedReadsAndDefaults) {
  auto c = ModelConfig::from_json(nlohmann::json::parse(R"({
      "in_channels": 7, "scale": 0.18215, "flag": true, "name": "x", "nothing": null,
      "blocks": ["A", "B"], "widths": [16, 32], "heads": 4, "heads_list": [1, 2],
      "only": [true, false], "floats": [1, 2.5], "whole": 3.0})"),
                                  "mem.json");
  EXPECT_EQ(c.path(), "mem.json");
  EXPECT_EQ(c.get_int("in_channels"), 7);
  EXPECT_EQ(c.get_int("whole"), 3);
  EXPECT_EQ(c.get_int("missing", 5), 5);
  EXPECT_EQ(c.get_int("nothing", 5), 5);  // null means "use the default", as in diffusers
  EXPECT_FALSE(c.has("nothing"));
  EXPECT_TRUE(c.has("flag"));
  EXPECT_DOUBLE_EQ(c.get_float("scale", 1.0), 0.18215);
  EXPECT_DOUBLE_EQ(c.get_float("in_channels", 1.0), 7.0);
  EXPECT_TRUE(c.get_bool("flag", false));
  EXPECT_EQ(c.get_string("name", "d"), "x");
  EXPECT_EQ(c.get_optional_string("nothing"), std::nullopt);
  EXPECT_EQ(c.get_optional_string("name"), std::optional<std::string>("x"));
  EXPECT_EQ(c.get_string_list("blocks"), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(c.get_int_list("widths"), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(c.get_int_or_list("heads", 3, 8), (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(c.get_int_or_list("heads_list", 2, 8), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.get_int_or_list("missing", 2, 8), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(c.get_bool_or_list("flag", 2, false), (std::vector<bool>{true, true}));
  EXPECT_EQ(c.get_bool_or_list("only", 2, true), (std::vector<bool>{true, false}));
  EXPECT_EQ(c.get_float_list("floats"), (std::vector<double>{1.0, 2.5}));

  EXPECT_EQ(error_of([&] { c.get_int("name"); }),
            "mem.json: key 'name' should be an integer, got string");
  EXPECT_EQ(error_of([&] { c.get_int("missing"); }), "mem.json: key 'missing' is required but missing");
  EXPECT_EQ(error_of([&] { c.get_int("scale"); }).rfind("mem.json: key 'scale'", 0), 0u);
  EXPECT_EQ(error_of([&] { c.get_int_or_list("heads_list", 3, 1); }),
            "mem.json: key 'heads_list' has 2 entries but 3 are needed");
  EXPECT_EQ(error_of([&] { c.get_bool("name", false); }).rfind("mem.json: key 'name'", 0), 0u);
  EXPECT_EQ(error_of([&] { c.get_string_list("widths"); }).rfind("mem.json: key 'widths'", 0), 0u);
}

TEST(ModelConfig, LoadsGoldenUnetConfig) {
  const std::string path = test::golden_path("tiny/unet/config.json");
  auto c = ModelConfig::load(path);
  EXPECT_EQ(c.path(), path);
  EXPECT_EQ(c.get_int("in_channels"), 7);
  EXPECT_EQ(c.get_string("_class_name", ""), "UNet2DConditionModel");
  EXPECT_FALSE(c.get_int_list("block_out_channels").empty());
}

TEST(ModelConfig, LoadErrorsNameTheFile) {
  const std::string dir = test::temp_dir("config");
  std::ofstream(dir + "/bad.json") << "{ nope";
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/bad.json"); }).rfind(dir + "/bad.json: not valid JSON", 0), 0u);
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/none.json"); }), dir + "/none.json: cannot open config file");
  std::ofstream(dir + "/list.json") << "[1]";
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/list.json"); }), dir + "/list.json: config is not a JSON object");
  // Not regular files: refused before reading (/dev/zero would never end, a FIFO would block).
  std::filesystem::create_symlink("/dev/zero", dir + "/zero.json");
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/zero.json"); }), dir + "/zero.json: config is not a regular file");
  ASSERT_EQ(mkfifo((dir + "/fifo.json").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/fifo.json"); }), dir + "/fifo.json: config is not a regular file");
  std::filesystem::create_directory(dir + "/folder.json");
  EXPECT_EQ(error_of([&] { ModelConfig::load(dir + "/folder.json"); }), dir + "/folder.json: config is not a regular file");
  {
    std::ofstream big(dir + "/big.json");
    big << "{\"pad\": \"" << std::string((16u << 20) + 10, 'x') << "\"}";
  }
  EXPECT_NE(error_of([&] { ModelConfig::load(dir + "/big.json"); }).find("more than the 16 MiB"), std::string::npos);
}

}  // namespace
}  // namespace sdvsr
