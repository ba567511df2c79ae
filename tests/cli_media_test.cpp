// sdvsr on streams: a video file in and out (lossless RGB: the decoded output
// equals the frame-folder output of the same frames and seed bit for bit), y4m
// on stdin and stdout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "golden.h"
#include "media/frame_folder.h"
#include "media/image_io.h"
#include "media/video_reader.h"
#include "media/video_writer.h"
#include "media/y4m.h"
#include "run_program.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::run_program;

std::vector<std::string> common_args() {
  return {"--model_id", golden_path("tiny"), "--num_inference_steps", "2", "--threads", "1",
          "--seed", "5", "-q"};
}

// Frames as the folder path writes them: OUT/in/<names>, in order.
std::vector<Image> folder_run(const std::string& dir, int count) {
  test::write_pattern_frames(dir + "/in", count, 32, 32);
  auto args = common_args();
  args.insert(args.end(), {"-i", dir + "/in", "-o", dir + "/out"});
  auto r = run_program("sdvsr", args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<Image> frames;
  for (const std::string& p : list_frames(dir + "/out/in")) frames.push_back(read_image(p));
  return frames;
}

// The 32x32 frames of `frames_dir` as a lossless RGB video (ffv1, bgr0) at 25 fps.
void write_lossless_clip(const std::string& frames_dir, const std::string& path) {
  VideoEncodeOptions enc;
  enc.codec = "ffv1";
  enc.pix_fmt = "bgr0";
  VideoWriter w = VideoWriter::create(path, 32, 32, Rational{25, 1}, enc);
  int k = 0;
  for (const std::string& p : list_frames(frames_dir)) w.write(read_image(p), k++);
  w.finish();
}

// The writer's warnings (here: FFmpeg 5.1's ffv1 has no gbrp, so bgr0 is used)
// go through the progress log: silent with -q, JSON objects with --log json.
TEST(CliMedia, VideoWarningsFollowQuietAndJsonLogging) {
  const std::string dir = test::temp_dir("cli-video-warn");
  test::write_pattern_frames(dir + "/in", 2, 32, 32);
  write_lossless_clip(dir + "/in", dir + "/clip.mkv");
  auto args = common_args();  // has -q
  args.insert(args.end(), {"-i", dir + "/clip.mkv", "--codec", "ffv1", "--pix-fmt", "gbrp"});
  auto quiet_args = args;
  quiet_args.insert(quiet_args.end(), {"-o", dir + "/quiet.mkv"});
  auto quiet = run_program("sdvsr", quiet_args);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");

  args.erase(std::find(args.begin(), args.end(), "-q"));
  args.insert(args.end(), {"-o", dir + "/json.mkv", "--log", "json"});
  auto json = run_program("sdvsr", args);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  int warnings = 0, frames = 0;
  std::istringstream lines(json.err);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not JSON: " << line;
    if (j.contains("warning")) {
      ++warnings;
      EXPECT_NE(j["warning"].get<std::string>().find("gbrp"), std::string::npos) << line;
    }
    if (j.contains("frame")) ++frames;
  }
  EXPECT_GE(warnings, 1) << json.err;
  EXPECT_EQ(frames, 2) << json.err;
}

