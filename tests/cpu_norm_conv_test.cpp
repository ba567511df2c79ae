// group_norm_act_conv2d on the CPU writes the normalised input straight into
// the layout oneDNN's convolution reads, band by band (cpu_conv.cpp). It must
// give exactly the bits of group_norm, the activation and the convolution run
// one after another (Backend's defaults), in one band or many, and fall back
// to that composition where the direct write does not apply.
#include <gtest/gtest.h>

#include <string>

#include "cpu_forwarding_backend.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::conv_params;
using test::random_tensor;
using test::SameBits;

struct NormConvCase {
  Shape x;
  int groups;
  int64_t out;
  int kernel;
  Conv2dParams params;
  Activation norm_act, conv_act;
  bool affine, bias, residual;
  bool time_embedding = false;  // a channel_add [N, out], as a ResNet's conv1 has
};

// Restores the CPU backend's thread count, band budget and direct-write switch.
class CpuNormConv : public ::testing::Test {
 protected:
  void SetUp() override { threads_ = cpu_backend().threads(); }
  void TearDown() override {
    cpu_backend().set_threads(threads_);
    set_conv_band_bytes(size_t{64} << 20);
    set_normed_convs_direct(true);
  }

  // Returns how many direct writes the fused op made (0 or 1) after checking its bits.
  long long expect_same_bits(const NormConvCase& c, uint32_t seed) {
    const int64_t channels = c.x[1];
    const Tensor x = random_tensor(c.x, seed, -3.f, 5.f);  // a mean and spread to remove
    const Tensor gamma = random_tensor({channels}, seed + 1, 0.5f, 1.5f);
    const Tensor beta = random_tensor({channels}, seed + 2);
    const Tensor weight = random_tensor(
        {c.out, channels / c.params.groups, c.kernel, c.kernel}, seed + 3, -0.3f, 0.3f);
    const Tensor bias = random_tensor({c.out}, seed + 4);
    const GroupNormAct norm{c.groups, c.affine ? &gamma : nullptr, c.affine ? &beta : nullptr,
                            1e-5f, c.norm_act};
    const Tensor temb = random_tensor({c.x[0], c.out}, seed + 6, -1.f, 1.f);
    const ConvStage conv{&weight, c.bias ? &bias : nullptr, c.params, c.conv_act,
                         c.time_embedding ? &temb : nullptr};
    test::CpuForwardingBackend unfused;  // group_norm, activation, conv2d one by one
    const Tensor plain = unfused.conv2d(
        unfused.activation(unfused.group_norm(x, c.groups, norm.gamma, norm.beta, norm.eps),
                           c.norm_act),
        weight, conv.bias, c.params);
    const Tensor residual = random_tensor(plain.shape(), seed + 5, -2.f, 2.f);
    const Tensor* r = c.residual ? &residual : nullptr;
    const Tensor want = unfused.group_norm_act_conv2d(x, norm, conv, r);
    if (!c.residual && c.conv_act == Activation::kNone) {
      EXPECT_TRUE(SameBits(want, c.time_embedding ? unfused.add_channel_bias(plain, temb) : plain));
    }
    const long long before = normed_convs_direct();
    const Tensor got = cpu_backend().group_norm_act_conv2d(x, norm, conv, r);
    EXPECT_TRUE(SameBits(got, want));
    return normed_convs_direct() - before;
  }

 private:
  int threads_ = 1;
};

