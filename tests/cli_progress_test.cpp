// Progress and logs on stderr: --log json gives one object per frame; -q
// prints nothing; plain text (not a terminal) gives a line per frame.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <pty.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "run_program.h"

extern char** environ;

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::run_program;

class CliProgress : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("cli-progress"));
    test::write_pattern_frames(*dir_ + "/in/a", 2, 48, 32);
    test::write_pattern_frames(*dir_ + "/in/b", 1, 48, 32);
  }
  static test::ProgramResult run(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{"--model_id", golden_path("tiny"), "-i", *dir_ + "/in", "-o",
                                  *dir_ + "/" + out, "--threads", "1", "--num_inference_steps", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_program("sdvsr", args);
  }
  static std::string* dir_;
};
std::string* CliProgress::dir_ = nullptr;

TEST_F(CliProgress, JsonLogIsOneObjectPerFrame) {
  auto r = run("json", {"--log", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  std::istringstream lines(r.err);
  std::vector<nlohmann::json> frames;
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j = nlohmann::json::parse(line);  // throws (fails) on a non-JSON line
    frames.push_back(j);
  }
  ASSERT_EQ(frames.size(), 3u) << r.err;
  const char* seqs[] = {"a", "a", "b"};
  const int indices[] = {0, 1, 0};
  for (size_t i = 0; i < 3; ++i) {
    const auto& j = frames[i];
    EXPECT_EQ(j.at("seq"), seqs[i]);
    EXPECT_EQ(j.at("index"), indices[i]);
    EXPECT_EQ(j.at("frame"), "frame_000" + std::to_string(indices[i] + 1) + ".png");
    EXPECT_GT(j.at("ms").get<double>(), 0.0);
    const std::string path = j.at("path");
    EXPECT_EQ(path, *dir_ + "/json/in/" + seqs[i] + "/" + j.at("frame").get<std::string>());
    EXPECT_TRUE(fs::exists(path)) << path;
  }
}

// A failure under --log json is one JSON object too, so that every line parses.
TEST_F(CliProgress, JsonLogReportsAFailureAsOneObject) {
  std::vector<std::string> args{"--model_id", golden_path("tiny"), "-i", *dir_ + "/missing", "-o",
                                *dir_ + "/json-fail", "--log", "json"};
  auto r = run_program("sdvsr", args);
  EXPECT_EQ(r.exit_code, 1);
  ASSERT_EQ(test::line_count(r.err), 1) << r.err;
  const auto j = nlohmann::json::parse(r.err, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.err;
  EXPECT_EQ(j.value("level", ""), "error") << r.err;
  EXPECT_NE(j.value("error", "").find(*dir_ + "/missing"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(*dir_ + "/json-fail"));
}

TEST_F(CliProgress, QuietPrintsNothing) {
  auto r = run("quiet", {"-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
}

TEST_F(CliProgress, TextLogHasALinePerFrameOffATerminal) {
  auto r = run("text", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("a: frame 1/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("a: frame 2/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("b: frame 1/1"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "no refreshing line off a terminal";
}

// On a terminal: one line per sequence, redrawn with frames done/total, fps and ETA.
TEST_F(CliProgress, TerminalGetsARefreshingLine) {
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  const std::string exe = test::program_path("sdvsr");
  std::vector<std::string> args_s{exe, "--model_id", golden_path("tiny"), "-i", *dir_ + "/in",
                                  "-o", *dir_ + "/tty", "--threads", "1",
                                  "--num_inference_steps", "1"};
  std::vector<char*> argv;
  for (auto& a : args_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, (*dir_ + "/tty.stdout").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, slave, 2);
  posix_spawn_file_actions_addclose(&fa, master);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(slave);
  std::string seen;
  char buf[4096];
  for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) seen.append(buf, n);  // EIO at exit
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  EXPECT_NE(seen.find("\ra: 1/2 frames, "), std::string::npos) << seen;
  EXPECT_NE(seen.find("\ra: 2/2 frames, "), std::string::npos) << seen;
  EXPECT_NE(seen.find("\rb: 1/1 frames, "), std::string::npos) << seen;
  EXPECT_NE(seen.find(" fps, ETA "), std::string::npos) << seen;
  EXPECT_EQ(seen.find("frame_0001.png ("), std::string::npos) << "no per-frame lines: " << seen;
}

}  // namespace
}  // namespace sdvsr
