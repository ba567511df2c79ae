#pragma once
// FrameSource / FrameSink over media/: video files (FFmpeg) and y4m pipes.
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cli/frame_io.h"
#include "media/video_reader.h"
#include "media/video_writer.h"
#include "media/y4m.h"

namespace sdvsr::cli {

// Shared by one video input's source and sink: the open reader (the writer
// copies its audio, subtitles and metadata and keeps its timing) and the pts
// of frames read but not yet written, in order (the source may run ahead).
struct VideoLink {
  std::mutex mutex;
  std::shared_ptr<VideoReader> reader;
  std::deque<int64_t> pending_pts;
};

inline std::string numbered_frame_name(int64_t index) {  // 0-based -> frame_000001.png
  char buf[32];
  std::snprintf(buf, sizeof(buf), "frame_%06lld.png", static_cast<long long>(index + 1));
  return buf;
}

// y4m has one frame rate, so a variable-rate video piped to "-o -" comes out at
// its average rate. This says so once, at the first frame interval that is not
// the average one (a tick of slack for time bases that cannot hold the rate
// exactly, e.g. 30000/1001 in milliseconds).
class VariableRateCheck {
 public:
  VariableRateCheck(const VideoReader& reader, MediaWarning warn)
      : path_(reader.path()), rate_(reader.frame_rate()), warn_(std::move(warn)) {
    const Rational tb = reader.time_base();
    if (tb.num > 0 && rate_.num > 0)
      interval_ = static_cast<double>(tb.den) * rate_.den / (static_cast<double>(tb.num) * rate_.num);
  }
  void see(int64_t pts) {
    if (prev_ && !warned_ && interval_ > 0 && warn_) {
      const double off = std::abs(static_cast<double>(pts - *prev_) - interval_);
      if (off > 1.0 + 0.01 * interval_) {
        warned_ = true;
        warn_(path_ + ": variable frame rate; y4m on stdout is constant-rate, so it gets the average "
              "rate " + std::to_string(rate_.num) + "/" + std::to_string(rate_.den) +
              " (write a video file with -o to keep the timestamps)");
      }
    }
    prev_ = pts;
  }

 private:
  std::string path_;
  Rational rate_;
  MediaWarning warn_;
  double interval_ = 0;  // in time-base ticks
  std::optional<int64_t> prev_;
  bool warned_ = false;
};

class VideoFileSource : public FrameSource {
 public:
  VideoFileSource(const std::string& path, std::shared_ptr<VideoLink> link, MediaWarning warn = {})
      : link_(std::move(link)), warn_(warn) {
    auto reader = std::make_shared<VideoReader>(VideoReader::open(path, std::move(warn)));
    std::lock_guard<std::mutex> lock(link_->mutex);
    link_->reader = std::move(reader);
  }
  // For y4m output: warn once if the timestamps are not evenly spaced.
  void check_constant_rate() { rate_check_.emplace(*link_->reader, warn_); }
  std::optional<Frame> next() override {
    std::optional<VideoFrame> f = link_->reader->next();
    if (!f) return std::nullopt;
    if (rate_check_) rate_check_->see(f->pts);
    {
      std::lock_guard<std::mutex> lock(link_->mutex);
      link_->pending_pts.push_back(f->pts);
    }
    return Frame{std::move(f->image), numbered_frame_name(f->index)};
  }
  std::optional<int64_t> total() const override {
    const int64_t n = link_->reader->frame_count();  // exact, or estimated from the duration
    return n >= 0 ? std::optional<int64_t>(n) : std::nullopt;
  }

 private:
  std::shared_ptr<VideoLink> link_;
  MediaWarning warn_;
  std::optional<VariableRateCheck> rate_check_;
};

class VideoFileSink : public FrameSink {
 public:
  VideoFileSink(std::string path, std::shared_ptr<VideoLink> link, VideoEncodeOptions options)
      : path_(std::move(path)), link_(std::move(link)), options_(std::move(options)) {}
  void write(int64_t, const std::string&, const Image& hr) override {
    int64_t pts = 0;
    std::shared_ptr<VideoReader> reader;
    {
      std::lock_guard<std::mutex> lock(link_->mutex);
      pts = link_->pending_pts.front();
      link_->pending_pts.pop_front();
      reader = link_->reader;
    }
    // Opened at the first frame, when the HR size is known.
    if (!writer_)
      writer_ = std::make_unique<VideoWriter>(
          VideoWriter::open(path_, *reader, hr.width, hr.height, options_));
    writer_->write(hr, pts);
  }
  std::string path_for(int64_t, const std::string&) const override { return path_; }
  void finish() override {
    if (writer_) writer_->finish();
  }

 private:
  std::string path_;
  std::shared_ptr<VideoLink> link_;
  VideoEncodeOptions options_;
  std::unique_ptr<VideoWriter> writer_;  // destroyed unfinished: its temporary file is removed
};

// "-i -": y4m on stdin.
class Y4mStdinSource : public FrameSource {
 public:
  // `rate` receives the header's frame rate (for a y4m sink on stdout).
  explicit Y4mStdinSource(std::shared_ptr<Rational> rate) : reader_(stdin, "<stdin>") {
    if (rate) *rate = Rational{reader_.header().fps_num, reader_.header().fps_den};
  }
  const Y4mHeader& header() const { return reader_.header(); }
  std::optional<Frame> next() override {
    std::optional<Image> im = reader_.next();
    if (!im) return std::nullopt;
    return Frame{std::move(*im), numbered_frame_name(reader_.frames_read() - 1)};
  }

 private:
  Y4mReader reader_;
};

// "-o -": y4m on stdout (C444; the rate of the input: Y4mHeader fps, VideoReader::frame_rate, else 25/1).
class Y4mStdoutSink : public FrameSink {
 public:
  // The rate is read at the first frame: the source has filled it in by then.
  explicit Y4mStdoutSink(std::shared_ptr<Rational> fps) : fps_(std::move(fps)) {}
  void write(int64_t, const std::string&, const Image& hr) override {
    if (!writer_)
      writer_ = std::make_unique<Y4mWriter>(stdout, hr.width, hr.height, fps_->num, fps_->den);
    writer_->write(hr);
  }
  std::string path_for(int64_t, const std::string&) const override { return "<stdout>"; }

 private:
  std::shared_ptr<Rational> fps_;
  std::unique_ptr<Y4mWriter> writer_;
};

}  // namespace sdvsr::cli
