// The streaming safetensors writer: pieces of any size, read back by SafetensorsFile;
// misuse leaves no file behind.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "golden.h"
#include "weights/safetensors.h"
#include "weights/safetensors_writer_stream.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

TEST(SafetensorsStreamWriter, PiecesReadBackExactly) {
  const std::string path = test::temp_dir("st_stream") + "/w.safetensors";
  std::vector<float> a(2 * 3 * 5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.25f * static_cast<float>(i) - 3.0f;
  const std::vector<int64_t> steps = {-7};
  const float scalar = 0.5f;
  {
    SafetensorsStreamWriter w(path,
                              {{"a", DType::kF32, {2, 3, 5}},
                               {"empty", DType::kF32, {0, 4}},
                               {"steps", DType::kI64, {1}},
                               {"alpha", DType::kF32, {}}},
                              {{"format", "pt"}});
    EXPECT_EQ(w.current().name, "a");
    w.append(a.data(), 7 * sizeof(float));  // uneven pieces
    w.append(a.data() + 7, 23 * sizeof(float));
    EXPECT_EQ(w.current().name, "steps");  // the empty tensor needs no bytes
    w.append(steps.data(), sizeof(int64_t));
    EXPECT_EQ(w.remaining_bytes(), sizeof(float));
    w.append(&scalar, sizeof(float));
    EXPECT_TRUE(w.done());
    w.finish();
  }
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(e.path().filename(), "w.safetensors");  // no temporary left

  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->info("a").shape, (Shape{2, 3, 5}));
  EXPECT_EQ(f->tensor("a").to_vector(), a);
  EXPECT_EQ(f->info("empty").shape, (Shape{0, 4}));
  EXPECT_EQ(f->info("steps").dtype, DType::kI64);
  EXPECT_EQ(f->int64_values("steps"), steps);
  EXPECT_EQ(f->info("alpha").shape, Shape{});
  EXPECT_EQ(f->tensor("alpha")[0], 0.5f);
}

TEST(SafetensorsStreamWriter, MisuseFailsAndLeavesNothing) {
  const std::string dir = test::temp_dir("st_stream_err");
  const std::vector<float> v(8, 1.0f);
  {
    SafetensorsStreamWriter w(dir + "/over.safetensors", {{"x", DType::kF32, {4}}});
    EXPECT_THROW(w.append(v.data(), 8 * sizeof(float)), std::runtime_error);
  }
  {
    SafetensorsStreamWriter w(dir + "/short.safetensors", {{"x", DType::kF32, {4}}, {"y", DType::kF32, {2}}});
    w.append(v.data(), 4 * sizeof(float));
    try {
      w.finish();
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("short.safetensors: tensor 'y' is incomplete"), std::string::npos) << e.what();
    }
  }
  {
    SafetensorsStreamWriter w(dir + "/abandoned.safetensors", {{"x", DType::kF32, {4}}});
    w.append(v.data(), 2 * sizeof(float));
  }  // destroyed unfinished
  EXPECT_THROW(SafetensorsStreamWriter(dir + "/dup.safetensors", {{"x", DType::kF32, {1}}, {"x", DType::kF32, {1}}}),
               std::runtime_error);
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace sdvsr
