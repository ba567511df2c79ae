// RecordedSteps (CUDA graphs per resolution) on the CPU: a test backend
// "records" like CUDA does (nothing runs while recording; a replay runs the
// work again on the same fixed buffers), so the buffer plumbing, the time
// embeddings read from a buffer, the first unrecorded call, one recording per
// shape and the fallback after a failed recording are checked here; the real
// capture runs in CudaGolden.RecordedStepsGiveTheSameFrames.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "golden.h"
#include "pipeline/model_bundle.h"
#include "pipeline/recorded_steps.h"
#include "pipeline/stream_session.h"
#include "replaying_backend.h"
#include "runtime/warnings.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::SameBits;

using test::ReplayingBackend;

using test::golden_sequence;
using Sequence = test::GoldenSequence;

std::vector<Tensor> frames(const ModelBundle& models, Backend& be, const Sequence& seq,
                           RecordedSteps* recorded) {
  StreamSession s(models, be, StreamOptions{});
  s.set_recorded_steps(recorded);
  std::vector<Tensor> out;
  for (size_t k = 0; k < seq.lr.size(); ++k) out.push_back(s.push(seq.lr[k], &seq.noise[k]));
  return out;
}

TEST(RecordedSteps, ReplayedStepsGiveTheSameFramesOneRecordingPerShape) {
  ReplayingBackend be;
  const auto models = test::load_tiny_models(be);
  const Sequence seq = golden_sequence("e2e_seq_a.safetensors");
  ASSERT_GE(seq.lr.size(), 2u);
  const std::vector<Tensor> plain = frames(*models, be, seq, nullptr);

  RecordedSteps recorded(*models, be);
  const std::vector<Tensor> replayed = frames(*models, be, seq, &recorded);
  for (size_t k = 0; k < seq.lr.size(); ++k)
    EXPECT_TRUE(SameBits(replayed[k], plain[k])) << "frame " << k;

  // Two shapes: frame 0 without the ControlNet, later frames with it. Each
  // shape's first step runs unrecorded, its second records; every later step
  // (other timesteps, other frames) replays the one recording.
  const int steps = StreamOptions{}.num_inference_steps;
  ASSERT_GE(steps, 2);
  const int64_t calls = steps * static_cast<int64_t>(seq.lr.size());
  EXPECT_EQ(recorded.recordings(), 2);
  EXPECT_EQ(recorded.replays(), calls - 2);
  EXPECT_EQ(be.replays_run, calls - 2);
  EXPECT_TRUE(recorded.failure().empty()) << recorded.failure();

  // A second stream of the same models reuses the recordings.
  const std::vector<Tensor> again = frames(*models, be, seq, &recorded);
  for (size_t k = 0; k < seq.lr.size(); ++k)
    EXPECT_TRUE(SameBits(again[k], plain[k])) << "second stream, frame " << k;
  EXPECT_EQ(recorded.recordings(), 2);
  EXPECT_EQ(recorded.replays(), 2 * calls - 2);
}

TEST(RecordedSteps, AnotherResolutionOrScaleGetsItsOwnRecording) {
  ReplayingBackend be;
  const auto models = test::load_tiny_models(be);
  const Sequence a = golden_sequence("e2e_seq_a.safetensors");
  const Sequence odd = golden_sequence("e2e_seq_odd.safetensors");
  ASSERT_NE(a.lr[0].shape(), odd.lr[0].shape());
  RecordedSteps recorded(*models, be);
  const std::vector<Tensor> plain_odd = frames(*models, be, odd, nullptr);
  frames(*models, be, a, &recorded);
  EXPECT_EQ(recorded.recordings(), 2);
  const std::vector<Tensor> replayed_odd = frames(*models, be, odd, &recorded);
  EXPECT_EQ(recorded.recordings(), 4);
  for (size_t k = 0; k < odd.lr.size(); ++k)
    EXPECT_TRUE(SameBits(replayed_odd[k], plain_odd[k])) << "frame " << k;

  // The ControlNet's scale is a constant of the recording.
  StreamOptions half;
  half.conditioning_scale = 0.5f;
  StreamSession plain(*models, be, half), replaying(*models, be, half);
  replaying.set_recorded_steps(&recorded);
  for (size_t k = 0; k < a.lr.size(); ++k)
    EXPECT_TRUE(SameBits(replaying.push(a.lr[k], &a.noise[k]), plain.push(a.lr[k], &a.noise[k])))
        << "scale 0.5, frame " << k;
  EXPECT_EQ(recorded.recordings(), 5) << "frame 0 (no ControlNet) shares its recording";
}

TEST(RecordedSteps, AFailedRecordingFallsBackOnceAndWarns) {
  ReplayingBackend be(ReplayingBackend::Mode::kFail);
  const auto models = test::load_tiny_models(be);
  const Sequence seq = golden_sequence("e2e_seq_a.safetensors");
  const std::vector<Tensor> plain = frames(*models, be, seq, nullptr);

  std::vector<std::string> warnings;
  set_warning_sink([&warnings](const std::string& line) { warnings.push_back(line); });
  RecordedSteps recorded(*models, be);
  const std::vector<Tensor> out = frames(*models, be, seq, &recorded);
  set_warning_sink({});
  for (size_t k = 0; k < seq.lr.size(); ++k)
    EXPECT_TRUE(SameBits(out[k], plain[k])) << "frame " << k;
  // One attempt and one warning per shape, then op by op without asking again.
  EXPECT_EQ(be.records_asked, 2);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("needs the host while recording"), std::string::npos) << warnings[0];
  EXPECT_EQ(recorded.recordings(), 0);
  EXPECT_EQ(recorded.replays(), 0);
  EXPECT_NE(recorded.failure().find("upload of a host tensor"), std::string::npos);
}

TEST(RecordedSteps, NeedsABackendThatRecords) {
  const auto models = test::load_tiny_models(cpu_backend());
  EXPECT_FALSE(cpu_backend().can_record());
  EXPECT_THROW(RecordedSteps(*models, cpu_backend()), std::logic_error);
  EXPECT_THROW(cpu_backend().record([] {}), std::runtime_error);
}

TEST(RecordedSteps, CopyIntoWritesAnExistingHostTensor) {
  Tensor dst = Tensor::zeros({2, 3});
  const Tensor src = Tensor::from_vector({3, 2}, {1, 2, 3, 4, 5, 6});
  cpu_backend().copy_into(dst, src);
  EXPECT_EQ(dst.to_vector(), src.to_vector());
  EXPECT_THROW(cpu_backend().copy_into(Tensor::zeros({5}), src), std::invalid_argument);
  EXPECT_THROW(cpu_backend().copy_into(src.frozen(), src), std::logic_error);
}

}  // namespace
}  // namespace sdvsr
