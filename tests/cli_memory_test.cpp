// Streaming: resident memory does not grow with the clip length.
#include <gtest/gtest.h>

#include "cli_helpers.h"
#include "run_program.h"

namespace sdvsr {
namespace {

TEST(CliMemory, PeakRssIndependentOfClipLength) {
  const std::string dir = test::temp_dir("cli-memory");
  test::write_pattern_frames(dir + "/short/s", 4);
  test::write_pattern_frames(dir + "/long/s", 40);
  auto run = [&](const std::string& in) {
    auto r = test::run_program("sdvsr", {"--model_id", test::golden_path("tiny"), "-i",
                                         dir + "/" + in, "-o", dir + "/out", "--threads", "1",
                                         "--num_inference_steps", "1", "-q"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.peak_rss_kib;
  };
  const long short_kib = run("short"), long_kib = run("long");
  RecordProperty("peak_rss_kib_4_frames", std::to_string(short_kib));
  RecordProperty("peak_rss_kib_40_frames", std::to_string(long_kib));
  EXPECT_GT(short_kib, 0);
  EXPECT_LE(double(long_kib), 1.1 * double(short_kib))
      << "4 frames: " << short_kib << " KiB, 40 frames: " << long_kib << " KiB";
}

}  // namespace
}  // namespace sdvsr
