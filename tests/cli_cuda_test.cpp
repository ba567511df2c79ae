// sdvsr --device cuda end to end on the golden model with the saved noise: the
// program's GPU path (device choice, the denoising step recorded as a CUDA
// graph, the next frame's flow on a second stream) writes the original's
// frames in float32, and frames above 40 dB PSNR in bfloat16. Skipped without
// a GPU; the CUDA emulator's tests run it against sdvsr-emulated.
#include <gtest/gtest.h>

#include "cli_helpers.h"
#include "cuda_test_support.h"

namespace sdvsr {
namespace {

using test::golden_path;

TEST(CliCuda, GoldenSequencesOnTheGpuGiveTheOriginalsFrames) {
  REQUIRE_CUDA();
  const std::string dir = test::temp_dir("cli-cuda");
  const std::string noise = test::combined_noise_file(dir);
  for (const std::string dtype : {"float32", "bfloat16"}) {
    SCOPED_TRACE(dtype);
    const std::string out = dir + "/" + dtype;
    const auto r = test::run_program(
        "sdvsr", {"--model_id", golden_path("tiny"), "--in_path",
                  golden_path("tiny/cases/e2e/input"), "--out_path", out, "--noise", noise,
                  "--device", "cuda", "--dtype", dtype, "--cuda-graphs", "on", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const int frames = test::check_golden_frames(out, [&](const test::FrameDifference& d) {
      if (dtype == "float32") {  // the CPU program's bound (cli_e2e_test.cpp)
        EXPECT_EQ(d.worse, 0u);
        EXPECT_LE(double(d.differ), 1e-3 * double(d.values));
      } else {
        EXPECT_GE(d.psnr_db, 40.0);
      }
    });
    EXPECT_EQ(frames, 5);
  }
}

}  // namespace
}  // namespace sdvsr
