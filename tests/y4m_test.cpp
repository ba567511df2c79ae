// y4m streams: header parsing, colour conversion, round trips, hostile input,
// and a cross-check against FFmpeg's own y4m demuxer and swscale.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "media/video_reader.h"
#include "media/y4m.h"

namespace sdvsr {
namespace {

namespace fs = std::filesystem;

Image random_image(int w, int h, unsigned seed) {
  std::mt19937 rng(seed);
  Image im;
  im.width = w, im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (auto& v : im.rgb) v = static_cast<uint8_t>(rng() & 255);
  return im;
}

// Smooth colours with 2x2-constant chroma survive 4:2:0 closely.
Image block_image(int w, int h) {
  Image im;
  im.width = w, im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &im.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(30 + 6 * x), p[1] = static_cast<uint8_t>(60 + 5 * y), p[2] = 128;
    }
  return im;
}

int max_diff(const Image& a, const Image& b) {
  EXPECT_EQ(a.rgb.size(), b.rgb.size());
  int worst = 0;
  for (size_t i = 0; i < a.rgb.size() && i < b.rgb.size(); ++i)
    worst = std::max(worst, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
  return worst;
}

// Bytes written by `fill` into a FILE*.
std::string written(const std::function<void(FILE*)>& fill) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  fill(f);
  std::fclose(f);
  std::string s(buf, size);
  free(buf);
  return s;
}

// Runs `use` on a reader over `bytes`.
void with_stream(const std::string& bytes, const std::function<void(FILE*)>& use) {
  FILE* f = fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb");
  if (bytes.empty()) f = std::tmpfile();
  use(f);
  std::fclose(f);
}

std::string error_of(const std::string& bytes, int frames_to_read = 1) {
  std::string message;
  with_stream(bytes, [&](FILE* f) {
    try {
      Y4mReader r(f);
      for (int i = 0; i < frames_to_read; ++i) r.next();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  });
  return message;
}

TEST(Y4m, ParsesHeader) {
  const std::string s = "YUV4MPEG2 W4 H2 F30000:1001 It A10:11 C444 XYSCSS=444 XCOLORRANGE=FULL\n";
  with_stream(s, [](FILE* f) {
    Y4mReader r(f);
    EXPECT_EQ(r.header().width, 4);
    EXPECT_EQ(r.header().height, 2);
    EXPECT_EQ(r.header().fps_num, 30000);
    EXPECT_EQ(r.header().fps_den, 1001);
    EXPECT_EQ(r.header().aspect_num, 10);
    EXPECT_EQ(r.header().interlace, 't');
    EXPECT_EQ(r.header().chroma, "444");
    EXPECT_TRUE(r.header().full_range);
    EXPECT_FALSE(r.next().has_value());  // no frames: a clean end
  });
  with_stream("YUV4MPEG2 W2 H2\n", [](FILE* f) {
    Y4mReader r(f);
    EXPECT_EQ(r.header().chroma, "420jpeg");  // the format's default
    EXPECT_EQ(r.header().fps_num, 25);
  });
}

TEST(Y4m, ColourMatrixKnownValues) {
  uint8_t rgb[3];
  y4m_ycbcr_to_rgb(235, 128, 128, false, rgb);
  EXPECT_EQ(rgb[0], 255); EXPECT_EQ(rgb[1], 255); EXPECT_EQ(rgb[2], 255);
  y4m_ycbcr_to_rgb(16, 128, 128, false, rgb);
  EXPECT_EQ(rgb[0], 0); EXPECT_EQ(rgb[1], 0); EXPECT_EQ(rgb[2], 0);
  // BT.601 red in limited range: Y 81.48, Cb 90.20, Cr 240 (ITU-R BT.601 tables).
  const uint8_t red[3] = {255, 0, 0};
  double ycc[3];
  y4m_rgb_to_ycbcr(red, false, ycc);
  EXPECT_NEAR(ycc[0], 81.481, 1e-3);
  EXPECT_NEAR(ycc[1], 90.203, 1e-3);
  EXPECT_NEAR(ycc[2], 240.0, 1e-9);
  y4m_ycbcr_to_rgb(ycc[0], ycc[1], ycc[2], false, rgb);
  EXPECT_EQ(rgb[0], 255); EXPECT_EQ(rgb[1], 0); EXPECT_EQ(rgb[2], 0);
  y4m_rgb_to_ycbcr(red, true, ycc);
  EXPECT_NEAR(ycc[0], 76.245, 1e-3);
  EXPECT_NEAR(ycc[2], 255.5, 1e-9);  // clipped to 255 when stored
}

TEST(Y4m, RoundTrip444) {
  const Image a = random_image(13, 7, 1), b = random_image(13, 7, 2);
  const std::string bytes = written([&](FILE* f) {
    Y4mWriter w(f, 13, 7, 24000, 1001);
    w.write(a);
    w.write(b);
  });
  EXPECT_EQ(bytes.rfind("YUV4MPEG2 W13 H7 F24000:1001 Ip A1:1 C444", 0), 0u);
  with_stream(bytes, [&](FILE* f) {
    Y4mReader r(f);
    EXPECT_EQ(r.header().fps_num, 24000);
    auto fa = r.next(), fb = r.next();
    ASSERT_TRUE(fa && fb);
    EXPECT_FALSE(r.next().has_value());
    EXPECT_EQ(r.frames_read(), 2);
    const int da = max_diff(a, *fa), db = max_diff(b, *fb);
    std::printf("y4m 444 round trip, random RGB: max abs %d / %d\n", da, db);
    EXPECT_LE(da, 2);
    EXPECT_LE(db, 2);
  });
}

TEST(Y4m, RoundTrip420) {
  const Image a = block_image(16, 10);
  const std::string bytes = written([&](FILE* f) {
    Y4mWriter w(f, 16, 10, 25, 1, Y4mChroma::C420jpeg);
    w.write(a);
  });
  EXPECT_EQ(bytes.size(), std::string("YUV4MPEG2 W16 H10 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\nFRAME\n").size() +
                              16 * 10 + 2 * 8 * 5);
  with_stream(bytes, [&](FILE* f) {
    Y4mReader r(f);
    auto fa = r.next();
    ASSERT_TRUE(fa);
    const int d = max_diff(a, *fa);
    std::printf("y4m 420jpeg round trip, smooth RGB: max abs %d\n", d);
    EXPECT_LE(d, 6);
  });
}

TEST(Y4m, MonoAndOddSizes) {
  // 3x3 4:2:0: chroma planes are 2x2.
  std::string s = "YUV4MPEG2 W3 H3 C420mpeg2\nFRAME\n" + std::string(9, char(235)) + std::string(8, char(128));
  with_stream(s, [](FILE* f) {
    auto im = Y4mReader(f).next();
    ASSERT_TRUE(im);
    for (uint8_t v : im->rgb) EXPECT_EQ(v, 255);
  });
  s = "YUV4MPEG2 W2 H1 Cmono\nFRAME\n" + std::string(1, char(16)) + std::string(1, char(235));
  with_stream(s, [](FILE* f) {
    auto im = Y4mReader(f).next();
    ASSERT_TRUE(im);
    EXPECT_EQ(im->rgb, (std::vector<uint8_t>{0, 0, 0, 255, 255, 255}));
  });
}

TEST(Y4m, HostileInputIsRefusedInOneLine) {
  EXPECT_EQ(error_of(""), "<stdin>: empty input (expected a y4m stream)");
  EXPECT_EQ(error_of("P6\n3 3\n255\n"), "<stdin>: not a y4m stream (no YUV4MPEG2 signature)");
  EXPECT_NE(error_of("YUV4MPEG2 W8 H8 C420p10\n").find("unsupported y4m colour format C420p10"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W0 H8\n").find("bad y4m header field 'W0'"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W99999999999 H8\n").find("bad y4m header field"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W16384 H8192\n").find("too large"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W8\n").find("lacks W or H"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W8 H8 " + std::string(5000, 'X') + "\n").find("longer than 4096"), std::string::npos);
  EXPECT_NE(error_of("YUV4MPEG2 W8 H8").find("truncated y4m header"), std::string::npos);
  // 2x2 4:2:0 frames are 6 bytes: the second is cut after 4.
  const std::string two = "YUV4MPEG2 W2 H2\nFRAME\n" + std::string(6, 'a') + "FRAME\n" + std::string(4, 'a');
  EXPECT_EQ(error_of(two, 2), "<stdin>: truncated y4m frame 2 (got 4 of 6 bytes)");
  EXPECT_EQ(error_of("YUV4MPEG2 W2 H2\nFRAMX\n", 1), "<stdin>: bad y4m frame 1 (no FRAME marker)");
}

TEST(Y4m, AgreesWithFfmpegDemuxer) {
  // FFmpeg reads our stream through its yuv4mpegpipe demuxer and swscale:
  // an independent implementation of the same BT.601 limited-range matrix.
  const fs::path dir = fs::temp_directory_path() / ("sdvsr_y4m_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (Y4mChroma chroma : {Y4mChroma::C444, Y4mChroma::C420jpeg}) {
    const Image a = chroma == Y4mChroma::C444 ? random_image(32, 16, 7) : block_image(32, 16);
    const std::string path = (dir / "a.y4m").string();
    FILE* f = std::fopen(path.c_str(), "wb");
    Y4mWriter(f, 32, 16, 25, 1, chroma).write(a);
    std::fclose(f);
    VideoReader r = VideoReader::open(path);
    auto frame = r.next();
    ASSERT_TRUE(frame);
    const int d = max_diff(a, frame->image);
    std::printf("y4m %s via FFmpeg's demuxer: max abs %d\n", chroma == Y4mChroma::C444 ? "444" : "420jpeg", d);
    EXPECT_LE(d, chroma == Y4mChroma::C444 ? 3 : 8);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sdvsr
