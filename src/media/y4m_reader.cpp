#include "media/y4m_reader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace sdvsr {
namespace {

constexpr double kKr = 0.299, kKb = 0.114, kKg = 1.0 - kKr - kKb;
constexpr size_t kMaxLine = 4096;  // header and FRAME lines longer than this are refused

std::runtime_error stream_error(const std::string& name, const std::string& problem) {
  return std::runtime_error(name + ": " + problem);
}

// Reads one '\n'-terminated line (without the '\n'). Returns false at EOF before
// any byte; throws when the line is too long or the stream ends inside it.
bool read_line(std::FILE* in, const std::string& name, const char* what, std::string& line) {
  line.clear();
  for (;;) {
    const int c = std::fgetc(in);
    if (c == EOF) {
      if (std::ferror(in)) throw stream_error(name, std::string("read error (") + std::strerror(errno) + ")");
      if (line.empty()) return false;
      throw stream_error(name, std::string("truncated y4m ") + what + " line");
    }
    if (c == '\n') return true;
    if (line.size() >= kMaxLine) throw stream_error(name, std::string("y4m ") + what + " line longer than 4096 bytes");
    line.push_back(static_cast<char>(c));
  }
}

// Parses "N" or "N:D" with positive 32-bit parts.
bool parse_int(const std::string& s, long long lo, long long hi, int& out) {
  if (s.empty() || s.size() > 10) return false;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  out = static_cast<int>(v);
  return true;
}

bool parse_ratio(const std::string& s, int& num, int& den) {
  const size_t colon = s.find(':');
  if (colon == std::string::npos) return false;
  return parse_int(s.substr(0, colon), 0, 0x7fffffff, num) &&
         parse_int(s.substr(colon + 1), 0, 0x7fffffff, den);
}

// Bilinear taps of one axis: where output sample i reads the subsampled plane.
struct Taps {
  std::vector<int> i0, i1;
  std::vector<float> w1;  // weight of i1; i0 gets 1 - w1
};

Taps make_taps(int n, int sub, double offset, int plane_n) {
  Taps t;
  t.i0.resize(n), t.i1.resize(n), t.w1.resize(n);
  for (int x = 0; x < n; ++x) {
    const double u = (x - offset) / sub;
    const double f = std::floor(u);
    const int a = static_cast<int>(f);
    t.i0[x] = std::clamp(a, 0, plane_n - 1);
    t.i1[x] = std::clamp(a + 1, 0, plane_n - 1);
    t.w1[x] = static_cast<float>(u - f);
  }
  return t;
}

}  // namespace

uint8_t y4m_round_to_byte(double v) {
  if (!(v > 0.0)) return 0;  // also NaN
  if (v >= 255.0) return 255;
  return static_cast<uint8_t>(std::lround(v));
}

void y4m_rgb_to_ycbcr(const uint8_t rgb[3], bool full_range, double ycbcr[3]) {
  const double r = rgb[0], g = rgb[1], b = rgb[2];
  const double y = kKr * r + kKg * g + kKb * b;
  const double ys = full_range ? 1.0 : 219.0 / 255.0, cs = full_range ? 1.0 : 224.0 / 255.0;
  ycbcr[0] = (full_range ? 0.0 : 16.0) + ys * y;
  ycbcr[1] = 128.0 + cs * (b - y) / (2.0 * (1.0 - kKb));
  ycbcr[2] = 128.0 + cs * (r - y) / (2.0 * (1.0 - kKr));
}

void y4m_ycbcr_to_rgb(double y, double cb, double cr, bool full_range, uint8_t rgb[3]) {
  const double ys = full_range ? 1.0 : 255.0 / 219.0, cs = full_range ? 1.0 : 255.0 / 224.0;
  const double l = ys * (y - (full_range ? 0.0 : 16.0));
  const double pb = cs * (cb - 128.0), pr = cs * (cr - 128.0);
  rgb[0] = y4m_round_to_byte(l + 2.0 * (1.0 - kKr) * pr);
  rgb[1] = y4m_round_to_byte(l - (2.0 * kKb * (1.0 - kKb) / kKg) * pb - (2.0 * kKr * (1.0 - kKr) / kKg) * pr);
  rgb[2] = y4m_round_to_byte(l + 2.0 * (1.0 - kKb) * pb);
}

Y4mReader::Y4mReader(std::FILE* in, std::string name) : in_(in), name_(std::move(name)) {
  std::string line;
  if (!read_line(in_, name_, "header", line)) throw stream_error(name_, "empty input (expected a y4m stream)");
  if (line.rfind("YUV4MPEG2", 0) != 0 || (line.size() > 9 && line[9] != ' '))
    throw stream_error(name_, "not a y4m stream (no YUV4MPEG2 signature)");

  bool has_w = false, has_h = false;
  size_t pos = 9;
  while (pos < line.size()) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    if (pos >= line.size()) break;
    const size_t end = std::min(line.find(' ', pos), line.size());
    const std::string tok = line.substr(pos, end - pos);
    pos = end;
    const char tag = tok[0];
    const std::string val = tok.substr(1);
    bool ok = true;
    switch (tag) {
      case 'W': ok = parse_int(val, 1, kY4mMaxSide, header_.width), has_w = true; break;
      case 'H': ok = parse_int(val, 1, kY4mMaxSide, header_.height), has_h = true; break;
      case 'F': ok = parse_ratio(val, header_.fps_num, header_.fps_den); break;
      case 'A': ok = parse_ratio(val, header_.aspect_num, header_.aspect_den); break;
      case 'I': ok = val.size() == 1 && std::strchr("ptbm?", val[0]); if (ok) header_.interlace = val[0]; break;
      case 'C': header_.chroma = val; break;
      case 'X':
        if (val == "COLORRANGE=FULL") header_.full_range = true;
        else if (val == "COLORRANGE=LIMITED") header_.full_range = false;
        break;  // other extensions are ignored, as the format asks
      default: break;
    }
    if (!ok) throw stream_error(name_, "bad y4m header field '" + tok + "'" +
                                           ((tag == 'W' || tag == 'H') ? " (sides must be 1.." +
                                                                             std::to_string(kY4mMaxSide) + ")"
                                                                       : ""));
  }
  if (!has_w || !has_h) throw stream_error(name_, "y4m header lacks W or H");
  if (int64_t{header_.width} * header_.height > kY4mMaxPixels)
    throw stream_error(name_, "y4m frame " + std::to_string(header_.width) + "x" + std::to_string(header_.height) +
                                  " is too large (at most 2^26 pixels)");
  if (header_.fps_num <= 0 || header_.fps_den <= 0) header_.fps_num = 25, header_.fps_den = 1;

  const std::string& c = header_.chroma;
  if (c == "420jpeg" || c == "420" || c == "420paldv") sub_x_ = sub_y_ = 2, chroma_x_offset_ = chroma_y_offset_ = 0.5;
  else if (c == "420mpeg2") sub_x_ = sub_y_ = 2, chroma_x_offset_ = 0.0, chroma_y_offset_ = 0.5;
  else if (c == "422") sub_x_ = 2, sub_y_ = 1;
  else if (c == "411") sub_x_ = 4, sub_y_ = 1;
  else if (c == "444") sub_x_ = sub_y_ = 1;
  else if (c == "mono") sub_x_ = 0;
  else
    throw stream_error(name_, "unsupported y4m colour format C" + c +
                                  " (8-bit 420jpeg, 420, 420mpeg2, 420paldv, 422, 411, 444 or mono only)");
}

std::optional<Image> Y4mReader::next() {
  std::string line;
  if (!read_line(in_, name_, "FRAME", line)) return std::nullopt;
  if (line.rfind("FRAME", 0) != 0 || (line.size() > 5 && line[5] != ' '))
    throw stream_error(name_, "bad y4m frame " + std::to_string(frames_read_ + 1) + " (no FRAME marker)");

  const int w = header_.width, h = header_.height;
  const bool mono = sub_x_ == 0;
  const int cw = mono ? 0 : (w + sub_x_ - 1) / sub_x_, ch = mono ? 0 : (h + sub_y_ - 1) / sub_y_;
  const size_t luma = static_cast<size_t>(w) * h, chroma = static_cast<size_t>(cw) * ch;
  const size_t bytes = luma + 2 * chroma;
  planes_.resize(bytes);
  size_t got = 0;
  while (got < bytes) {
    const size_t n = std::fread(planes_.data() + got, 1, bytes - got, in_);
    if (n == 0) break;
    got += n;
  }
  if (got < bytes) {
    if (std::ferror(in_)) throw stream_error(name_, std::string("read error (") + std::strerror(errno) + ")");
    throw stream_error(name_, "truncated y4m frame " + std::to_string(frames_read_ + 1) + " (got " +
                                  std::to_string(got) + " of " + std::to_string(bytes) + " bytes)");
  }

  Image image;
  image.width = w, image.height = h;
  image.rgb.resize(luma * 3);
  const uint8_t* yp = planes_.data();
  if (mono) {
    for (size_t i = 0; i < luma; ++i) y4m_ycbcr_to_rgb(yp[i], 128, 128, header_.full_range, &image.rgb[i * 3]);
  } else {
    const uint8_t* cbp = yp + luma;
    const uint8_t* crp = cbp + chroma;
    const Taps tx = make_taps(w, sub_x_, sub_x_ == 1 ? 0.0 : chroma_x_offset_, cw);
    const Taps ty = make_taps(h, sub_y_, sub_y_ == 1 ? 0.0 : chroma_y_offset_, ch);
    for (int y = 0; y < h; ++y) {
      const size_t r0 = static_cast<size_t>(ty.i0[y]) * cw, r1 = static_cast<size_t>(ty.i1[y]) * cw;
      const float wy = ty.w1[y];
      for (int x = 0; x < w; ++x) {
        const int a = tx.i0[x], b = tx.i1[x];
        const float wx = tx.w1[x];
        auto sample = [&](const uint8_t* p) {
          const float top = p[r0 + a] + wx * (p[r0 + b] - p[r0 + a]);
          const float bot = p[r1 + a] + wx * (p[r1 + b] - p[r1 + a]);
          return top + wy * (bot - top);
        };
        const size_t i = static_cast<size_t>(y) * w + x;
        y4m_ycbcr_to_rgb(yp[i], sample(cbp), sample(crp), header_.full_range, &image.rgb[i * 3]);
      }
    }
  }
  ++frames_read_;
  return image;
}

}  // namespace sdvsr
