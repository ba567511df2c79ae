// sdvsr end to end: the golden input folder through the CLI with the saved
// noise must give the original's PNG frames; bad inputs give one line and a
// non-zero exit without losing finished frames.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_helpers.h"
#include "golden.h"
#include "media/image_io.h"
#include "run_program.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::combined_noise_file;
using test::run_program;

int line_count(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(CliE2E, GoldenSequencesThroughTheCliMatchTheOriginalsFrames) {
  const std::string dir = test::temp_dir("cli-e2e");
  const std::string noise = combined_noise_file(dir);
  const std::string out = dir + "/out";
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path",
                                 golden_path("tiny/cases/e2e/input"), "--out_path", out, "--noise",
                                 noise, "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int frames = test::check_golden_frames(out, [](const test::FrameDifference& d) {
    EXPECT_EQ(d.worse, 0u);
    EXPECT_LE(double(d.differ), 1e-3 * double(d.values));
  });
  EXPECT_EQ(frames, 5);
}

// --flow-ahead on (the next frame's flow beside the diffusion; on the CPU it
// shares the cores) writes the very same files as computing it in order.
TEST(CliE2E, FlowAheadWritesTheSameFrames) {
  const std::string dir = test::temp_dir("cli-flow-ahead");
  const std::string noise = combined_noise_file(dir);
  for (const std::string mode : {"off", "on"}) {
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path",
                                   golden_path("tiny/cases/e2e/input"), "--out_path",
                                   dir + "/" + mode, "--noise", noise, "--flow-ahead", mode});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // seq_a has 3 frames and seq_odd 2: every later frame's flow came from ahead.
    const std::string said = r.out + r.err;
    if (mode == "on") {
      EXPECT_NE(said.find("3 optical flows computed ahead"), std::string::npos) << said;
    } else {
      EXPECT_EQ(said.find("computed ahead"), std::string::npos) << said;
    }
    // The CPU records nothing: no CUDA graph line whatever --cuda-graphs says.
    EXPECT_EQ(said.find("CUDA graphs"), std::string::npos) << said;
  }
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir + "/off")) {
    if (!e.is_regular_file()) continue;
    const fs::path twin = fs::path(dir) / "on" / fs::relative(e.path(), dir + "/off");
    ASSERT_TRUE(fs::exists(twin)) << twin;
    EXPECT_TRUE(test::read_file_bytes(e.path().string()) == test::read_file_bytes(twin.string()))
        << twin;
    ++files;
  }
  EXPECT_EQ(files, 5);
}

// The same seed gives the same frames; a different seed gives other noise.
TEST(CliE2E, SeededRunsAreReproducible) {
  const std::string dir = test::temp_dir("cli-seed");
  const std::string in = dir + "/in";
  fs::create_directories(in + "/clip");
  fs::copy(golden_path("tiny/cases/e2e/input/seq_a/frame_0001.png"), in + "/clip/a.png");
  fs::copy(golden_path("tiny/cases/e2e/input/seq_a/frame_0002.png"), in + "/clip/b.png");
  std::vector<std::string> outs;
  for (int run = 0; run < 3; ++run) {
    const std::string out = dir + "/out" + std::to_string(run);
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path", in,
                                   "--out_path", out, "--seed", run < 2 ? "7" : "8", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    outs.push_back(out + "/in/clip/b.png");
  }
  EXPECT_EQ(read_image(outs[0]).rgb, read_image(outs[1]).rgb);
  EXPECT_NE(read_image(outs[0]).rgb, read_image(outs[2]).rgb);
}

TEST(CliE2E, BadCommandLineExitsTwoWithOneLine) {
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_pth", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("in_pth"), std::string::npos) << r.err;
  auto bad_value = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--threads", "many"});
  EXPECT_EQ(bad_value.exit_code, 2);
  EXPECT_EQ(line_count(bad_value.err), 1) << bad_value.err;
  EXPECT_NE(bad_value.err.find("threads"), std::string::npos) << bad_value.err;
}

TEST(CliE2E, MissingModelFolderNamesIt) {
  const std::string dir = test::temp_dir("cli-nomodel");
  fs::create_directories(dir + "/in/s");
  fs::copy(golden_path("tiny/cases/e2e/input/seq_a/frame_0001.png"), dir + "/in/s/f.png");
  auto r = run_program("sdvsr", {"--model_id", dir + "/nope", "--in_path", dir + "/in",
                                 "--out_path", dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(dir + "/nope"), std::string::npos) << r.err;
}

// With --flow-ahead on the corrupt frame is met early (read to start its
// flow) but still reported in order, after the frame before it is written.
TEST(CliE2E, CorruptFrameStopsWithOneLineAndKeepsFinishedFrames) {
  for (const std::string flow_ahead : {"auto", "on"}) {
    SCOPED_TRACE("--flow-ahead " + flow_ahead);
    const std::string dir = test::temp_dir("cli-corrupt-" + flow_ahead);
    const std::string in = dir + "/in";
    fs::create_directories(in + "/s");
    fs::copy(golden_path("tiny/cases/e2e/input/seq_a/frame_0001.png"), in + "/s/frame_0001.png");
    std::ofstream(in + "/s/frame_0002.png") << "not a png at all";
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path", in,
                                   "--out_path", dir + "/out", "-q", "--flow-ahead", flow_ahead});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(line_count(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("frame_0002.png"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/out/in/s/frame_0001.png"));
    EXPECT_FALSE(fs::exists(dir + "/out/in/s/frame_0002.png"));
    // Nothing half-written; the resume state of the finished frame is kept (--resume).
    for (const auto& e : fs::directory_iterator(dir + "/out/in/s"))
      if (e.path().filename() != ".sdvsr-state") {
        EXPECT_EQ(e.path().extension(), ".png") << "left behind: " << e.path();
      }
  }
}

TEST(CliE2E, RefusesToWriteOverItsInput) {
  const std::string dir = test::temp_dir("cli-overwrite");
  fs::create_directories(dir + "/in/s");
  fs::copy(golden_path("tiny/cases/e2e/input/seq_a/frame_0001.png"), dir + "/in/s/f.png");
  const auto before = fs::file_size(dir + "/in/s/f.png");
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path", dir + "/in",
                                 "--out_path", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(fs::file_size(dir + "/in/s/f.png"), before);
}

}  // namespace
}  // namespace sdvsr
