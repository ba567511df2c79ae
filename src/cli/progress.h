#pragma once
// Everything sdvsr tells the user while it works, on stderr (stdout is kept
// for y4m output). Text mode on a terminal: one refreshing line per sequence
// (frames done/total, fps, ETA); text mode elsewhere: one line per frame;
// --log json: one JSON object per frame; -q: nothing but errors. Safe to call
// from the read-ahead thread (media warnings).
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "cli/options.h"

namespace sdvsr::cli {

class Progress {
 public:
  explicit Progress(const Options& o);

  // `done` frames of `total` were finished by an earlier run (--resume).
  void begin_sequence(const std::string& seq, std::optional<int64_t> total, int64_t done);
  // Frame `index` (0-based) of `seq`, read from `frame`, took `ms` and went to `path`.
  void frame_done(const std::string& seq, int64_t index, const std::string& frame, double ms,
                  const std::string& path);
  void end_sequence();

  void info(const std::string& line);  // text mode only
  void warn(const std::string& line);  // not with -q
  void error(const std::string& line);  // always: "sdvsr: <line>", or a JSON object with --log json
  void finish_line();  // ends a refreshing line before other output (an error)

 private:
  void close_line();  // finish_line with the lock held

  std::mutex mutex_;
  bool quiet_, json_, tty_;
  bool line_open_ = false;
  std::optional<int64_t> total_;
  int64_t done_before_ = 0, done_now_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sdvsr::cli
