#pragma once
// YUV4MPEG2 ("y4m") streams: frames piped in on stdin and out on stdout. The
// format, its colour conversions and the reader are in media/y4m_reader.h.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "media/image_io.h"
#include "media/y4m_reader.h"

namespace sdvsr {

enum class Y4mChroma { C444, C420jpeg };

// Writes frames to a y4m stream (e.g. stdout). The header goes out with the
// first frame; every frame must have the size given here. Flushes after each
// frame so a reader downstream sees it at once.
class Y4mWriter {
 public:
  Y4mWriter(std::FILE* out, int width, int height, int fps_num, int fps_den,
            Y4mChroma chroma = Y4mChroma::C444, std::string name = "<stdout>");
  void write(const Image& image);
  int64_t frames_written() const { return frames_written_; }

 private:
  std::FILE* out_;
  int width_, height_, fps_num_, fps_den_;
  Y4mChroma chroma_;
  std::string name_;
  std::vector<uint8_t> planes_;
  int64_t frames_written_ = 0;
};

}  // namespace sdvsr
