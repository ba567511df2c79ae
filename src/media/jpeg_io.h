#pragma once
// JPEG frames in and out through libjpeg(-turbo), decoded the way Pillow's
// Image.open(path).convert('RGB') decodes them.
#include <string>

#include "media/image_io.h"

namespace sdvsr {

// Decodes a baseline or progressive JPEG to 8-bit RGB with libjpeg's defaults
// (the integer "islow" IDCT and fancy chroma upsampling), as Pillow does:
//  - YCbCr and RGB files: libjpeg's own conversion to RGB;
//  - grayscale: the gray value copied to R, G and B;
//  - CMYK and YCCK (Adobe) files: the samples are taken as inverted CMYK
//    (Pillow's "CMYK;I", the Adobe convention) and converted with Pillow's
//    cmyk2rgb: R = (255-K) - (C*(255-K))/255, rounded like MULDIV255.
// EXIF orientation is not applied (Pillow's open() does not either).
// Throws std::runtime_error "<path>: ..." for unreadable or corrupt files.
Image read_jpeg(const std::string& path);

// Writes a baseline JPEG (libjpeg's quality scaling, 4:2:0 chroma like Pillow's
// and OpenCV's defaults, JFIF header) atomically: "<path>.tmp-<pid>" renamed
// over `path` once complete. quality: 1..100, anything else is refused.
void write_jpeg(const std::string& path, const Image& image, int quality = 95);

}  // namespace sdvsr
