#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

namespace sdvsr::cli {

namespace {

std::string clock_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

Progress::Progress(const Options& o)
    : quiet_(o.quiet), json_(o.log == LogMode::kJson), tty_(::isatty(2) == 1) {}

void Progress::begin_sequence(const std::string&, std::optional<int64_t> total, int64_t done) {
  std::lock_guard<std::mutex> lock(mutex_);
  total_ = total;
  done_before_ = done;
  done_now_ = 0;
  start_ = std::chrono::steady_clock::now();
}

void Progress::frame_done(const std::string& seq, int64_t index, const std::string& frame,
                          double ms, const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++done_now_;
  if (quiet_) return;
  if (json_) {
    const nlohmann::json j = {{"seq", seq}, {"index", index}, {"frame", frame},
                              {"ms", ms},   {"path", path}};
    std::cerr << j.dump() << "\n" << std::flush;
    return;
  }
  const int64_t done = done_before_ + done_now_;
  std::string of;  // "/total" (appended piecewise: GCC 12 -Wrestrict false positive)
  if (total_) of.append("/").append(std::to_string(*total_));
  if (!tty_) {
    std::cerr << seq << ": frame " << done << of << " -> " << path << " (" << static_cast<long>(ms)
              << " ms)\n";
    return;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fps = secs > 0 ? done_now_ / secs : 0.0;
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.2f fps", fps);
  std::string line = seq + ": " + std::to_string(done) + of + " frames, " + rate;
  if (total_ && fps > 0) line += ", ETA " + clock_text((*total_ - done) / fps);
  std::cerr << "\r" << line << "\033[K" << std::flush;
  line_open_ = true;
}

void Progress::end_sequence() { finish_line(); }

void Progress::finish_line() {
  std::lock_guard<std::mutex> lock(mutex_);
  close_line();
}

void Progress::close_line() {
  if (line_open_) std::cerr << "\n";
  line_open_ = false;
}

void Progress::info(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (quiet_ || json_) return;
  close_line();
  std::cerr << line << "\n";
}

void Progress::warn(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (quiet_) return;
  close_line();
  if (json_)
    std::cerr << nlohmann::json{{"level", "warning"}, {"warning", line}}.dump() << "\n";
  else
    std::cerr << "sdvsr: warning: " << line << "\n";
}

void Progress::error(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  close_line();
  if (json_)  // so that every line on stderr parses, failures included
    std::cerr << nlohmann::json{{"level", "error"}, {"error", line}}.dump() << "\n";
  else
    std::cerr << "sdvsr: " << line << "\n";
}

}  // namespace sdvsr::cli
