#pragma once
// Reads and decodes the next LR frame on a worker thread while the current
// one is being upscaled: at most one frame ahead, so memory stays that of two
// frames whatever the clip length.
#include <future>
#include <optional>

#include "cli/frame_io.h"

namespace sdvsr::cli {

class Prefetcher {
 public:
  explicit Prefetcher(FrameSource& source) : source_(source) { start(); }
  ~Prefetcher() {
    if (pending_.valid()) pending_.wait();
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next frame (nullopt at the end); rethrows the reader's error for the
  // frame it failed on, in order.
  std::optional<Frame> next() {
    std::optional<Frame> frame = pending_.get();
    if (frame) start();
    return frame;
  }

 private:
  void start() {
    pending_ = std::async(std::launch::async, [this] { return source_.next(); });
  }

  FrameSource& source_;
  std::future<std::optional<Frame>> pending_;
};

}  // namespace sdvsr::cli
