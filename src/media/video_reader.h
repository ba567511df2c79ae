#pragma once
// Video files in, through FFmpeg's libraries: the first video stream of any
// file libavformat opens, decoded in presentation order to 8-bit RGB.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "media/image_io.h"

namespace sdvsr {

struct Rational {
  int num = 0, den = 1;
  double value() const { return den ? static_cast<double>(num) / den : 0.0; }
  bool operator==(const Rational&) const = default;
};

// One decoded frame. pts counts in the stream's time_base (VideoReader::time_base);
// frames without a timestamp get index / frame_rate, and a timestamp that does
// not increase is moved to last + 1 so that encoders accept it.
struct VideoFrame {
  Image image;
  int64_t pts = 0;
  int64_t index = 0;    // 0, 1, 2, ... in output order
  double seconds = 0;   // pts * time_base
};

// Called with one line per recoverable problem (a corrupt packet skipped...).
using MediaWarning = std::function<void(const std::string&)>;

// FFmpeg's own log is silenced (AV_LOG_QUIET) the first time a reader or
// writer opens, since every failure reaches the caller as one exception line;
// call this (e.g. with AV_LOG_WARNING = 24) to hear it again. Setting the
// environment variable SDVSR_FFMPEG_LOG keeps FFmpeg's default log.
void set_ffmpeg_log_level(int av_log_level);

class VideoReader {
 public:
  // Opens `path` and its first video stream (cover-art pictures skipped) and
  // its decoder. Throws "<path>: ..." for missing, empty or unreadable files,
  // files without a video stream, or a codec without a decoder.
  static VideoReader open(const std::string& path, MediaWarning warn = {});
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  ~VideoReader();

  // The next frame, or nullopt after the last one. Corrupt packets are skipped
  // with a warning; a file that yields no frame at all throws. Frames whose
  // size changes mid-stream are scaled to the first frame's size.
  std::optional<VideoFrame> next();

  const std::string& path() const;
  int width() const;
  int height() const;
  Rational time_base() const;      // of pts
  Rational frame_rate() const;     // avg_frame_rate, else r_frame_rate, else 25/1
  Rational sample_aspect_ratio() const;  // 0/1 when unknown
  // Frames in the stream: the container's count when it has one (exact),
  // else duration x frame_rate rounded (an estimate), else -1.
  int64_t frame_count() const;
  bool frame_count_exact() const;
  std::string codec_name() const;  // e.g. "h264"
  int video_stream_index() const;
  int64_t frames_read() const;

  // The colour description of the decoded stream (FFmpeg's AVColorSpace,
  // AVColorPrimaries, AVColorTransferCharacteristic, AVColorRange numbers),
  // so a writer can keep it. matrix_used is the matrix the conversion to RGB
  // applied (BT.601 when the stream does not say).
  struct Color {
    int matrix = 2, primaries = 2, transfer = 2, range = 0;  // 2 = unspecified
    int matrix_used = 6;                                      // AVCOL_SPC_SMPTE170M
  };
  Color color() const;

 private:
  struct Impl;
  explicit VideoReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdvsr
