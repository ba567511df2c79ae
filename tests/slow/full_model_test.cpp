// The real configuration (the full-size state-dict manifest, random weights)
// loads and runs 2 frames at LR 32x32 within the memory bound: peak RSS <=
// 1.1 x the weight files + 512 MiB (each weight resident once).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "golden.h"
#include "media/image_io.h"
#include "run_program.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

TEST(FullModel, TwoFramesAt32x32WithinTheMemoryBound) {
  const std::string dir = test::temp_dir("full-model");
  const std::string model = dir + "/model";
  auto synth = test::run_program(
      "sdvsr-synth-model",
      {"--manifest", test::golden_path("full-config-manifest.json"), "--out", model, "--seed", "3"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;

  uintmax_t weight_bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(model)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".safetensors" || ext == ".pth" || ext == ".bin"))
      weight_bytes += e.file_size();
  }
  ASSERT_GT(weight_bytes, 1000ull << 20) << "the manifest should give a full-size model";

  fs::create_directories(dir + "/in/clip");
  for (int k = 0; k < 2; ++k) {
    Image img;
    img.width = img.height = 32;
    img.rgb.resize(32 * 32 * 3);
    for (int i = 0; i < 32 * 32 * 3; ++i)
      img.rgb[i] = static_cast<uint8_t>(128 + 100 * std::sin(0.05 * i + k));
    write_png(dir + "/in/clip/f" + std::to_string(k) + ".png", img);
  }
  auto r = test::run_program("sdvsr", {"--model_id", model, "--in_path", dir + "/in",
                                       "--out_path", dir + "/out", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int k = 0; k < 2; ++k) {
    const Image out = read_image(dir + "/out/in/clip/f" + std::to_string(k) + ".png");
    EXPECT_EQ(out.width, 128);
    EXPECT_EQ(out.height, 128);
  }
  const double bound_kib = 1.1 * double(weight_bytes) / 1024.0 + 512.0 * 1024.0;
  std::printf("weights %.0f MiB, peak RSS %.0f MiB, bound %.0f MiB\n",
              double(weight_bytes) / (1 << 20), r.peak_rss_kib / 1024.0, bound_kib / 1024.0);
  EXPECT_LE(double(r.peak_rss_kib), bound_kib);
  fs::remove_all(model);
}

}  // namespace
}  // namespace sdvsr
