// JPEG frames: round trips, gray and CMYK files, format dispatch by magic bytes.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "media/image_io.h"
#include "media/jpeg_io.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("sdvsr_jpeg_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A smooth picture: JPEG keeps it closely at high quality.
Image smooth_image(int w, int h) {
  Image im;
  im.width = w, im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &im.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(40 + 150 * x / w);
      p[1] = static_cast<uint8_t>(200 - 120 * y / h);
      p[2] = static_cast<uint8_t>(100 + 60 * std::sin(0.2 * (x + y)));
    }
  return im;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Writes a JPEG straight through libjpeg with the given colour space (1 or 4 components).
void write_raw_jpeg(const std::string& path, int w, int h, int components, J_COLOR_SPACE space,
                    const std::vector<uint8_t>& samples) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = w, c.image_height = h, c.input_components = components, c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, space);  // CMYK: written with an Adobe marker, stored as given
  jpeg_set_quality(&c, 100, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPLE*>(&samples[static_cast<size_t>(c.next_scanline) * w * components]);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

TEST(JpegIo, RoundTripWithinTolerance) {
  const std::string dir = temp_dir("rt");
  const Image im = smooth_image(64, 48);
  write_jpeg(dir + "/a.jpg", im, 95);
  const Image back = read_jpeg(dir + "/a.jpg");
  ASSERT_EQ(back.width, 64);
  ASSERT_EQ(back.height, 48);
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < im.rgb.size(); ++i) {
    const int d = std::abs(int(im.rgb[i]) - int(back.rgb[i]));
    sum += d, worst = std::max(worst, d);
  }
  const double mean = sum / im.rgb.size();
  std::printf("jpeg q95 round trip: mean abs %.3f, max abs %d\n", mean, worst);
  EXPECT_LT(mean, 2.0);
  EXPECT_LE(worst, 16);
  // No temporary file is left beside the output.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // read_image tells JPEG from PNG by content, not by name.
  fs::copy_file(dir + "/a.jpg", dir + "/really_jpeg.png");
  EXPECT_EQ(read_image(dir + "/really_jpeg.png").rgb, back.rgb);
  fs::remove_all(dir);
}

TEST(JpegIo, LowerQualityIsSmaller) {
  const std::string dir = temp_dir("q");
  const Image im = smooth_image(64, 48);
  write_jpeg(dir + "/hi.jpg", im, 95);
  write_jpeg(dir + "/lo.jpg", im, 20);
  EXPECT_LT(fs::file_size(dir + "/lo.jpg"), fs::file_size(dir + "/hi.jpg"));
  fs::remove_all(dir);
}

TEST(JpegIo, GrayFileBecomesEqualChannels) {
  const std::string dir = temp_dir("gray");
  std::vector<uint8_t> gray(32 * 16);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i % 32 * 8);
  write_raw_jpeg(dir + "/g.jpg", 32, 16, 1, JCS_GRAYSCALE, gray);
  const Image im = read_image(dir + "/g.jpg");
  ASSERT_EQ(im.width, 32);
  int worst = 0;
  for (size_t i = 0; i < gray.size(); ++i) {
    EXPECT_EQ(im.rgb[i * 3], im.rgb[i * 3 + 1]);
    EXPECT_EQ(im.rgb[i * 3], im.rgb[i * 3 + 2]);
    worst = std::max(worst, std::abs(int(im.rgb[i * 3]) - int(gray[i])));
  }
  EXPECT_LE(worst, 8);
  fs::remove_all(dir);
}

TEST(JpegIo, AdobeCmykConvertedLikePillow) {
  // Flat inverted-CMYK samples (Adobe convention): stored 255-C, 255-M, 255-Y, 255-K.
  const std::string dir = temp_dir("cmyk");
  const int c = 40, m = 100, y = 10, k = 30;
  std::vector<uint8_t> px(16 * 16 * 4);
  for (size_t i = 0; i < px.size(); i += 4)
    px[i] = 255 - c, px[i + 1] = 255 - m, px[i + 2] = 255 - y, px[i + 3] = 255 - k;
  write_raw_jpeg(dir + "/c.jpg", 16, 16, 4, JCS_CMYK, px);
  const Image im = read_jpeg(dir + "/c.jpg");
  // Pillow's cmyk2rgb: (255-K) - C(255-K)/255.
  const int nk = 255 - k;
  const int expect[3] = {nk - c * nk / 255, nk - m * nk / 255, nk - y * nk / 255};
  for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(im.rgb[ch], expect[ch], 2) << "channel " << ch;
  fs::remove_all(dir);
}

TEST(JpegIo, BrokenFilesAreOneLineErrors) {
  const std::string dir = temp_dir("bad");
  write_jpeg(dir + "/a.jpg", smooth_image(64, 48), 90);
  // Cut the file in half.
  {
    std::ifstream in(dir + "/a.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir + "/cut.jpg", std::ios::binary).write(bytes.data(), bytes.size() / 2);
    std::ofstream(dir + "/head.jpg", std::ios::binary).write(bytes.data(), 20);
  }
  std::ofstream(dir + "/text.jpg") << "hello";
  EXPECT_NE(error_of([&] { read_image(dir + "/cut.jpg"); }).find(dir + "/cut.jpg: truncated"), std::string::npos);
  EXPECT_NE(error_of([&] { read_image(dir + "/head.jpg"); }).find(dir + "/head.jpg: "), std::string::npos);
  EXPECT_EQ(error_of([&] { read_image(dir + "/text.jpg"); }), dir + "/text.jpg: not a PNG or JPEG file");
  EXPECT_NE(error_of([&] { read_image(dir + "/missing.jpg"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { write_jpeg(dir + "/q.jpg", smooth_image(8, 8), 0); }).find("quality"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/q.jpg"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sdvsr
