// sdvsr's command line: the original's flags and our additions, exit codes,
// one-line errors, and a stdout that stays empty.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "cli_helpers.h"
#include "golden.h"
#include "media/image_io.h"
#include "media/jpeg_io.h"
#include "run_program.h"
#include "runtime/device_backend.h"

namespace fs = std::filesystem;

namespace sdvsr {
namespace {

using test::golden_path;
using test::line_count;
using test::run_program;

void expect_usage_error(const std::vector<std::string>& args, const std::string& mention) {
  SCOPED_TRACE(testing::PrintToString(args));
  auto r = run_program("sdvsr", args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CliOptions, BadCommandLinesExitTwoWithOneLine) {
  const std::vector<std::string> base{"--model_id", golden_path("tiny"), "-i", "x"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_usage_error(with({"--frobnicate"}), "frobnicate");
  expect_usage_error(with({"--format", "gif"}), "gif");
  expect_usage_error(with({"--log", "xml"}), "xml");
  expect_usage_error(with({"--device", "tpu"}), "tpu");
  expect_usage_error(with({"--device", "cuda:x"}), "cuda:x");
  expect_usage_error(with({"--dtype", "int8"}), "int8");
  expect_usage_error(with({"--cuda-graphs", "auto"}), "cuda-graphs");
  expect_usage_error(with({"--threads", "-1"}), "threads");
  expect_usage_error(with({"--quality", "0"}), "quality");
  expect_usage_error(with({"--crf", "99"}), "crf");
  expect_usage_error(with({"--num_inference_steps", "zero"}), "num_inference_steps");
  expect_usage_error(with({"--seed", "-3"}), "seed");
  expect_usage_error(with({"--seed", "18446744073709551616"}), "seed");
}

TEST(CliOptions, HelpAndVersionExitZero) {
  auto help = run_program("sdvsr", {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--model_id", "--in_path", "-i", "--out_path", "-o",
                           "--num_inference_steps", "--unet_pretrained_weight",
                           "--controlnet_pretrained_weight", "--temporal_vae_pretrained_weight",
                           "--device", "--dtype", "--threads", "--seed", "--noise", "--raft", "--format",
                           "--quality", "--codec", "--crf", "--pix-fmt", "--offline", "--resume",
                           "--log", "-q", "--version", "edge-padded", "--flow-ahead",
                           "--cuda-graphs"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  EXPECT_EQ(run_program("sdvsr", {"-h"}).exit_code, 0);
  auto version = run_program("sdvsr", {"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("sdvsr ", 0), 0u) << version.out;
}

TEST(CliOptions, CudaDeviceFailsBeforeWritingAnything) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present: --device cuda runs";
  // The path this machine takes: a CUDA build without a GPU, or a build without CUDA.
  const std::string why = cuda_built() ? "no CUDA device was found" : "built without CUDA";
  const std::string dir = test::temp_dir("cli-cuda");
  test::write_pattern_frames(dir + "/in/s", 1);
  for (const std::string dev : {"cuda", "cuda:1"}) {
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                   dir + "/out", "--device", dev});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(line_count(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/out"));
  }
}

// The CPU computes in float32 only: another --dtype there is one line and exit 1,
// before anything is written; float32 spelled either way runs.
TEST(CliOptions, ReducedPrecisionOnTheCpuFailsBeforeWritingAnything) {
  const std::string dir = test::temp_dir("cli-dtype");
  test::write_pattern_frames(dir + "/in/s", 1);
  for (const std::string dtype : {"float16", "fp16", "bfloat16", "bf16"}) {
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                   dir + "/out", "--device", "cpu", "--dtype", dtype});
    EXPECT_EQ(r.exit_code, 1) << dtype;
    EXPECT_EQ(line_count(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("float32 only"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/out")) << dtype;
  }
  auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                 dir + "/out", "--device", "cpu", "--dtype", "fp32",
                                 "--num_inference_steps", "1", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/in/s")) << r.err;
}

// --format jpg writes JPEG frames named .jpg: the same frames as PNG output, JPEG-encoded.
TEST(CliOptions, JpegOutputReplacesTheExtensionAndEncodesTheSameFrames) {
  const std::string dir = test::temp_dir("cli-jpg");
  test::write_pattern_frames(dir + "/in/s", 1);
  for (const std::string fmt : {"png", "jpg"}) {
    auto r = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                   dir + "/" + fmt, "--format", fmt, "--quality", "95",
                                   "--num_inference_steps", "1", "--threads", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> jpgs;
  for (const auto& e : fs::recursive_directory_iterator(dir + "/jpg"))
    if (e.is_regular_file()) jpgs.push_back(e.path().string());
  ASSERT_EQ(jpgs.size(), 1u);
  ASSERT_EQ(fs::path(jpgs[0]).extension(), ".jpg");
  std::string png = jpgs[0];
  png.replace(png.find(dir + "/jpg"), (dir + "/jpg").size(), dir + "/png");
  png = fs::path(png).replace_extension(".png").string();
  // The JPEG frame is exactly the PNG frame of the same run encoded at --quality
  // (JPEG round trips themselves are tested in jpeg_io_test).
  const std::string expected = dir + "/expected.jpg";
  write_jpeg(expected, read_image(png), 95);
  const Image a = read_image(expected), b = read_image(jpgs[0]);
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  EXPECT_EQ(a.rgb, b.rgb);
}

// The original's long flags and the -i/-o aliases give the same frames; the
// video flags are accepted (stored for video output); stdout stays empty.
TEST(CliOptions, AliasesMatchTheOriginalsFlags) {
  const std::string dir = test::temp_dir("cli-alias");
  test::write_pattern_frames(dir + "/in/s", 2, 48, 32);
  auto a = run_program("sdvsr", {"--model_id", golden_path("tiny"), "--in_path", dir + "/in",
                                 "--out_path", dir + "/a", "--num_inference_steps", "2", "--threads", "1",
                                 "--unet_pretrained_weight", golden_path("tiny/unet"),
                                 "--controlnet_pretrained_weight", golden_path("tiny/controlnet"),
                                 "--temporal_vae_pretrained_weight", golden_path("tiny/vae")});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_program("sdvsr", {"--model_id", golden_path("tiny"), "-i", dir + "/in", "-o",
                                 dir + "/b", "--num_inference_steps", "2", "--threads", "1", "--codec", "ffv1",
                                 "--crf", "0", "--pix-fmt", "gbrp", "--offline",
                                 "--device", "cpu", "-q"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, "");
  EXPECT_EQ(b.out, "");
  EXPECT_EQ(b.err, "");
  for (const char* f : {"frame_0001.png", "frame_0002.png"})
    EXPECT_EQ(read_image(dir + "/a/in/s/" + f).rgb, read_image(dir + "/b/in/s/" + f).rgb) << f;
}

}  // namespace
}  // namespace sdvsr
