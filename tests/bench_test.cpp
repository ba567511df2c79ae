// sdvsr-bench on the tiny golden model, and the FLOP counting it relies on.
// Timings on a shared CI machine are noisy, so only what is robust is
// asserted: every component row is there, every number finite and positive,
// and bounds far beyond anything real.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "counting_backend.h"
#include "golden.h"
#include "replaying_backend.h"
#include "run_program.h"
#include "runtime/device_backend.h"

namespace sdvsr {
namespace {

using nlohmann::json;

const std::set<std::string> kComponents = {"unet_step", "controlnet_step", "raft",
                                           "vae_encode_features", "vae_decode", "frame"};

TEST(BenchProgram, JsonRunOnTinyModelHasEveryComponentWithSaneNumbers) {
  // A 1024^3 reference product keeps the run short on a loaded machine.
  const auto r = test::run_program("sdvsr-bench",
                                   {"--model", test::golden_path("tiny"), "--device", "cpu",
                                    "--dtype", "float32", "--sizes", "32x32", "--repeats", "1",
                                    "--json", "--sgemm-size", "1024"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, json> rows;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    SCOPED_TRACE(line);
    json j;
    ASSERT_NO_THROW(j = json::parse(line));
    for (const char* key : {"component", "lr", "device", "dtype"})
      ASSERT_TRUE(j.contains(key) && j[key].is_string()) << key;
    for (const char* key : {"ms", "tflops", "peak_ratio", "peak_mem_mb"})
      ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key;  // NaN would print as null
    EXPECT_EQ(j["lr"], "32x32");
    EXPECT_EQ(j["device"], "cpu");
    EXPECT_EQ(j["dtype"], "float32");
    const double ms = j["ms"], tflops = j["tflops"], ratio = j["peak_ratio"],
                 mem = j["peak_mem_mb"];
    for (double v : {ms, tflops, ratio, mem}) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_GT(v, 0.0);
    }
    EXPECT_LT(ms, 600e3);      // ten minutes
    EXPECT_LT(tflops, 1e3);    // no CPU does a PFLOP/s
    EXPECT_LT(ratio, 2.0);     // the reference rate is the best of its runs
    EXPECT_LT(mem, 64 * 1024.0);
    // The CPU's reference rate, measured again for this row, is what peak_ratio divides by.
    ASSERT_TRUE(j.contains("ref_tflops") && j["ref_tflops"].is_number());
    const double ref = j["ref_tflops"];
    EXPECT_GT(ref, 0.0);
    EXPECT_NEAR(ratio, tflops / ref, 1e-9 * ratio);
    const std::string component = j["component"];
    EXPECT_TRUE(kComponents.count(component)) << component;
    EXPECT_FALSE(rows.count(component)) << "twice: " << component;
    rows[component] = j;
  }
  for (const std::string& c : kComponents) EXPECT_TRUE(rows.count(c)) << "missing " << c;
}

TEST(BenchProgram, BadArgumentsExitTwoAndMissingModelExitsOne) {
  const std::string tiny = test::golden_path("tiny");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"--model", tiny, "--sizes", "32by32"},
           {"--model", tiny, "--repeats", "0"},
           {"--model", tiny, "--frobnicate"},
           {"--model", tiny, "--dtype", "float8"},
           {"--model", tiny, "--norm-convs", "maybe"},
           {"--model", tiny, "--conv-band-mb", "0"},
           {"--model", tiny, "--simd", "avx512"},
           {"--model", tiny, "--conv-stack-mb", "-1"},
           {"--model", tiny, "--device"}}) {
    const auto r = test::run_program("sdvsr-bench", args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("sdvsr-bench:"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
  }
  const auto r = test::run_program(
      "sdvsr-bench", {"--model", test::temp_dir("bench-no-model") + "/absent", "--sgemm-size", "64"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("absent"), std::string::npos) << r.err;
}

// The CPU computes in float32 only; a CUDA device this machine lacks (or a
// binary without CUDA) is refused before the model is read. Either way: exit 1,
// one line on stderr, nothing on stdout.
void expect_one_line_refusal(const std::vector<std::string>& args, const std::string& says) {
  SCOPED_TRACE(::testing::PrintToString(args));
  const auto r = test::run_program("sdvsr-bench", args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("sdvsr-bench: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
}

TEST(BenchProgram, CpuRefusesSixteenBitDtypesInOneLine) {
  // The model folder is absent: the refusal must come before it is read.
  const std::string absent = test::temp_dir("bench-dtype") + "/absent";
  for (const char* dtype : {"bfloat16", "bf16", "float16"})
    expect_one_line_refusal({"--model", absent, "--device", "cpu", "--dtype", dtype},
                            "float32 only");
}

TEST(BenchProgram, CudaWithoutADeviceExitsOneInOneLine) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present (BenchProgram.JsonRunOnCuda runs instead)";
  const std::string absent = test::temp_dir("bench-no-cuda") + "/absent";
  for (const char* device : {"cuda", "cuda:1"})
    expect_one_line_refusal({"--model", absent, "--device", device, "--dtype", "bfloat16"},
                            std::string("--device ") + device);
}

// On a machine with a GPU: the tiny model in bfloat16 on cuda:0, every row
// labelled with the device and dtype, device memory counted.
TEST(BenchProgram, JsonRunOnCuda) {
  if (!cuda_built()) GTEST_SKIP() << "built without CUDA (no toolkit at configure)";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount)";
  const auto r = test::run_program("sdvsr-bench",
                                   {"--model", test::golden_path("tiny"), "--device", "cuda",
                                    "--dtype", "bfloat16", "--sizes", "32x32", "--repeats", "1",
                                    "--json", "--gemm-size", "1024"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::set<std::string> seen;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    SCOPED_TRACE(line);
    const json j = json::parse(line);
    EXPECT_EQ(j["device"], "cuda:0");
    EXPECT_EQ(j["dtype"], "bfloat16");
    for (const char* key : {"ms", "tflops", "peak_ratio", "peak_mem_mb"}) {
      ASSERT_TRUE(j[key].is_number()) << key;
      EXPECT_GT(j[key].get<double>(), 0.0) << key;
    }
    seen.insert(j["component"].get<std::string>());
  }
  EXPECT_EQ(seen, kComponents);
}

// A recording launches nothing, so the ops its work calls while recording
// count nothing; each replay then counts what they do (2 x 15 x 4 x 8 for this
// linear layer). A failed recording leaves the count as it was.
TEST(CountingBackend, ARecordingCountsItsFlopsAtEveryReplay) {
  using Mode = test::ReplayingBackend::Mode;
  test::ReplayingBackend inner(Mode::kTraverse);
  bench::CountingBackend be(inner);
  EXPECT_TRUE(be.can_record());
  const Tensor a = Tensor::full({3, 5, 8}, 0.5f), w = Tensor::full({4, 8}, 0.25f);
  const Tensor out = Tensor::zeros({3, 5, 4});
  be.set_profiling(true);
  std::unique_ptr<Recording> rec = be.record([&] { be.copy_into(out, be.linear(a, w, nullptr)); });
  EXPECT_DOUBLE_EQ(be.flops(), 0.0);
  EXPECT_TRUE(be.profile().empty()) << "recording timed an op it did not launch";
  rec->replay();
  rec->replay();
  EXPECT_DOUBLE_EQ(be.flops(), 2 * (2.0 * 15 * 4 * 8));
  EXPECT_EQ(out.to_vector(), std::vector<float>(60, 1.f));  // 8 x 0.5 x 0.25
  EXPECT_EQ(inner.replays_run, 2);

  test::ReplayingBackend failing(Mode::kFail);
  bench::CountingBackend counting_failing(failing);
  counting_failing.linear(a, w, nullptr);
  EXPECT_THROW(counting_failing.record([&] { counting_failing.linear(a, w, nullptr); }),
               std::runtime_error);
  EXPECT_DOUBLE_EQ(counting_failing.flops(), 2.0 * 15 * 4 * 8);
}

// FLOPs = 2 x multiply-adds, counted from the shapes independently here; the
// results are the wrapped backend's own.
TEST(CountingBackend, CountsTwiceTheMultiplyAddsAndForwardsResults) {
  Backend& cpu = cpu_backend();
  bench::CountingBackend be(cpu);
  auto ramp = [](Shape s) {
    Tensor t = Tensor::uninitialized(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>((i * 7) % 13) / 13.f;
    return t;
  };
  const Tensor x = ramp({2, 4, 9, 7}), w = ramp({6, 2, 3, 3}), bias = ramp({6});
  Conv2dParams p;
  p.stride_h = 2;
  p.pad_h = p.pad_w = 1;
  p.groups = 2;
  const Tensor y = be.conv2d(x, w, &bias, p);  // [2, 6, 5, 7]
  ASSERT_EQ(y.shape(), (Shape{2, 6, 5, 7}));
  EXPECT_EQ(y.to_vector(), cpu.conv2d(x, w, &bias, p).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * (2 * 6 * 5 * 7) * (2 * 3 * 3));

  be.reset();  // the fused convolution counts the same multiply-adds
  const Tensor residual = ramp({2, 6, 5, 7});
  EXPECT_EQ(be.conv2d_add(x, w, &bias, p, residual).to_vector(),
            cpu.conv2d_add(x, w, &bias, p, residual).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * (2 * 6 * 5 * 7) * (2 * 3 * 3));

  be.reset();
  const Tensor a = ramp({3, 5, 8}), lw = ramp({4, 8});
  EXPECT_EQ(be.linear(a, lw, nullptr).to_vector(), cpu.linear(a, lw, nullptr).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * 15 * 4 * 8);

  be.reset();
  const Tensor b = ramp({3, 6, 8});
  EXPECT_EQ(be.matmul(a, b, true).to_vector(), cpu.matmul(a, b, true).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * 3 * 5 * 6 * 8);

  be.reset();
  const Tensor q = ramp({2, 5, 8}), k = ramp({2, 7, 8});
  EXPECT_EQ(be.attention(q, k, k, 2, 0.5f, false).to_vector(),
            cpu.attention(q, k, k, 2, 0.5f, false).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * 2 * (2 * 2 * 5 * 7 * 4));  // two products per head

  be.reset();
  const Tensor f1 = ramp({1, 3, 4, 5});
  EXPECT_EQ(be.correlation_volume(f1, f1).to_vector(), cpu.correlation_volume(f1, f1).to_vector());
  EXPECT_DOUBLE_EQ(be.flops(), 2.0 * 20 * 20 * 3);

  be.reset();  // uncounted ops forward too
  EXPECT_EQ(be.add(f1, f1).to_vector(), cpu.add(f1, f1).to_vector());
  EXPECT_EQ(be.flops(), 0.0);
}

}  // namespace
}  // namespace sdvsr
