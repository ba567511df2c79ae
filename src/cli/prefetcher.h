#pragma once
// Reads and decodes the next LR frame on a worker thread while the current
// one is being upscaled: at most one frame ahead, so memory stays that of two
// frames whatever the clip length.
#include <exception>
#include <future>
#include <optional>
#include <utility>

#include "cli/frame_io.h"

namespace sdvsr::cli {

class Prefetcher {
 public:
  explicit Prefetcher(FrameSource& source) : source_(source) { start(); }
  ~Prefetcher() {
    if (pending_.valid()) pending_.wait();
  }
  // (pending_ is invalid only between peek() and the next(), which restarts it.)
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next frame (nullopt at the end); rethrows the reader's error for the
  // frame it failed on, in order.
  std::optional<Frame> next() {
    std::optional<Frame> frame;
    if (peeked_) {
      if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      frame = std::move(*peeked_);
      peeked_.reset();
    } else {
      frame = pending_.get();
    }
    if (frame) start();
    return frame;
  }

  // The frame next() returns, without taking it (waits for it to be read);
  // nullptr at the end, or when reading it failed: next() reports that.
  const Frame* peek() {
    if (!peeked_) {
      try {
        peeked_.emplace(pending_.get());
      } catch (...) {
        error_ = std::current_exception();
        peeked_.emplace(std::nullopt);
      }
    }
    return *peeked_ ? &**peeked_ : nullptr;
  }

 private:
  void start() {
    pending_ = std::async(std::launch::async, [this] { return source_.next(); });
  }

  FrameSource& source_;
  std::future<std::optional<Frame>> pending_;
  std::optional<std::optional<Frame>> peeked_;  // taken from pending_ by peek()
  std::exception_ptr error_;                    // peek()'s read error, for next()
};

}  // namespace sdvsr::cli
