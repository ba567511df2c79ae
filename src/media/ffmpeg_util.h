#pragma once
// Small shared helpers for the FFmpeg-based reader and writer (internal).
#include <cstdint>
#include <string>

#include "media/image_io.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
}

namespace sdvsr::ffmpeg {

// FFmpeg's text for an error code, e.g. "Invalid data found when processing input".
inline std::string error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// Silences FFmpeg's own log once per process unless set_ffmpeg_log_level was called.
void init_logging();

// True for 8-bit RGB layouts without subsampling or palette (gbrp, bgr0, rgb24,
// rgba, ...): those are copied byte for byte instead of through libswscale, so
// RGB frames survive a lossless codec exactly.
inline bool is_rgb8(int format) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(format));
  if (!d || !(d->flags & AV_PIX_FMT_FLAG_RGB) || (d->flags & (AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM)) ||
      d->log2_chroma_w || d->log2_chroma_h || d->nb_components < 3)
    return false;
  for (int c = 0; c < d->nb_components; ++c)
    if (d->comp[c].depth != 8 || d->comp[c].shift != 0) return false;
  return true;
}

// Copies between an Image and an is_rgb8 frame of the same size. Component 0,
// 1, 2 of an RGB descriptor are R, G, B wherever they live; alpha becomes 255.
inline void image_to_rgb8_frame(const Image& im, AVFrame* f) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(f->format));
  for (int y = 0; y < im.height; ++y) {
    const uint8_t* src = im.rgb.data() + static_cast<size_t>(y) * im.width * 3;
    for (int c = 0; c < d->nb_components; ++c) {
      const AVComponentDescriptor& k = d->comp[c];
      uint8_t* row = f->data[k.plane] + static_cast<ptrdiff_t>(y) * f->linesize[k.plane] + k.offset;
      if (c < 3)
        for (int x = 0; x < im.width; ++x) row[x * k.step] = src[3 * x + c];
      else
        for (int x = 0; x < im.width; ++x) row[x * k.step] = 255;
    }
    // Padding bytes (the 0 of bgr0) are not components; leave them set to 255 too.
    if (d->nb_components == 3 && !(d->flags & AV_PIX_FMT_FLAG_PLANAR) && d->comp[0].step == 4) {
      const int pad = 6 - d->comp[0].offset - d->comp[1].offset - d->comp[2].offset;  // offsets are a permutation of 3 of 0..3
      uint8_t* row = f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0] + pad;
      for (int x = 0; x < im.width; ++x) row[x * 4] = 255;
    }
  }
}

inline void rgb8_frame_to_image(const AVFrame* f, Image& im) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(f->format));
  for (int y = 0; y < im.height; ++y) {
    uint8_t* dst = im.rgb.data() + static_cast<size_t>(y) * im.width * 3;
    for (int c = 0; c < 3; ++c) {
      const AVComponentDescriptor& k = d->comp[c];
      const uint8_t* row = f->data[k.plane] + static_cast<ptrdiff_t>(y) * f->linesize[k.plane] + k.offset;
      for (int x = 0; x < im.width; ++x) dst[3 * x + c] = row[x * k.step];
    }
  }
}

}  // namespace sdvsr::ffmpeg
