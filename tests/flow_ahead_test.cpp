// FlowAhead: the next frame's flow computed beside the current frame's
// diffusion gives exactly the frames of the plain loop, on the golden
// sequences; a "next frame" that is not the one pushed next, a reset stream
// and a restored state fall back to computing the flow in order.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "golden.h"
#include "pipeline/flow_ahead.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"
#include "runtime/device_backend.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::SameBits;

const ModelBundle& tiny_models() {
  static std::unique_ptr<ModelBundle> bundle = [] {
    return test::load_tiny_models(cpu_backend());
  }();
  return *bundle;
}

using test::golden_sequence;
using Sequence = test::GoldenSequence;

// The plain loop: every flow computed in order.
std::vector<Tensor> plain_frames(const Sequence& seq) {
  StreamSession s(tiny_models(), cpu_backend(), StreamOptions{});
  std::vector<Tensor> out;
  for (size_t k = 0; k < seq.lr.size(); ++k) out.push_back(s.push(seq.lr[k], &seq.noise[k]));
  return out;
}

class FlowAheadGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FlowAheadGolden, SameFramesAsComputingTheFlowInOrder) {
  const Sequence seq = golden_sequence(GetParam());
  ASSERT_GE(seq.lr.size(), 2u);
  const std::vector<Tensor> plain = plain_frames(seq);
  FlowAhead ahead(tiny_models().raft_path, cpu_backend());
  StreamSession s(tiny_models(), cpu_backend(), StreamOptions{});
  s.set_flow_ahead(&ahead);
  for (size_t k = 0; k < seq.lr.size(); ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const Tensor* next = k + 1 < seq.lr.size() ? &seq.lr[k + 1] : nullptr;
    EXPECT_TRUE(SameBits(s.push(seq.lr[k], &seq.noise[k], next), plain[k]));
  }
  EXPECT_EQ(ahead.flows_used(), static_cast<int64_t>(seq.lr.size()) - 1)
      << "a flow was computed again instead of taken from the one started ahead";
}

INSTANTIATE_TEST_SUITE_P(Sequences, FlowAheadGolden,
                         ::testing::Values("e2e_seq_a.safetensors", "e2e_seq_odd.safetensors"),
                         [](const auto& info) {
                           return info.param == "e2e_seq_a.safetensors" ? std::string("SeqA")
                                                                        : std::string("SeqOdd");
                         });

TEST(FlowAhead, AWrongNextFrameOrAResetFallsBackToTheFlowInOrder) {
  const Sequence seq = golden_sequence("e2e_seq_a.safetensors");
  ASSERT_GE(seq.lr.size(), 3u);
  const std::vector<Tensor> plain = plain_frames(seq);
  FlowAhead ahead(tiny_models().raft_path, cpu_backend());
  StreamSession s(tiny_models(), cpu_backend(), StreamOptions{});
  s.set_flow_ahead(&ahead);

  // Announced frame 2 but pushed frame 1: that flow is not used.
  EXPECT_TRUE(SameBits(s.push(seq.lr[0], &seq.noise[0], &seq.lr[2]), plain[0]));
  EXPECT_TRUE(SameBits(s.push(seq.lr[1], &seq.noise[1], &seq.lr[2]), plain[1]));
  EXPECT_EQ(ahead.flows_used(), 0);
  // Frame 2 was announced correctly this time.
  EXPECT_TRUE(SameBits(s.push(seq.lr[2], &seq.noise[2]), plain[2]));
  EXPECT_EQ(ahead.flows_used(), 1);

  // A reset drops the flow in flight: frame 0 again, then frame 1 in order.
  s.reset();
  EXPECT_TRUE(SameBits(s.push(seq.lr[0], &seq.noise[0], &seq.lr[1]), plain[0]));
  const StreamState after_first = s.state();
  s.restore(after_first);  // also drops it
  EXPECT_TRUE(SameBits(s.push(seq.lr[1], &seq.noise[1]), plain[1]));
  EXPECT_EQ(ahead.flows_used(), 1);
}

TEST(FlowAhead, TheCpuHasNoSecondBackend) {
  EXPECT_EQ(flow_ahead_backend(cpu_backend()), nullptr);
}

}  // namespace
}  // namespace sdvsr
