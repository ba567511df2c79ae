#include "media/jpeg_io.h"

#include "media/atomic_file.h"

#include <jpeglib.h>
#include <jerror.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace sdvsr {
namespace {

// libjpeg's error_exit must not return: we format the message and longjmp back.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
  bool hit_eof = false;  // libjpeg warned that the data ended early
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Corrupt-data warnings are not failures (as in Pillow), but an early end is.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->hit_eof = true;
}

std::runtime_error file_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

// Pillow's MULDIV255: a*b/255 rounded, in integers.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// Decodes an open JPEG stream into `image`; longjmps out through `err` on failure,
// so it holds no objects with destructors of its own.
void decode(jpeg_decompress_struct& cinfo, Image& image, std::vector<uint8_t>& row) {
  jpeg_read_header(&cinfo, TRUE);
  const J_COLOR_SPACE in = cinfo.jpeg_color_space;
  if (in == JCS_GRAYSCALE) cinfo.out_color_space = JCS_GRAYSCALE;
  else if (in == JCS_CMYK || in == JCS_YCCK) cinfo.out_color_space = JCS_CMYK;
  else cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);

  const int channels = cinfo.output_components;
  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
  row.resize(static_cast<size_t>(image.width) * channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    const size_t y = cinfo.output_scanline;
    JSAMPROW rows[1] = {row.data()};
    jpeg_read_scanlines(&cinfo, rows, 1);
    uint8_t* out = image.rgb.data() + y * image.width * 3;
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* px = row.data() + static_cast<size_t>(x) * channels;
      uint8_t* o = out + static_cast<size_t>(x) * 3;
      if (channels == 1) {
        o[0] = o[1] = o[2] = px[0];
      } else if (channels == 3) {
        o[0] = px[0], o[1] = px[1], o[2] = px[2];
      } else {  // inverted CMYK (Adobe): undo the inversion, then Pillow's cmyk2rgb
        const int nk = px[3];  // 255 - K
        for (int c = 0; c < 3; ++c) {
          const int v = nk - muldiv255(255 - px[c], nk);
          o[c] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
}

}  // namespace

Image read_jpeg(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");

  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  err.mgr.emit_message = on_jpeg_message;
  Image image;
  std::vector<uint8_t> row;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::fclose(file);
    throw file_error(path, std::string("truncated or corrupt JPEG (") + err.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file);
  decode(cinfo, image, row);
  const bool truncated = err.hit_eof;
  jpeg_destroy_decompress(&cinfo);
  std::fclose(file);
  // libjpeg pads a file that ends early with gray and only warns; a cut-off
  // frame is an error here rather than a silently gray-bottomed image.
  if (truncated) throw file_error(path, "truncated JPEG (the file ends before the image data)");
  return image;
}

namespace {

void encode(jpeg_compress_struct& cinfo, const Image& image, int quality) {
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);  // YCbCr, 2x2 chroma subsampling, islow DCT, Huffman defaults
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[1] = {const_cast<JSAMPLE*>(image.rgb.data() +
                                             static_cast<size_t>(cinfo.next_scanline) * image.width * 3)};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
}

}  // namespace

void write_jpeg(const std::string& path, const Image& image, int quality) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw file_error(path, "cannot write JPEG: image size " + std::to_string(image.width) + "x" +
                               std::to_string(image.height) + " does not match its " +
                               std::to_string(image.rgb.size()) + " bytes");
  if (image.width > JPEG_MAX_DIMENSION || image.height > JPEG_MAX_DIMENSION)
    throw file_error(path, "cannot write JPEG: " + std::to_string(image.width) + "x" +
                               std::to_string(image.height) + " exceeds JPEG's 65500 pixel side limit");
  if (quality < 1 || quality > 100)
    throw file_error(path, "JPEG quality must be 1..100, got " + std::to_string(quality));

  write_file_atomically(path, [&](FILE* file) {
    jpeg_compress_struct cinfo;
    JpegError err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_jpeg_error;
    if (setjmp(err.jump)) {
      jpeg_destroy_compress(&cinfo);
      throw file_error(path, std::string("cannot write JPEG (") + err.message + ")");
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, file);
    encode(cinfo, image, quality);
    jpeg_destroy_compress(&cinfo);
  });
}

}  // namespace sdvsr
