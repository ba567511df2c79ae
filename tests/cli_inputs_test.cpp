// Input kinds: a folder of sequence folders, or a folder of frames (one
// sequence, OUT/<name of IN>/<names>).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "cli_helpers.h"
#include "run_program.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::run_program;

TEST(CliInputs, FolderOfFramesIsOneSequence) {
  const std::string dir = test::temp_dir("cli-flat");
  test::write_pattern_frames(dir + "/nested/clip", 2, 48, 32);
  auto nested = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/nested",
                                      "-o", dir + "/out", "--seed", "3", "--threads", "1", "--num_inference_steps", "1", "-q"});
  ASSERT_EQ(nested.exit_code, 0) << nested.err;
  // The same frames given directly: named after the folder, no sequence level.
  auto flat = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i",
                                    dir + "/nested/clip/", "-o", dir + "/out", "--seed", "3", "--threads", "1", "--num_inference_steps", "1", "-q"});
  ASSERT_EQ(flat.exit_code, 0) << flat.err;
  for (const char* f : {"frame_0001.png", "frame_0002.png"}) {
    const Image a = read_image(dir + "/out/nested/clip/" + f);
    const Image b = read_image(dir + "/out/clip/" + f);
    EXPECT_EQ(b.width, 4 * 48);
    EXPECT_EQ(a.rgb, b.rgb) << f;
  }
  EXPECT_FALSE(fs::exists(dir + "/out/clip/clip"));
}

TEST(CliInputs, FolderWithoutFramesNamesIt) {
  const std::string dir = test::temp_dir("cli-empty");
  fs::create_directories(dir + "/in/empty_seq");
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                 dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(dir + "/in/empty_seq"), std::string::npos) << r.err;
}

TEST(CliInputs, MissingInputNamesIt) {
  const std::string dir = test::temp_dir("cli-noin");
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/nope", "-o",
                                 dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(dir + "/nope"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

// No --in_path: the sample clip shipped in samples/sintel-lr (10 frames, 256x108).
TEST(CliInputs, NoInputUpscalesTheShippedSampleClip) {
  const std::string dir = test::temp_dir("cli-sample");
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-o", dir + "/out",
                                 "--num_inference_steps", "1", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int k = 1; k <= 10; ++k) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%04d.png", k);
    const std::string path = dir + "/out/sintel-lr/" + name;
    ASSERT_TRUE(fs::exists(path)) << path;
    const Image hr = read_image(path);
    EXPECT_EQ(hr.width, 1024) << path;
    EXPECT_EQ(hr.height, 432) << path;
  }
}

// The default model is the hub's; where the hub cannot be reached: one line
// saying so and how to pass a local model folder, and nothing written.
TEST(CliInputs, UnreachableHubIsOneLineNamingTheLocalFolderOption) {
  const std::string dir = test::temp_dir("cli-nohub");
  test::ScopedEnv endpoint("HF_ENDPOINT", "http://127.0.0.1:1");
  test::ScopedEnv cache("HF_HUB_CACHE", dir + "/hub");
  test::ScopedEnv offline("HF_HUB_OFFLINE", "");
  auto r = run_program("sdvsr", {"-o", dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("Jamichsu/Stream-DiffVSR"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot reach the hub"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model_id /path/to/"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

}  // namespace
}  // namespace sdvsr
