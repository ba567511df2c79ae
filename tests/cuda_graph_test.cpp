// CUDA graphs: a recording replays its work on the storage it was recorded
// with; work that needs the host fails to record with one line and leaves the
// stream usable; the golden sequences give the same frames with each
// resolution's denoising step replayed from a graph (float32 and bfloat16).
// Every test skips, saying why, without a CUDA build or device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "golden.h"
#include "pipeline/model_bundle.h"
#include "pipeline/recorded_steps.h"
#include "pipeline/stream_session.h"
#include "runtime/device_backend.h"

namespace sdvsr {
namespace {

TEST(CudaGraph, AReplayReadsTheInputsStorageAsItIsThen) {
  REQUIRE_CUDA();
  Backend& be = backend_for_device("cuda");
  ASSERT_TRUE(be.can_record());
  const Tensor x = be.to_device(Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
  const Tensor out = be.to_device(Tensor::zeros({2, 3}));
  // Warm (nothing to upload or find during the recording), then record.
  be.to_host(be.scale(be.add(x, x), 0.5f));
  std::unique_ptr<Recording> rec = be.record([&] { be.copy_into(out, be.add(x, be.scale(x, 2.f))); });
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(be.to_host(out).to_vector(), std::vector<float>(6, 0.f)) << "recording ran the work";
  rec->replay();
  EXPECT_EQ(be.to_host(out).to_vector(), (std::vector<float>{3, 6, 9, 12, 15, 18}));
  be.copy_into(x, Tensor::from_vector({6}, {-1, 0, 1, 2, 3, 4}));
  rec->replay();
  rec->replay();
  EXPECT_EQ(be.to_host(out).to_vector(), (std::vector<float>{-3, 0, 3, 6, 9, 12}));
}

TEST(CudaGraph, WorkThatNeedsTheHostFailsToRecordAndTheStreamGoesOn) {
  REQUIRE_CUDA();
  Backend& be = backend_for_device("cuda");
  const Tensor host = Tensor::from_vector({3}, {1, 2, 3});
  try {
    be.record([&] { be.add(host, host); });  // an upload mid-recording
    FAIL() << "recorded an upload";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs the host while a CUDA graph is being recorded"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(be.to_host(be.add(host, host)).to_vector(), (std::vector<float>{2, 4, 6}));
}

using test::golden_sequence;
using Sequence = test::GoldenSequence;

// Max |a - b| over max |b| (host tensors of one shape).
double relative_max_difference(const Tensor& a, const Tensor& b) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(b[i])));
  }
  return ref > 0 ? diff / ref : diff;
}

class CudaGraphGolden : public ::testing::TestWithParam<ComputeDtype> {};

TEST_P(CudaGraphGolden, RecordedStepsGiveTheSameFrames) {
  REQUIRE_CUDA();
  Backend& be = backend_for_device("cuda", GetParam());
  std::unique_ptr<ModelBundle> models = test::load_tiny_models(be);
  RecordedSteps recorded(*models, be);
  for (const char* file : {"e2e_seq_a.safetensors", "e2e_seq_odd.safetensors"}) {
    SCOPED_TRACE(file);
    const Sequence seq = golden_sequence(file);
    StreamSession op_by_op(*models, be, StreamOptions{});
    StreamSession replaying(*models, be, StreamOptions{});
    replaying.set_recorded_steps(&recorded);
    for (size_t k = 0; k < seq.lr.size(); ++k) {
      SCOPED_TRACE("frame " + std::to_string(k));
      const Tensor a = be.to_host(op_by_op.push(seq.lr[k], &seq.noise[k]));
      const Tensor b = be.to_host(replaying.push(seq.lr[k], &seq.noise[k]));
      ASSERT_EQ(a.shape(), b.shape());
      // The same kernels with the same algorithms: equal but for a float-level
      // margin should a reduction not be deterministic between launches.
      EXPECT_LE(relative_max_difference(b, a), 1e-5);
    }
  }
  EXPECT_TRUE(recorded.failure().empty()) << recorded.failure();
  // Per sequence size: one recording without the ControlNet (frame 0), one with.
  EXPECT_EQ(recorded.recordings(), 4);
  EXPECT_GT(recorded.replays(), 0);
}

INSTANTIATE_TEST_SUITE_P(CudaDtypes, CudaGraphGolden,
                         ::testing::Values(ComputeDtype::kFloat32, ComputeDtype::kBFloat16),
                         [](const auto& info) { return compute_dtype_name(info.param); });

}  // namespace
}  // namespace sdvsr