TEST_F(CpuNormConv, GivesTheBitsOfNormActivationAndConvolutionOneByOne) {
  using A = Activation;
  const NormConvCase cases[] = {
      // a U-Net ResNet's conv1 and conv2 (with the skip)
      {{1, 64, 24, 40}, 32, 64, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, false},
      {{1, 64, 24, 40}, 32, 128, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, true},
      // batch 2, odd sizes, 16 channels a group, no affine, no bias
      {{2, 32, 13, 17}, 2, 48, 3, conv_params(1, 1), A::kSiLU, A::kNone, false, false, true},
      // stride 2, an activation after the convolution too
      {{1, 32, 19, 23}, 8, 32, 3, conv_params(2, 1), A::kGELU, A::kReLU, true, true, false},
      // 1x1, ReLU and no activation before it
      {{1, 48, 9, 11}, 4, 24, 1, conv_params(1, 0), A::kReLU, A::kNone, true, true, true},
      {{1, 16, 10, 10}, 4, 16, 3, conv_params(1, 1), A::kNone, A::kTanh, true, true, false},
      // channels that are no whole number of oneDNN's blocks, and a 3-channel output
      {{1, 12, 11, 9}, 3, 20, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, true},
      {{1, 32, 8, 8}, 32, 3, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, false},
      // with a time embedding: a ResNet's conv1, batch 2, 20 channels, an
      // activation after it, and with a residual too (run op by op)
      {{1, 64, 24, 40}, 32, 128, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, false, true},
      {{2, 32, 13, 17}, 2, 48, 3, conv_params(1, 1), A::kSiLU, A::kNone, false, false, false, true},
      {{1, 12, 11, 9}, 3, 20, 3, conv_params(1, 1), A::kSiLU, A::kNone, true, true, false, true},
      {{1, 16, 10, 10}, 4, 16, 3, conv_params(1, 1), A::kSiLU, A::kReLU, true, true, false, true},
      {{1, 48, 9, 11}, 4, 24, 1, conv_params(1, 0), A::kReLU, A::kNone, true, true, true, true},
  };
  uint32_t seed = 300;
  for (const NormConvCase& c : cases) {
    SCOPED_TRACE("x " + shape_str(c.x) + " out " + std::to_string(c.out) + " k " +
                 std::to_string(c.kernel));
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      cpu_backend().set_threads(threads);
      expect_same_bits(c, seed);
    }
    seed += 10;
  }
}

TEST_F(CpuNormConv, AResNetConvolutionWritesItsInputDirectly) {
  // 64 channels at 24x40: oneDNN computes in a channel-blocked layout here.
  const NormConvCase c{{1, 64, 24, 40}, 32, 64, 3, conv_params(1, 1),
                       Activation::kSiLU, Activation::kNone, true, true, true};
  EXPECT_EQ(expect_same_bits(c, 400), 1) << "the direct write did not run";
  NormConvCase conv1 = c;  // the time embedding leaves oneDNN's layout with the output
  conv1.residual = false;
  conv1.time_embedding = true;
  EXPECT_EQ(expect_same_bits(conv1, 410), 1) << "the direct write did not run";
  set_normed_convs_direct(false);
  EXPECT_EQ(expect_same_bits(c, 400), 0) << "switched off, the plain path should run";
}

TEST_F(CpuNormConv, InBandsEachBandNormalisesItsOwnRowsAndHalo) {
  // A budget of a few rows: many bands, each with halo rows shared with its
  // neighbours; 3x3 stride 1 and stride 2, and a dilated 3x3.
  const NormConvCase cases[] = {
      {{1, 32, 37, 29}, 8, 32, 3, conv_params(1, 1), Activation::kSiLU, Activation::kNone,
       true, true, true},
      {{2, 16, 33, 20}, 4, 24, 3, conv_params(2, 1), Activation::kSiLU, Activation::kNone,
       true, true, false},
      {{1, 16, 30, 18}, 16, 16, 3, conv_params(1, 2, 2), Activation::kGELU, Activation::kNone,
       true, false, true},
      {{2, 32, 37, 29}, 8, 32, 3, conv_params(1, 1), Activation::kSiLU, Activation::kNone,
       true, true, false, true},
  };
  uint32_t seed = 500;
  for (const NormConvCase& c : cases) {
    SCOPED_TRACE("x " + shape_str(c.x));
    set_conv_band_bytes(size_t{48} << 10);
    const long long bands_before = conv_bands_run();
    expect_same_bits(c, seed);
    EXPECT_GT(conv_bands_run() - bands_before, 3) << "the convolution was not banded";
    seed += 10;
  }
}

struct ShortcutCase {
  Shape h;           // conv2's input; the block's input x has `in` channels
  int64_t in;
  int groups;
  int shortcut_kernel;
  Activation conv_act = Activation::kNone;
  size_t band_bytes = size_t{64} << 20;
};

