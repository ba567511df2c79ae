#include "media/y4m.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace sdvsr {
namespace {

std::runtime_error stream_error(const std::string& name, const std::string& problem) {
  return std::runtime_error(name + ": " + problem);
}

}  // namespace

Y4mWriter::Y4mWriter(std::FILE* out, int width, int height, int fps_num, int fps_den, Y4mChroma chroma,
                     std::string name)
    : out_(out), width_(width), height_(height), fps_num_(fps_num), fps_den_(fps_den), chroma_(chroma),
      name_(std::move(name)) {
  if (width <= 0 || height <= 0 || width > kY4mMaxSide || height > kY4mMaxSide)
    throw stream_error(name_, "cannot write a " + std::to_string(width) + "x" + std::to_string(height) + " y4m stream");
  if (fps_num <= 0 || fps_den <= 0) throw stream_error(name_, "y4m frame rate must be positive");
}

void Y4mWriter::write(const Image& image) {
  if (image.width != width_ || image.height != height_ ||
      image.rgb.size() != static_cast<size_t>(width_) * height_ * 3)
    throw stream_error(name_, "y4m frame " + std::to_string(frames_written_ + 1) + " is " +
                                  std::to_string(image.width) + "x" + std::to_string(image.height) +
                                  ", the stream is " + std::to_string(width_) + "x" + std::to_string(height_));
  const bool c420 = chroma_ == Y4mChroma::C420jpeg;
  const size_t luma = static_cast<size_t>(width_) * height_;
  const int cw = c420 ? (width_ + 1) / 2 : width_, ch = c420 ? (height_ + 1) / 2 : height_;
  const size_t chroma = static_cast<size_t>(cw) * ch;
  planes_.resize(luma + 2 * chroma);
  uint8_t* yp = planes_.data();
  uint8_t* cbp = yp + luma;
  uint8_t* crp = cbp + chroma;
  if (!c420) {
    for (size_t i = 0; i < luma; ++i) {
      double v[3];
      y4m_rgb_to_ycbcr(&image.rgb[i * 3], false, v);
      yp[i] = y4m_round_to_byte(v[0]), cbp[i] = y4m_round_to_byte(v[1]), crp[i] = y4m_round_to_byte(v[2]);
    }
  } else {
    std::vector<double> sums(2 * chroma, 0.0);
    std::vector<int> counts(chroma, 0);
    for (int y = 0; y < height_; ++y)
      for (int x = 0; x < width_; ++x) {
        const size_t i = static_cast<size_t>(y) * width_ + x;
        double v[3];
        y4m_rgb_to_ycbcr(&image.rgb[i * 3], false, v);
        yp[i] = y4m_round_to_byte(v[0]);
        const size_t c = static_cast<size_t>(y / 2) * cw + x / 2;
        sums[2 * c] += v[1], sums[2 * c + 1] += v[2], ++counts[c];
      }
    for (size_t c = 0; c < chroma; ++c)
      cbp[c] = y4m_round_to_byte(sums[2 * c] / counts[c]), crp[c] = y4m_round_to_byte(sums[2 * c + 1] / counts[c]);
  }

  bool ok = true;
  if (frames_written_ == 0)
    ok = std::fprintf(out_, "YUV4MPEG2 W%d H%d F%d:%d Ip A1:1 C%s XCOLORRANGE=LIMITED\n", width_, height_, fps_num_,
                      fps_den_, c420 ? "420jpeg" : "444") > 0;
  ok = ok && std::fputs("FRAME\n", out_) >= 0 &&
       std::fwrite(planes_.data(), 1, planes_.size(), out_) == planes_.size() && std::fflush(out_) == 0;
  if (!ok) throw stream_error(name_, std::string("write failed (") + std::strerror(errno) + ")");
  ++frames_written_;
}

}  // namespace sdvsr
