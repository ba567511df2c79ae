#pragma once
// YUV4MPEG2 ("y4m") streams: the reader and the colour definition shared with
// the writer (media/y4m.h). No FFmpeg here: the fuzz build compiles this alone.
//
// Colour: Y'CbCr is BT.601 limited ("TV") range unless the stream says
// XCOLORRANGE=FULL. With Kr = 0.299, Kb = 0.114 (Kg = 0.587) and R', G', B' in
// 0..255:
//   Y  = 16  + 219/255 * (Kr R + Kg G + Kb B)
//   Cb = 128 + 224/255 * (B - Y') / (2 (1 - Kb))      (Y' = Kr R + Kg G + Kb B)
//   Cr = 128 + 224/255 * (R - Y') / (2 (1 - Kr))
// and its inverse, computed in double and rounded to nearest, clamped to 0..255:
//   R = 255/219 (Y-16) + 255/224 * 2(1-Kr) (Cr-128)
//   G = 255/219 (Y-16) - 255/224 * (2 Kb (1-Kb)/Kg (Cb-128) + 2 Kr (1-Kr)/Kg (Cr-128))
//   B = 255/219 (Y-16) + 255/224 * 2(1-Kb) (Cb-128)
// Full range uses 255/255 in place of 219/255 and 224/255, offsets 0 and 128.
// An RGB -> Y4M -> RGB round trip in limited range changes a channel by at most
// 2 levels (220 luma levels carry 256 values).
//
// Chroma: 4:2:0 planes are upsampled bilinearly at their sample positions:
// centred between luma samples for 420jpeg, 420 and 420paldv (paldv's
// alternating Cb/Cr siting is approximated as centred), co-sited horizontally
// for 420mpeg2; 4:2:2 (422) and 4:1:1 (411) likewise horizontally; mono is gray.
// The writer emits C444 by default: no chroma is lost to subsampling. C420jpeg
// (2x2 box average) halves the bytes for consumers that want 4:2:0.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "media/image_io.h"

namespace sdvsr {

// The stream header's parameters, as read (or to be written).
struct Y4mHeader {
  int width = 0, height = 0;
  int fps_num = 25, fps_den = 1;       // F; a missing or 0 rate reads as 25:1 (as FFmpeg)
  int aspect_num = 0, aspect_den = 0;  // A; 0:0 = unknown
  char interlace = 'p';                // I: p, t, b or m (frames are taken whole either way)
  std::string chroma = "420jpeg";      // C; the default when the tag is absent
  bool full_range = false;             // XCOLORRANGE=FULL
};

// Refuses frames beyond these before allocating anything.
constexpr int kY4mMaxSide = 32768;
constexpr int64_t kY4mMaxPixels = int64_t{1} << 26;  // 8192 x 8192, 192 MiB of RGB

// Reads frames from a y4m stream. `name` (e.g. "<stdin>") starts every error:
// "<name>: ...". The header is parsed by the constructor.
class Y4mReader {
 public:
  explicit Y4mReader(std::FILE* in, std::string name = "<stdin>");
  const Y4mHeader& header() const { return header_; }
  // The next frame as RGB, or nullopt at a clean end of stream (EOF right
  // after a frame). A frame cut short throws "<name>: truncated y4m frame N
  // (got X of Y bytes)"; N counts from 1.
  std::optional<Image> next();
  int64_t frames_read() const { return frames_read_; }

 private:
  std::FILE* in_;
  std::string name_;
  Y4mHeader header_;
  int sub_x_ = 1, sub_y_ = 1;  // chroma subsampling factors; sub_x_ = 0 means mono
  double chroma_x_offset_ = 0, chroma_y_offset_ = 0;  // chroma sample position in luma units
  std::vector<uint8_t> planes_;
  int64_t frames_read_ = 0;
};

// The colour conversions above, one pixel at a time (exposed for tests).
void y4m_rgb_to_ycbcr(const uint8_t rgb[3], bool full_range, double ycbcr[3]);
// A computed sample rounded to nearest and clamped to 0..255 (NaN gives 0).
uint8_t y4m_round_to_byte(double v);
void y4m_ycbcr_to_rgb(double y, double cb, double cr, bool full_range, uint8_t rgb[3]);

}  // namespace sdvsr
