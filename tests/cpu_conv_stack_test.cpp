// conv2d_stack on the CPU keeps oneDNN's blocked layout between the
// convolutions of a stack and runs their activations there (cpu_conv.cpp). It
// must give exactly the bits of the stages run one by one (Backend's default:
// conv2d / conv2d_add, then activation_in_place), and fall back to that where
// the blocked chain does not apply (padded channel blocks, the memory budget).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu_forwarding_backend.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::conv_params;
using test::random_tensor;
using test::SameBits;

// The stages with their weights held here.
struct Stack {
  struct Layer {
    Tensor weight, bias;
    Conv2dParams params;
    Activation act;
    bool with_bias;
  };
  std::vector<Layer> layers;

  void add(int64_t in, int64_t out, int kernel, Conv2dParams p, Activation act,
           bool with_bias = true) {
    const uint32_t seed = 100 + static_cast<uint32_t>(layers.size()) * 3;
    layers.push_back({random_tensor({out, in / p.groups, kernel, kernel}, seed, -0.5f, 0.5f),
                      random_tensor({out}, seed + 1), p, act, with_bias});
  }
  std::vector<ConvStage> stages() const {
    std::vector<ConvStage> s;
    for (const Layer& l : layers)
      s.push_back(ConvStage{&l.weight, l.with_bias ? &l.bias : nullptr, l.params, l.act});
    return s;
  }
};

// The CPU backend's stack against the stage-by-stage composition of the same
// CPU ops; `blocked` says whether the blocked chain must have run.
void expect_same_as_stage_by_stage(const Stack& stack, const Tensor& x, const Tensor* residual,
                                   bool blocked) {
  test::CpuForwardingBackend one_by_one;  // Backend's default conv2d_stack
  const Tensor want = one_by_one.conv2d_stack(x, stack.stages(), residual);
  const long long before = conv_stacks_blocked();
  const Tensor got = cpu_backend().conv2d_stack(x, stack.stages(), residual);
  EXPECT_EQ(conv_stacks_blocked() - before, blocked ? 1 : 0);
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_TRUE(SameBits(got, want));
}

TEST(CpuConvStack, TheTinyVaeBlockGivesTheBitsOfItsConvolutionsOneByOne) {
  // relu(conv(relu(conv(relu(conv(x))))) + x), as a TAESD block without temporal features.
  Stack s;
  for (int k = 0; k < 3; ++k) s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  const Tensor x = random_tensor({1, 16, 23, 37}, 1, -2.f, 2.f);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    const int saved = cpu_backend().threads();
    cpu_backend().set_threads(threads);
    expect_same_as_stage_by_stage(s, x, &x, true);
    expect_same_as_stage_by_stage(s, x, nullptr, true);
    cpu_backend().set_threads(saved);
  }
}

TEST(CpuConvStack, OtherActivationsStridesAndKernelsGiveTheSameBits) {
  Stack s;
  s.add(8, 16, 3, conv_params(1, 1), Activation::kSiLU);
  s.add(16, 32, 3, conv_params(2, 1), Activation::kGELU, /*with_bias=*/false);  // downsample
  s.add(32, 32, 1, conv_params(1, 0), Activation::kTanh);
  s.add(32, 24, 3, conv_params(1, 1), Activation::kNone);
  const Tensor x = random_tensor({2, 8, 19, 26}, 2, -2.f, 2.f);  // batch 2
  expect_same_as_stage_by_stage(s, x, nullptr, true);
  const Tensor residual = random_tensor({2, 24, 10, 13}, 3, -3.f, 3.f);
  expect_same_as_stage_by_stage(s, x, &residual, true);
}

TEST(CpuConvStack, PaddedChannelBlocksRunStageByStage) {
  // 12 channels between the convolutions: the blocked layout pads them to 16,
  // and an activation over the padding could change what the next one reads.
  Stack s;
  s.add(16, 12, 3, conv_params(1, 1), Activation::kSigmoid);
  s.add(12, 16, 3, conv_params(1, 1), Activation::kReLU);
  expect_same_as_stage_by_stage(s, random_tensor({1, 16, 17, 21}, 4), nullptr, false);
}

TEST(CpuConvStack, OverTheMemoryBudgetItRunsStageByStage) {
  Stack s;
  s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  const Tensor x = random_tensor({1, 16, 30, 40}, 5);
  const size_t saved = set_conv_stack_bytes(16 * 30 * 40 * sizeof(float) - 1);  // one does not fit
  expect_same_as_stage_by_stage(s, x, nullptr, false);
  set_conv_stack_bytes(16 * 30 * 40 * sizeof(float));
  expect_same_as_stage_by_stage(s, x, nullptr, true);
  set_conv_stack_bytes(saved);
}

TEST(CpuConvStack, OneStageIsAPlainConvolution) {
  Stack s;
  s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  const Tensor x = random_tensor({1, 16, 9, 11}, 6);
  expect_same_as_stage_by_stage(s, x, &x, false);
}

TEST(CpuConvStack, ShapesThatDoNotChainAreRefusedNamingTheOp) {
  Stack s;
  s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  s.add(8, 16, 3, conv_params(1, 1), Activation::kReLU);  // expects 8 channels, gets 16
  const Tensor x = random_tensor({1, 16, 9, 11}, 7);
  try {
    cpu_backend().conv2d_stack(x, s.stages(), nullptr);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d_stack"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cpu_backend().conv2d_stack(x, {}, nullptr), std::exception);
}

}  // namespace
}  // namespace sdvsr
