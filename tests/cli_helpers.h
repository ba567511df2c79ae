#pragma once
// Small helpers for the sdvsr command-line tests: synthetic frame folders,
// environment overrides, a child process that can be signalled, and the golden
// sequences' noise in one file.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "golden.h"
#include "media/image_io.h"
#include "run_program.h"
#include "weights/safetensors.h"

namespace sdvsr::test {

// A smooth moving pattern: frame t is frame 0 shifted by t pixels, so the
// optical flow between frames is meaningful.
inline Image pattern_frame(int w, int h, int t) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int u = x + t, v = y + t / 2;
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>((u * 37 + v * 11) % 256);
      p[1] = static_cast<uint8_t>(128 + ((u * v) % 97) - 48);
      p[2] = static_cast<uint8_t>((u * u + 3 * v) % 256);
    }
  return img;
}

// `count` frames frame_0001.png ... in `dir` (created).
inline void write_pattern_frames(const std::string& dir, int count, int w = 32, int h = 32) {
  std::filesystem::create_directories(dir);
  for (int t = 0; t < count; ++t) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%04d.png", t + 1);
    write_png(dir + name, pattern_frame(w, h, t));
  }
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

// A running program of the build folder, stdout/stderr into files.
class Child {
 public:
  Child(const std::string& program, const std::vector<std::string>& args) {
    dir_ = temp_dir("child");
    std::vector<std::string> argv{program_path(program)};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn_command(argv, dir_ + "/out", dir_ + "/err");
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }
  void signal(int sig) { kill(pid_, sig); }
  // Exit status, or 128 + signal when it was killed.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string err() const { return read_file_bytes(dir_ + "/err"); }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

// Waits up to `seconds` for `path` to exist.
inline bool wait_for_file(const std::string& path, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

inline int line_count(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// One noise file for both golden e2e sequences ('<sequence>/frame{k}.init_latents'),
// written into `dir`: the CLI's --noise.
inline std::string combined_noise_file(const std::string& dir) {
  std::map<std::string, Tensor> t;
  for (const std::string seq : {"seq_a", "seq_odd"}) {
    auto f = SafetensorsFile::open(golden_path("tiny/cases/e2e_" + seq + ".safetensors"));
    for (int k = 0; f->has("frame" + std::to_string(k) + ".init_latents"); ++k)
      t[seq + "/frame" + std::to_string(k) + ".init_latents"] =
          f->tensor("frame" + std::to_string(k) + ".init_latents").clone();
  }
  const std::string path = dir + "/noise.safetensors";
  save_safetensors(path, t);
  return path;
}

// How an 8-bit frame differs from a reference of the same size: values that
// differ at all, values off by more than one level, and the PSNR (inf when equal).
struct FrameDifference {
  size_t values = 0, differ = 0, worse = 0;
  double psnr_db = INFINITY;
};

inline FrameDifference frame_difference(const Image& got, const Image& ref) {
  FrameDifference d;
  d.values = ref.rgb.size();
  double squared = 0;
  for (size_t i = 0; i < ref.rgb.size(); ++i) {
    const int e = std::abs(int(got.rgb[i]) - int(ref.rgb[i]));
    d.differ += e != 0;
    d.worse += e > 1;
    squared += double(e) * e;
  }
  if (squared > 0) d.psnr_db = 10 * std::log10(255.0 * 255.0 * double(d.values) / squared);
  return d;
}

// Each frame of the golden e2e outputs (both sequences) against the file of the
// same name the program wrote under out/input/<sequence>/: check(difference)
// per frame of the right size. Returns how many frames were checked.
inline int check_golden_frames(const std::string& out,
                               const std::function<void(const FrameDifference&)>& check) {
  int frames = 0;
  for (const std::string seq : {"seq_a", "seq_odd"}) {
    const std::string refs = golden_path("tiny/cases/e2e/output/" + seq);
    for (const auto& e : std::filesystem::directory_iterator(refs)) {
      SCOPED_TRACE(e.path().string());
      const Image ref = read_image(e.path().string());
      const Image got = read_image(out + "/input/" + seq + "/" + e.path().filename().string());
      EXPECT_EQ(got.width, ref.width);
      EXPECT_EQ(got.height, ref.height);
      if (got.width != ref.width || got.height != ref.height) continue;
      check(frame_difference(got, ref));
      ++frames;
    }
  }
  return frames;
}

}  // namespace sdvsr::test
