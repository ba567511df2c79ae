#include "cli/sample_clip.h"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

constexpr const char* kClipName = "sintel-lr";

// The running executable's folder (/proc/self/exe; argv[0] as a fallback).
fs::path executable_dir(const char* argv0) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec && argv0) exe = fs::absolute(argv0, ec);
  return exe.parent_path();
}

}  // namespace

std::string sample_clip_dir(const char* argv0) {
  std::vector<fs::path> candidates;
#ifdef SDVSR_SOURCE_SAMPLES_DIR
  candidates.push_back(fs::path(SDVSR_SOURCE_SAMPLES_DIR) / kClipName);
#endif
  const fs::path exe_dir = executable_dir(argv0);
  candidates.push_back(exe_dir / ".." / "samples" / kClipName);
  candidates.push_back(exe_dir / ".." / "share" / "sdvsr" / "samples" / kClipName);
  std::string looked;
  for (const fs::path& c : candidates) {
    std::error_code ec;
    if (fs::is_directory(c, ec)) return fs::weakly_canonical(c, ec).string();
    looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  throw std::runtime_error("no --in_path given and the sample clip is not installed (looked in " +
                           looked + "); pass --in_path FOLDER_OR_VIDEO");
}

}  // namespace sdvsr::cli