TEST(CliMedia, LosslessVideoEqualsFrameFolderOutput) {
  const std::string dir = test::temp_dir("cli-video");
  const std::vector<Image> ref = folder_run(dir, 3);
  ASSERT_EQ(ref.size(), 3u);
  // The same LR frames as a lossless RGB video.
  write_lossless_clip(dir + "/in", dir + "/clip.mkv");
  auto args = common_args();
  args.insert(args.end(), {"-i", dir + "/clip.mkv", "-o", dir + "/up.mkv", "--codec", "ffv1",
                           "--pix-fmt", "bgr0"});
  auto r = run_program("sdvsr", args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  VideoReader reader = VideoReader::open(dir + "/up.mkv");
  EXPECT_EQ(reader.frame_rate(), (Rational{25, 1}));
  size_t k = 0;
  while (auto f = reader.next()) {
    ASSERT_LT(k, ref.size());
    EXPECT_EQ(f->image.width, 128);
    EXPECT_EQ(f->image.rgb, ref[k].rgb) << "frame " << k;
    ++k;
  }
  EXPECT_EQ(k, ref.size());
}

TEST(CliMedia, Y4mThroughStdinAndStdoutEqualsFolderOutputWithinY4mRounding) {
  const std::string dir = test::temp_dir("cli-y4m");
  const std::vector<Image> ref = folder_run(dir, 2);
  ASSERT_EQ(ref.size(), 2u);
  // Folder in, y4m out: the frames as 4:4:4 y4m on stdout, nothing else there.
  auto args = common_args();
  args.insert(args.end(), {"-i", dir + "/in", "-o", "-"});
  auto r = run_program("sdvsr", args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    std::ofstream(dir + "/up.y4m", std::ios::binary) << r.out;
    std::FILE* f = std::fopen((dir + "/up.y4m").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    Y4mReader y(f, dir + "/up.y4m");
    for (size_t k = 0; k < ref.size(); ++k) {
      auto im = y.next();
      ASSERT_TRUE(im.has_value());
      ASSERT_EQ(im->rgb.size(), ref[k].rgb.size());
      int worst = 0;
      for (size_t i = 0; i < im->rgb.size(); ++i)
        worst = std::max(worst, std::abs(int(im->rgb[i]) - int(ref[k].rgb[i])));
      EXPECT_LE(worst, 3) << "frame " << k;  // limited-range YCbCr 4:4:4 rounding
    }
    EXPECT_FALSE(y.next().has_value());
    std::fclose(f);
  }
  // y4m on stdin into a folder: frame_000001.png ...
  std::string cmd = std::string(SDVSR_BINARY_DIR) + "/sdvsr";
  for (const auto& a : common_args()) cmd += " '" + a + "'";
  cmd += " -i - -o '" + dir + "/from-stdin' < '" + dir + "/up.y4m' 2>'" + dir + "/err'";
  // (the 128x128 y4m frames go in as LR frames here: 512x512 out)
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(fs::exists(dir + "/from-stdin/frame_000001.png"));
  EXPECT_TRUE(fs::exists(dir + "/from-stdin/frame_000002.png"));
  EXPECT_EQ(read_image(dir + "/from-stdin/frame_000002.png").width, 512);
}

// A 32x32 ffv1 clip of `pts.size()` pattern frames at those timestamps (in 1/rate).
void write_clip(const std::string& dir, const std::string& path, Rational rate,
                const std::vector<int64_t>& pts) {
  test::write_pattern_frames(dir + "/clip-frames", static_cast<int>(pts.size()), 32, 32);
  VideoEncodeOptions enc;
  enc.codec = "ffv1";
  enc.pix_fmt = "bgr0";
  VideoWriter w = VideoWriter::create(path, 32, 32, rate, enc);
  size_t k = 0;
  for (const std::string& p : list_frames(dir + "/clip-frames")) w.write(read_image(p), pts[k++]);
  w.finish();
  fs::remove_all(dir + "/clip-frames");
}

// y4m has one rate: a variable-rate video piped to "-o -" comes out at the
// input's average rate, with one warning; a constant-rate one without any.
TEST(CliMedia, VariableRateVideoToY4mWarnsOnceAndUsesTheAverageRate) {
  const std::string dir = test::temp_dir("cli-vfr-y4m");
  write_clip(dir, dir + "/vfr.mkv", Rational{1000, 1}, {0, 40, 200, 240});
  write_clip(dir, dir + "/cfr.mkv", Rational{25, 1}, {0, 1, 2, 3});
  auto run = [&](const std::string& clip, int* warnings) {
    auto args = common_args();
    args.erase(std::find(args.begin(), args.end(), "-q"));
    args.insert(args.end(), {"-i", clip, "-o", "-", "--log", "json"});
    auto r = run_program("sdvsr", args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    *warnings = 0;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(j.is_object()) << "not JSON: " << line;
      if (j.is_object() && j.contains("warning")) {
        ++*warnings;
        EXPECT_NE(j["warning"].get<std::string>().find("variable frame rate"), std::string::npos) << line;
      }
    }
    return r.out;
  };
  for (const char* name : {"vfr", "cfr"}) {
    const std::string clip = dir + "/" + name + ".mkv";
    int warnings = -1;
    const std::string y4m = run(clip, &warnings);
    EXPECT_EQ(warnings, std::string(name) == "vfr" ? 1 : 0) << name;
    std::ofstream(dir + "/out.y4m", std::ios::binary) << y4m;
    std::FILE* f = std::fopen((dir + "/out.y4m").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    Y4mReader y(f, dir + "/out.y4m");
    const Rational rate = VideoReader::open(clip).frame_rate();
    EXPECT_EQ(y.header().fps_num, rate.num) << name;
    EXPECT_EQ(y.header().fps_den, rate.den) << name;
    int frames = 0;
    while (y.next()) ++frames;
    EXPECT_EQ(frames, 4) << name;
    std::fclose(f);
  }
}

TEST(CliMedia, CorruptVideoIsOneLineAndNoOutput) {
  const std::string dir = test::temp_dir("cli-badvideo");
  std::ofstream(dir + "/bad.mp4") << "this is not a video";
  auto args = common_args();
  args.insert(args.end(), {"-i", dir + "/bad.mp4", "-o", dir + "/out.mp4"});
  auto r = run_program("sdvsr", args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("bad.mp4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out.mp4"));
}

}  // namespace
}  // namespace sdvsr
