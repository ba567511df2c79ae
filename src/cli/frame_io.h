#pragma once
// Where a sequence's LR frames come from and where its HR frames go. The
// runner sees only these two interfaces, so a frame folder, a video file or a
// y4m stream plug in the same way (see cli/input_plan.h for who picks which).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "media/image_io.h"

namespace sdvsr::cli {

struct Frame {
  Image image;       // 8-bit RGB, any size (the runner pads and crops)
  std::string name;  // e.g. the input file name "frame_0001.png"; names the output frame
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame in order, or nullopt after the last one. Throws one line
  // naming the file and the problem. May be called from a worker thread
  // (never concurrently with itself).
  virtual std::optional<Frame> next() = 0;
  // Steps over the next n frames (resume); the default decodes and drops them.
  virtual void skip(int64_t n) {
    for (int64_t i = 0; i < n && next(); ++i) {
    }
  }
  // The number of frames when known in advance.
  virtual std::optional<int64_t> total() const { return std::nullopt; }
  // The frame names in order when known in advance (frame folders): they key
  // the resume fingerprint and the "already finished" check.
  virtual std::vector<std::string> names() const { return {}; }
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Writes HR frame k (0-based) made from the input frame `name`; complete
  // or not at all (temporary name, then rename).
  virtual void write(int64_t k, const std::string& name, const Image& hr) = 0;
  // Where frame k goes (for logs and the resume check).
  virtual std::string path_for(int64_t k, const std::string& name) const = 0;
  // After the last frame (a video file is finalised and renamed here).
  virtual void finish() {}
};

}  // namespace sdvsr::cli