// group_norm_act_conv2d_shortcut computes the shortcut band by band and adds
// it from oneDNN's layout: the bits of conv2d(x) added to the normalised
// convolution, as Backend's default composes them.
TEST_F(CpuNormConv, TheShortcutIsAddedBandByBandWithTheBitsOfTheSeparateOps) {
  const ShortcutCase cases[] = {
      // an up block's ResNet (the skip concatenated: more channels in than out)
      {{1, 64, 24, 40}, 96, 32, 1},
      // a down block's first ResNet (fewer in than out), batch 2, odd sizes
      {{2, 48, 13, 17}, 32, 16, 1},
      // channels that are no whole number of oneDNN's blocks
      {{1, 20, 11, 9}, 12, 4, 1},
      // diffusers' 3x3 conv_shortcut, and an activation after the sum
      {{1, 32, 12, 14}, 16, 8, 3, Activation::kReLU},
      // many bands, each with its own shortcut rows
      {{1, 32, 37, 29}, 48, 8, 1, Activation::kNone, size_t{48} << 10},
      {{2, 24, 21, 19}, 16, 8, 3, Activation::kNone, size_t{32} << 10},
  };
  uint32_t seed = 700;
  for (const ShortcutCase& c : cases) {
    SCOPED_TRACE("h " + shape_str(c.h) + " in " + std::to_string(c.in) + " k " +
                 std::to_string(c.shortcut_kernel));
    const int64_t out = c.h[1];
    const Tensor h = random_tensor(c.h, seed, -3.f, 5.f);
    const Tensor x = random_tensor({c.h[0], c.in, c.h[2], c.h[3]}, seed + 1, -2.f, 2.f);
    const Tensor gamma = random_tensor({out}, seed + 2, 0.5f, 1.5f);
    const Tensor beta = random_tensor({out}, seed + 3);
    const Tensor weight = random_tensor({out, out, 3, 3}, seed + 4, -0.3f, 0.3f);
    const Tensor bias = random_tensor({out}, seed + 5);
    const int k = c.shortcut_kernel;
    const Tensor shortcut_weight = random_tensor({out, c.in, k, k}, seed + 6, -0.3f, 0.3f);
    const Tensor shortcut_bias = random_tensor({out}, seed + 7);
    const GroupNormAct norm{c.groups, &gamma, &beta, 1e-5f, Activation::kSiLU};
    const ConvStage conv{&weight, &bias, conv_params(1, 1), c.conv_act};
    const ConvStage shortcut{&shortcut_weight, &shortcut_bias, conv_params(1, k / 2)};

    test::CpuForwardingBackend unfused;
    const Tensor want = unfused.group_norm_act_conv2d_shortcut(h, norm, conv, x, shortcut);
    if (c.conv_act == Activation::kNone) {  // the default is the sum of the separate ops
      const Tensor normed = unfused.activation(
          unfused.group_norm(h, c.groups, &gamma, &beta, 1e-5f), Activation::kSiLU);
      EXPECT_TRUE(SameBits(want, unfused.add(unfused.conv2d(x, shortcut_weight, &shortcut_bias,
                                                            shortcut.params),
                                             unfused.conv2d(normed, weight, &bias, conv.params))));
    }
    set_conv_band_bytes(c.band_bytes);
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      cpu_backend().set_threads(threads);
      const long long before = shortcuts_banded();
      const long long direct_before = normed_convs_direct();
      const long long bands_before = conv_bands_run();
      const Tensor got = cpu_backend().group_norm_act_conv2d_shortcut(h, norm, conv, x, shortcut);
      EXPECT_TRUE(SameBits(got, want));
      // Channels in whole blocks of 8 and 16 are always written directly (the
      // others where oneDNN picks channels last), and then the shortcut is banded.
      if (out % 16 == 0) {
        EXPECT_EQ(shortcuts_banded() - before, 1) << "the banded shortcut did not run";
      } else {
        EXPECT_EQ(shortcuts_banded() - before, normed_convs_direct() - direct_before);
      }
      if (c.band_bytes < (size_t{1} << 20) && out % 16 == 0) {
        EXPECT_GT(conv_bands_run() - bands_before, 6) << "the convolutions were not banded";
      }
    }
    set_conv_band_bytes(size_t{64} << 20);
    seed += 10;
  }
  // Switched off, the separate ops run, with the same bits.
  const ShortcutCase& c = cases[0];
  const Tensor h = random_tensor(c.h, 1, -3.f, 5.f);
  const Tensor x = random_tensor({1, c.in, c.h[2], c.h[3]}, 2);
  const Tensor weight = random_tensor({64, 64, 3, 3}, 3, -0.3f, 0.3f);
  const Tensor shortcut_weight = random_tensor({64, c.in, 1, 1}, 4, -0.3f, 0.3f);
  const GroupNormAct norm{c.groups, nullptr, nullptr, 1e-5f, Activation::kSiLU};
  const ConvStage conv{&weight, nullptr, conv_params(1, 1)};
  const ConvStage shortcut{&shortcut_weight, nullptr, conv_params(1, 0)};
  const Tensor fused = cpu_backend().group_norm_act_conv2d_shortcut(h, norm, conv, x, shortcut);
  set_normed_convs_direct(false);
  const long long before = shortcuts_banded();
  EXPECT_TRUE(
      SameBits(cpu_backend().group_norm_act_conv2d_shortcut(h, norm, conv, x, shortcut), fused));
  EXPECT_EQ(shortcuts_banded(), before) << "switched off, the separate ops should run";
}

