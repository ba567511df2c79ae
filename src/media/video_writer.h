#pragma once
// Video files out, through FFmpeg's libraries: RGB frames encoded one at a time
// into a container, with the source file's audio, subtitles, chapters and
// metadata carried over and its timestamps kept.
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "media/video_reader.h"

namespace sdvsr {

struct VideoEncodeOptions {
  std::string codec = "libx264";    // any FFmpeg video encoder by name: libx265, ffv1, libvpx-vp9, ...
  std::optional<double> crf;        // 18 where the encoder has a "crf" option; set but unsupported: a warning
  std::string pix_fmt = "yuv420p";  // must be one the encoder takes; gbrp (ffv1...) keeps RGB bit for bit
  std::map<std::string, std::string> encoder_options;  // further AVOptions, e.g. {"preset", "slow"}
  MediaWarning warn;                // one line per stream dropped or re-encoded, per ignored option
};

// Writes "<path>.tmp-<pid>" and renames it to `path` in finish(); destroying an
// unfinished writer (or any failure) removes the temporary file. Memory is
// bounded: each frame goes straight to the encoder, and the source's other
// streams are read alongside (from a second demuxer on the source file) only
// as far as the video has got.
class VideoWriter {
 public:
  // For a video source: the output keeps the source's video time base, frame
  // rate, aspect ratio, colour description, rotation and metadata; its audio
  // streams are copied where the container takes their codec, else re-encoded
  // to AAC (or the container's default audio codec; dropped if neither works);
  // subtitle and attachment streams are copied where the container takes them,
  // else dropped; every such change is a warning. width x height: the frames
  // that will be written (4x the source's for the upscaler).
  static VideoWriter open(const std::string& path, const VideoReader& source, int width, int height,
                          const VideoEncodeOptions& options);
  // Without a source (e.g. frames from a folder): video only, frame i at pts i
  // in time base 1/frame_rate.
  static VideoWriter create(const std::string& path, int width, int height, Rational frame_rate,
                            const VideoEncodeOptions& options);

  VideoWriter(VideoWriter&&) noexcept;
  VideoWriter& operator=(VideoWriter&&) noexcept;
  ~VideoWriter();

  // Encodes one frame; pts in the source's time_base (VideoFrame::pts), or the
  // frame index for create(). pts must increase.
  void write(const Image& image, int64_t pts);
  // Flushes the encoder and the other streams, writes the trailer, renames.
  void finish();

  const std::string& path() const;
  const std::string& temp_path() const;
  int64_t frames_written() const;

 private:
  struct Impl;
  explicit VideoWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdvsr
