// conv2d_stack on the CPU keeps oneDNN's blocked layout between the
// convolutions of a stack and runs their activations there (cpu_conv.cpp). It
// must give exactly the bits of the stages run one by one (Backend's default:
// conv2d / conv2d_add, then activation_in_place), whole or in bands of rows
// under the memory budget, and fall back to that where the blocked chain does
// not apply (padded channel blocks, not even one row within the budget). On
// AVX-512 oneDNN computes channels last (nhwc), which the chain keeps the same way.
#include <dnnl.hpp>
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

// Whether oneDNN writes a 3x3 convolution of x [1, 16, 17, 21] to 12 channels
// in a layout that pads them (nChw8c / nChw16c, its AVX2 kernels' choice) or
// not (channels last, which its AVX-512 kernels pick): the padded one needs
// more bytes than the 12 x 17 x 21 values.
bool twelve_channels_are_padded() {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      dnnl::memory::desc({1, 16, 17, 21}, dt::f32, tag::any),
      dnnl::memory::desc({12, 16, 3, 3}, dt::f32, tag::any),
      dnnl::memory::desc({12}, dt::f32, tag::x),
      dnnl::memory::desc({1, 12, 17, 21}, dt::f32, tag::any),
      {1, 1}, {0, 0}, {1, 1}, {1, 1});
  const dnnl::convolution_forward::primitive_desc pd(d, eng);
  return pd.dst_desc().get_size() > size_t{12 * 17 * 21} * sizeof(float);
}

TEST(CpuConvStack, PaddedChannelBlocksRunStageByStage) {
  // 12 channels between the convolutions: a blocked layout pads them to 16,
  // and an activation over the padding could change what the next one reads,
  // so the stack runs stage by stage there; channels last has no padding.
  Stack s;
  s.add(16, 12, 3, conv_params(1, 1), Activation::kSigmoid);
  s.add(12, 16, 3, conv_params(1, 1), Activation::kReLU);
  const bool padded = twelve_channels_are_padded();
  SCOPED_TRACE(padded ? "oneDNN pads the 12 channels" : "oneDNN keeps 12 channels unpadded");
  expect_same_as_stage_by_stage(s, random_tensor({1, 16, 17, 21}, 4), nullptr, !padded);
}

// Over the budget the stack runs in bands of output rows, each stage's band
// computing exactly the rows (halo included) the next one reads: still the
// same bits, in as many bands as the budget asks for.
TEST(CpuConvStack, OverTheMemoryBudgetItRunsInBands) {
  Stack s;
  for (int k = 0; k < 3; ++k) s.add(16, 16, 3, conv_params(1, 1), Activation::kReLU);
  const Tensor x = random_tensor({1, 16, 30, 40}, 5, -2.f, 2.f);
  const size_t row = 16 * 40 * sizeof(float);  // one row of a tensor between two stages
  const size_t saved = set_conv_stack_bytes(30 * row);
  struct Budget {
    size_t rows;
    long long bands;
  };
  // Bands of R output rows keep R + 4 rows of the first stage's output (R + 2
  // of the second's). 30 rows fit whole; 29: R = 25, made 2 equal bands of 15;
  // 9: 6 bands of 5; 5: 30 bands of 1; 2: not even one row.
  for (const Budget b : {Budget{30, 1}, Budget{29, 2}, Budget{9, 6}, Budget{5, 30}}) {
    SCOPED_TRACE("budget " + std::to_string(b.rows) + " rows");
    set_conv_stack_bytes(b.rows * row);
    for (int threads : {1, 2}) {
      const int saved_threads = cpu_backend().threads();
      cpu_backend().set_threads(threads);
      const long long before = conv_bands_run();
      expect_same_as_stage_by_stage(s, x, &x, true);
      // The reference's three unbanded convolutions count too.
      EXPECT_EQ(conv_bands_run() - before, 3 + 3 * b.bands);
      cpu_backend().set_threads(saved_threads);
    }
  }
  set_conv_stack_bytes(2 * row);
  expect_same_as_stage_by_stage(s, x, &x, false);
  set_conv_stack_bytes(0);  // off
  expect_same_as_stage_by_stage(s, x, nullptr, false);
  set_conv_stack_bytes(saved);
}

