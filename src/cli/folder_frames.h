#pragma once
// A folder of image files as a FrameSource, and a folder of PNG/JPEG files as
// a FrameSink (the original's input and output).
#include <string>
#include <vector>

#include "cli/frame_io.h"

namespace sdvsr::cli {

class FolderSource : public FrameSource {
 public:
  // The image files directly inside `folder`, natural order; throws naming the
  // folder when it holds none.
  explicit FolderSource(const std::string& folder);
  std::optional<Frame> next() override;
  void skip(int64_t n) override;
  std::optional<int64_t> total() const override { return static_cast<int64_t>(paths_.size()); }
  std::vector<std::string> names() const override;

 private:
  std::vector<std::string> paths_;
  size_t next_ = 0;
};

// Frames go to `folder` under the input's names, the extension replaced by
// the format's (".png" or ".jpg") where it differs.
class FolderSink : public FrameSink {
 public:
  FolderSink(std::string folder, std::string format, int quality);
  void write(int64_t k, const std::string& name, const Image& hr) override;
  std::string path_for(int64_t k, const std::string& name) const override;

 private:
  std::string folder_, format_;
  int quality_;
  bool created_ = false;
};

}  // namespace sdvsr::cli