TEST_F(CpuNormConv, AShortcutOfAnotherSizeIsRefused) {
  const Tensor h = random_tensor({1, 8, 6, 6}, 1);
  const Tensor x = random_tensor({1, 4, 6, 6}, 2);
  const Tensor w = random_tensor({8, 8, 3, 3}, 3);
  const Tensor sw = random_tensor({8, 4, 1, 1}, 4);
  const ConvStage conv{&w, nullptr, conv_params(1, 1)};
  const ConvStage strided{&sw, nullptr, conv_params(2, 0)};  // a 3x3 output for a 6x6 one
  try {
    cpu_backend().group_norm_act_conv2d_shortcut(
        h, GroupNormAct{4, nullptr, nullptr, 1e-5f, Activation::kSiLU}, conv, x, strided);
    ADD_FAILURE() << "a shortcut of another output size was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("shortcut output"), std::string::npos) << e.what();
  }
}

TEST_F(CpuNormConv, RefusesWhatGroupNormOrTheConvolutionRefuses) {
  const Tensor x = random_tensor({1, 12, 6, 6}, 1);
  const Tensor w = random_tensor({8, 12, 3, 3}, 2);
  const ConvStage conv{&w, nullptr, conv_params(1, 1), Activation::kNone};
  auto message = [&](const GroupNormAct& norm, const Tensor* residual) {
    try {
      cpu_backend().group_norm_act_conv2d(x, norm, conv, residual);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string groups = message(GroupNormAct{5, nullptr, nullptr, 1e-5f, Activation::kSiLU}, nullptr);
  EXPECT_NE(groups.find("groups"), std::string::npos) << groups;
  const Tensor wrong = random_tensor({1, 8, 6, 5}, 3);
  const std::string residual = message(GroupNormAct{4, nullptr, nullptr, 1e-5f, Activation::kSiLU}, &wrong);
  EXPECT_NE(residual.find("residual"), std::string::npos) << residual;
  const Tensor temb = random_tensor({1, 12}, 5);  // 12 channels for an 8-channel output
  try {
    cpu_backend().group_norm_act_conv2d(
        x, GroupNormAct{4, nullptr, nullptr, 1e-5f, Activation::kSiLU},
        ConvStage{&w, nullptr, conv_params(1, 1), Activation::kNone, &temb}, nullptr);
    ADD_FAILURE() << "a channel_add of the wrong shape was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("channel_add"), std::string::npos) << e.what();
  }
  const Tensor short_gamma = random_tensor({6}, 4);
  const std::string gamma =
      message(GroupNormAct{4, &short_gamma, nullptr, 1e-5f, Activation::kSiLU}, nullptr);
  EXPECT_NE(gamma.find("gamma"), std::string::npos) << gamma;
}

}  // namespace
}  // namespace sdvsr
