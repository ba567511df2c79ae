// --resume and interrupts: a run stopped after some frames (by the test hook
// or a real SIGINT) and resumed gives frames bit-identical to an
// uninterrupted run; finished sequences are skipped; a state saved with other
// settings is refused, naming what differs.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "run_program.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::run_program;

constexpr int kFrames = 5;

class CliResume : public testing::Test {
 protected:
  // One input (sequences a: 5 frames, b: 3 frames) and its uninterrupted output.
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("cli-resume"));
    test::write_pattern_frames(in() + "/a", kFrames, 48, 32);
    test::write_pattern_frames(in() + "/b", 3, 48, 32);
    auto r = run_program("sdvsr", args(*dir_ + "/ref", {"-q"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static std::string in() { return *dir_ + "/in"; }
  // One thread: frames are bit-identical for the same thread count.
  static std::vector<std::string> args(const std::string& out, std::vector<std::string> extra,
                                       const std::string& seed = "11",
                                       const std::string& steps = "2") {
    std::vector<std::string> a{"--model_id", golden_path("tiny"), "-i", in(), "-o", out,
                               "--seed", seed, "--threads", "1", "--num_inference_steps", steps};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::vector<std::string> frame_names(const std::string& seq) {
    return seq == "a" ? std::vector<std::string>{"frame_0001.png", "frame_0002.png",
                                                 "frame_0003.png", "frame_0004.png",
                                                 "frame_0005.png"}
                      : std::vector<std::string>{"frame_0001.png", "frame_0002.png",
                                                 "frame_0003.png"};
  }
  // Every frame of `out` equals the uninterrupted run's, bit for bit.
  static void expect_same_as_reference(const std::string& out) {
    for (const std::string seq : {"a", "b"})
      for (const std::string& f : frame_names(seq)) {
        const std::string got = out + "/in/" + seq + "/" + f;
        ASSERT_TRUE(fs::exists(got)) << got;
        EXPECT_EQ(read_image(got).rgb, read_image(*dir_ + "/ref/in/" + seq + "/" + f).rgb) << got;
      }
    for (const std::string seq : {"a", "b"})
      for (const auto& e : fs::directory_iterator(out + "/in/" + seq))
        EXPECT_EQ(e.path().extension(), ".png") << "left behind: " << e.path();
  }
  static int json_frames(const std::string& err, const std::string& seq) {
    std::istringstream lines(err);
    int n = 0;
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("seq") && j["seq"] == seq) ++n;
    }
    return n;
  }
  static std::string* dir_;
};
std::string* CliResume::dir_ = nullptr;

TEST_F(CliResume, StoppedAfterTwoFramesThenResumedIsBitIdentical) {
  const std::string out = *dir_ + "/hook";
  {
    test::ScopedEnv stop("SDVSR_TEST_STOP_AFTER", "2");
    auto r = run_program("sdvsr", args(out, {"-q"}));
    ASSERT_EQ(r.exit_code, 130) << r.err;
    EXPECT_EQ(r.err, "");
  }
  EXPECT_TRUE(fs::exists(out + "/in/a/frame_0002.png"));
  EXPECT_FALSE(fs::exists(out + "/in/a/frame_0003.png"));
  ASSERT_TRUE(fs::exists(out + "/in/a/.sdvsr-state"));
  EXPECT_FALSE(fs::exists(out + "/in/b"));

  auto r = run_program("sdvsr", args(out, {"--resume", "--log", "json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json_frames(r.err, "a"), kFrames - 2) << r.err;
  EXPECT_EQ(json_frames(r.err, "b"), 3) << r.err;
  EXPECT_FALSE(fs::exists(out + "/in/a/.sdvsr-state"));
  expect_same_as_reference(out);
}

TEST_F(CliResume, FinishedSequencesAreSkipped) {
  const std::string out = *dir_ + "/skip";
  {
    test::ScopedEnv stop("SDVSR_TEST_STOP_AFTER", std::to_string(kFrames + 1));
    auto r = run_program("sdvsr", args(out, {"-q"}));
    ASSERT_EQ(r.exit_code, 130) << r.err;
  }
  EXPECT_FALSE(fs::exists(out + "/in/a/.sdvsr-state"));
  EXPECT_TRUE(fs::exists(out + "/in/b/.sdvsr-state"));
  const auto a_time = fs::last_write_time(out + "/in/a/frame_0001.png");
  auto r = run_program("sdvsr", args(out, {"--resume", "--log", "json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json_frames(r.err, "a"), 0) << r.err;
  EXPECT_EQ(json_frames(r.err, "b"), 2) << r.err;
  EXPECT_EQ(fs::last_write_time(out + "/in/a/frame_0001.png"), a_time);
  expect_same_as_reference(out);
  // Everything done: another --resume has nothing to do.
  auto again = run_program("sdvsr", args(out, {"--resume", "--log", "json"}));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json_frames(again.err, "a") + json_frames(again.err, "b"), 0) << again.err;
}

TEST_F(CliResume, StateFromOtherSettingsIsRefusedNamingWhatDiffers) {
  const std::string out = *dir_ + "/mismatch";
  {
    test::ScopedEnv stop("SDVSR_TEST_STOP_AFTER", "1");
    ASSERT_EQ(run_program("sdvsr", args(out, {"-q"})).exit_code, 130);
  }
  auto r = run_program("sdvsr", args(out, {"--resume", "-q"}, "12"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(".sdvsr-state"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("input frames"), std::string::npos) << r.err;
  auto steps = run_program("sdvsr", args(out, {"--resume", "-q"}, "11", "3"));
  EXPECT_EQ(steps.exit_code, 1);
  EXPECT_NE(steps.err.find("steps"), std::string::npos) << steps.err;
  EXPECT_FALSE(fs::exists(out + "/in/a/frame_0002.png"));
  // Without --resume the run starts over and completes.
  auto fresh = run_program("sdvsr", args(out, {"-q"}));
  EXPECT_EQ(fresh.exit_code, 0) << fresh.err;
  expect_same_as_reference(out);
  EXPECT_FALSE(fs::exists(out + "/in/a/.sdvsr-state"));
}

// The thread count is advisory: a resume on another count continues, with one
// warning (oneDNN's blockings, and so the last bits, depend on it).
TEST_F(CliResume, OtherThreadCountContinuesWithAWarning) {
  const std::string out = *dir_ + "/threads";
  {
    test::ScopedEnv stop("SDVSR_TEST_STOP_AFTER", "2");
    ASSERT_EQ(run_program("sdvsr", args(out, {"-q"})).exit_code, 130);
  }
  std::vector<std::string> two = args(out, {"--resume", "--log", "json"});
  const auto t = std::find(two.begin(), two.end(), "--threads");
  ASSERT_NE(t, two.end());
  *(t + 1) = "2";
  auto r = run_program("sdvsr", two);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json_frames(r.err, "a"), kFrames - 2) << r.err;
  int warnings = 0;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not JSON: " << line;
    if (j.contains("warning")) {
      ++warnings;
      const std::string w = j["warning"];
      EXPECT_NE(w.find("1 threads, continuing on 2"), std::string::npos) << w;
    }
  }
  EXPECT_EQ(warnings, 1) << r.err;
  for (const std::string& f : frame_names("a")) EXPECT_TRUE(fs::exists(out + "/in/a/" + f)) << f;
  EXPECT_FALSE(fs::exists(out + "/in/a/.sdvsr-state"));
}

// A frame that cannot be read stops the run with the state of the frames
// before it saved; once the file is fixed, --resume finishes bit-identically.
TEST_F(CliResume, FailedFrameSavesStateAndResumeContinues) {
  const std::string in_fail = *dir_ + "/fail/a", out = *dir_ + "/failout";
  fs::create_directories(in_fail);
  for (const char* f : {"frame_0001.png", "frame_0002.png"})
    fs::copy(in() + "/a/" + f, in_fail + "/" + f);
  std::ofstream(in_fail + "/frame_0003.png") << "truncated";
  auto with_input = [&](std::vector<std::string> a) {
    a[3] = *dir_ + "/fail";  // "-i" value
    return a;
  };
  auto r = run_program("sdvsr", with_input(args(out, {"-q"})));
  ASSERT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("frame_0003.png"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(out + "/fail/a/.sdvsr-state"));
  fs::copy(in() + "/a/frame_0003.png", in_fail + "/frame_0003.png",
           fs::copy_options::overwrite_existing);
  auto resumed = run_program("sdvsr", with_input(args(out, {"--resume", "--log", "json"})));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(json_frames(resumed.err, "a"), 1) << resumed.err;
  EXPECT_FALSE(fs::exists(out + "/fail/a/.sdvsr-state"));
  for (const char* f : {"frame_0001.png", "frame_0002.png", "frame_0003.png"})
    EXPECT_EQ(read_image(out + "/fail/a/" + f).rgb, read_image(*dir_ + "/ref/in/a/" + f).rgb) << f;
}

TEST_F(CliResume, RealSigintStopsCleanlyAndResumesBitIdentical) {
  const std::string out = *dir_ + "/sigint";
  {
    test::Child child("sdvsr", args(out, {"-q"}));
    ASSERT_TRUE(child.started());
    ASSERT_TRUE(test::wait_for_file(out + "/in/a/frame_0001.png", 120));
    child.signal(SIGINT);
    ASSERT_EQ(child.wait(), 130) << child.err();
  }
  ASSERT_TRUE(fs::exists(out + "/in/a/.sdvsr-state"));
  EXPECT_FALSE(fs::exists(out + "/in/a/frame_0005.png"));
  auto r = run_program("sdvsr", args(out, {"--resume", "-q"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_reference(out);
}

TEST_F(CliResume, SecondSignalAbortsWithoutHalfWrittenFiles) {
  const std::string out = *dir_ + "/abort";
  test::Child child("sdvsr", args(out, {"-q"}));
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(test::wait_for_file(out + "/in/a/frame_0001.png", 120));
  child.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(), 128 + SIGTERM);
  for (const auto& e : fs::directory_iterator(out + "/in/a")) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == ".sdvsr-state" || e.path().extension() == ".png") << name;
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace sdvsr
