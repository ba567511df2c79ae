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