TEST(CpuConvStack, BandsThroughStridesDilationAndBatchesGiveTheSameBits) {
  Stack s;
  s.add(8, 16, 3, conv_params(1, 1), Activation::kSiLU);
  s.add(16, 16, 3, conv_params(2, 1), Activation::kReLU, /*with_bias=*/false);  // downsample
  Conv2dParams dilated = conv_params(1, 2);
  dilated.dilation_h = dilated.dilation_w = 2;
  s.add(16, 16, 3, dilated, Activation::kGELU);
  s.add(16, 8, 1, conv_params(1, 0), Activation::kNone);
  const Tensor x = random_tensor({2, 8, 33, 21}, 8, -2.f, 2.f);
  const Tensor residual = random_tensor({2, 8, 17, 11}, 9, -3.f, 3.f);
  const size_t saved = set_conv_stack_bytes(size_t{1} << 30);
  expect_same_as_stage_by_stage(s, x, &residual, true);
  // R output rows per band keep 2R + 9 rows of the first stage's output (2688 bytes each).
  for (size_t bytes : {size_t{60000}, size_t{40000}, size_t{30000}}) {
    SCOPED_TRACE("budget " + std::to_string(bytes));
    set_conv_stack_bytes(bytes);
    const long long before = conv_bands_run();
    expect_same_as_stage_by_stage(s, x, &residual, true);
    EXPECT_GT(conv_bands_run() - before, 4 + 4) << "the stack did not run in bands";
    expect_same_as_stage_by_stage(s, x, nullptr, true);
  }
  set_conv_stack_bytes(saved);
}

// Padding wider than the kernel: a one-row band at the border would read only
// padding rows. Planning must not make such a band (oneDNN may refuse it); the
// result is still the stage-by-stage one.
TEST(CpuConvStack, BandsOfPaddingOnlyAreNotMade) {
  Stack s;
  s.add(16, 16, 3, conv_params(1, 3), Activation::kReLU);  // 6x7 -> 10x11
  s.add(16, 16, 1, conv_params(1, 0), Activation::kReLU);  // its band of row 0 reads rows -3..-1
  const Tensor x = random_tensor({1, 16, 6, 7}, 10);
  test::CpuForwardingBackend one_by_one;
  const Tensor want = one_by_one.conv2d_stack(x, s.stages(), nullptr);
  const size_t saved = set_conv_stack_bytes(16 * 11 * sizeof(float));  // one row of 10x11
  Tensor got;
  EXPECT_NO_THROW(got = cpu_backend().conv2d_stack(x, s.stages(), nullptr));
  EXPECT_TRUE(SameBits(got, want));
  set_conv_stack_bytes(saved);
}

// A time embedding ([N, C] added after the bias) on the last stage leaves
// oneDNN's layout with the output; on an earlier stage, or with a residual,
// the stack runs stage by stage. The bits are those of add_channel_bias.
TEST(CpuConvStack, AChannelAddGivesTheBitsOfAddChannelBias) {
  Stack s;
  s.add(16, 32, 3, conv_params(1, 1), Activation::kReLU);
  s.add(32, 32, 3, conv_params(1, 1), Activation::kSiLU);
  const Tensor x = random_tensor({2, 16, 21, 19}, 7, -2.f, 2.f);
  const Tensor temb = random_tensor({2, 32}, 8);
  const Tensor residual = random_tensor({2, 32, 21, 19}, 9);
  test::CpuForwardingBackend one_by_one;
  std::vector<ConvStage> last = s.stages();
  last[1].channel_add = &temb;
  std::vector<ConvStage> first = s.stages();
  first[0].channel_add = &temb;
  // The composition itself: conv, add_channel_bias, activation.
  const Tensor h = one_by_one.activation(one_by_one.conv2d(x, s.layers[0].weight,
                                                           &s.layers[0].bias, s.layers[0].params),
                                         Activation::kReLU);
  const Tensor want_last = one_by_one.activation(
      one_by_one.add_channel_bias(
          one_by_one.conv2d(h, s.layers[1].weight, &s.layers[1].bias, s.layers[1].params), temb),
      Activation::kSiLU);
  EXPECT_TRUE(SameBits(one_by_one.conv2d_stack(x, last, nullptr), want_last));
  struct Case {
    const std::vector<ConvStage>* stages;
    const Tensor* residual;
    bool blocked;
  };
  for (const Case& c : {Case{&last, nullptr, true}, Case{&first, nullptr, false},
                        Case{&last, &residual, false}}) {
    const Tensor want = one_by_one.conv2d_stack(x, *c.stages, c.residual);
    const long long before = conv_stacks_blocked();
    const Tensor got = cpu_backend().conv2d_stack(x, *c.stages, c.residual);
    EXPECT_EQ(conv_stacks_blocked() - before, c.blocked ? 1 : 0);
    EXPECT_TRUE(SameBits(got, want));
  }
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
