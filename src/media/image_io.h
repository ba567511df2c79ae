#pragma once
// PNG frames in and out, decoded the way the original reads them:
// Image.open(path).convert('RGB') in Pillow. read_image also reads JPEG
// (media/jpeg_io.h), chosen by the file's first bytes.
#include <cstdint>
#include <string>
#include <vector>

namespace sdvsr {

// 8-bit RGB, interleaved, rows top to bottom: rgb[(y*width + x)*3 + c].
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  bool alpha_dropped = false;  // read from a file with an alpha channel or tRNS transparency
};

// Reads a PNG or a JPEG (read_png / read_jpeg), told apart by the magic bytes
// at the start of the file; anything else: "<path>: not a PNG or JPEG file".
Image read_image(const std::string& path);

// Any PNG (gray, gray+alpha, palette, RGB, RGBA; 1..16 bits; interlaced or not)
// converted to RGB as Pillow's convert('RGB') does:
//  - alpha and tRNS transparency are dropped (Image::alpha_dropped says so),
//    gAMA/iCCP are ignored;
//  - 1/2/4-bit gray is scaled to 0..255 (bit replication), palettes are looked up;
//  - 16-bit RGB, RGBA and gray+alpha keep the high byte (Pillow's ";16B" unpackers);
//  - 16-bit gray is opened by Pillow as 32-bit integer mode "I", whose conversion
//    to RGB clips to 0..255 (so values >= 255 become 255).
// Throws std::runtime_error "<path>: ..." for unreadable, non-PNG or corrupt files.
Image read_png(const std::string& path);

// Writes 8-bit RGB PNG (libpng's default zlib level) atomically: the bytes go to
// "<path>.tmp-<pid>" which is renamed over `path` only once complete.
void write_png(const std::string& path, const Image& image);

}  // namespace sdvsr
