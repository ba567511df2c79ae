#include "media/image_io.h"

#include "media/atomic_file.h"

#include "media/jpeg_io.h"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace sdvsr {
namespace {

// libpng reports errors through a callback that must not return: we record the
// message and longjmp back into the function that called libpng.
struct PngErrorState {
  std::string message;
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  if (state) state->message = msg ? msg : "unknown libpng error";
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // warnings are not failures

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

std::runtime_error file_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

// Converts one decoded row (after palette and low-bit-gray expansion) to RGB8.
void row_to_rgb(const uint8_t* in, uint8_t* out, int width, int channels, int depth) {
  const int bytes = depth / 8;  // 1 or 2; 16-bit samples are big-endian
  for (int x = 0; x < width; ++x) {
    const uint8_t* px = in + static_cast<size_t>(x) * channels * bytes;
    uint8_t* o = out + static_cast<size_t>(x) * 3;
    if (channels >= 3) {  // RGB / RGBA: high byte of each sample, alpha dropped
      o[0] = px[0];
      o[1] = px[bytes];
      o[2] = px[2 * bytes];
    } else if (channels == 2 || bytes == 1) {  // gray+alpha (high byte) or 8-bit gray
      o[0] = o[1] = o[2] = px[0];
    } else {  // 16-bit gray: Pillow mode "I" -> RGB clips to 0..255
      const unsigned v = (static_cast<unsigned>(px[0]) << 8) | px[1];
      o[0] = o[1] = o[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

}  // namespace

Image read_image(const std::string& path) {
  // The format comes from the file's first bytes, never from its extension.
  uint8_t magic[8] = {0};
  size_t got = 0;
  {
    FilePtr file(std::fopen(path.c_str(), "rb"));
    if (!file) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
    got = std::fread(magic, 1, sizeof(magic), file.get());
  }
  if (got == sizeof(magic) && png_sig_cmp(magic, 0, sizeof(magic)) == 0) return read_png(path);
  if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return read_jpeg(path);
  throw file_error(path, "not a PNG or JPEG file");
}

Image read_png(const std::string& path) {
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");

  uint8_t signature[8];
  const size_t got = std::fread(signature, 1, sizeof(signature), file.get());
  if (got != sizeof(signature) || png_sig_cmp(signature, 0, sizeof(signature)) != 0)
    throw file_error(path, "not a PNG file");

  PngErrorState err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error, on_png_warning);
  if (!png) throw file_error(path, "cannot create a PNG reader");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw file_error(path, "cannot create a PNG reader");
  }

  Image image;
  // Decoded rows, declared before setjmp so longjmp keeps them valid. Not
  // zero-filled: a header claiming a huge image costs no memory until rows decode.
  std::unique_ptr<uint8_t[]> pixels;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw file_error(path, "truncated or corrupt PNG (" + err.message + ")");
  }

  png_init_io(png, file.get());
  png_set_sig_bytes(png, sizeof(signature));
  // Large frames are legitimate; libpng's default limit is 1,000,000 per side.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);

  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int color_type = png_get_color_type(png, info);
  image.alpha_dropped = (color_type & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);  // RGB, or RGBA with tRNS
  if (color_type == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);  // no tRNS -> alpha
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  const int channels = png_get_channels(png, info);
  const int depth = png_get_bit_depth(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  const char* problem = nullptr;
  if ((depth != 8 && depth != 16) || channels < 1 || channels > 4) problem = "unsupported PNG layout";
  else if (static_cast<uint64_t>(width) * height > (uint64_t{1} << 31) / 3) problem = "image too large";
  if (problem) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw file_error(path, problem);
  }

  try {
    pixels.reset(new uint8_t[row_bytes * height]);
    rows.resize(height);
  } catch (const std::bad_alloc&) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw file_error(path, "a " + std::to_string(width) + "x" + std::to_string(height) +
                               " image does not fit in memory");
  }
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = pixels.get() + row_bytes * y;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);

  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (png_uint_32 y = 0; y < height; ++y)
    row_to_rgb(rows[y], image.rgb.data() + static_cast<size_t>(y) * width * 3, image.width, channels,
               depth);
  return image;
}

namespace {

// Writes the PNG stream to an already open file; throws on libpng errors.
void encode_png(FILE* file, const std::string& path, const Image& image) {
  PngErrorState err;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error, on_png_warning);
  if (!png) throw file_error(path, "cannot create a PNG writer");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw file_error(path, "cannot create a PNG writer");
  }
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  if (setjmp(png_jmpbuf(png))) {
    // libpng says only "Write Error"; the file's error says why (a full disk).
    const int write_errno = errno;
    if (std::ferror(file) && write_errno != 0) err.message += ": " + std::string(std::strerror(write_errno));
    png_destroy_write_struct(&png, &info);
    throw file_error(path, "cannot write PNG (" + err.message + ")");
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    rows[y] = const_cast<png_bytep>(image.rgb.data() + static_cast<size_t>(y) * image.width * 3);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
}

}  // namespace

void write_png(const std::string& path, const Image& image) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw file_error(path, "cannot write PNG: image size " + std::to_string(image.width) + "x" +
                               std::to_string(image.height) + " does not match its " +
                               std::to_string(image.rgb.size()) + " bytes");
  write_file_atomically(path, [&](FILE* file) { encode_png(file, path, image); });
}

}  // namespace sdvsr
