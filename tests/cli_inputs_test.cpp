// Input kinds: a folder of sequence folders, or a folder of frames (one
// sequence, OUT/<name of IN>/<names>).
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sdvsr
