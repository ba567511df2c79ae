// upsample_nearest_conv2d on the CPU writes the upsampled input straight into
// the layout oneDNN's convolution reads, band by band (cpu_conv.cpp). It must
// give exactly the bits of upsample_nearest and the convolution run one after
// the other (Backend's default), in one band or many, fall back to that
// composition where the direct write does not apply, and the models' upsamplers
// must reach it.
#include <gtest/gtest.h>

#include <string>

#include "cpu_forwarding_backend.h"
#include "golden.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "test_tensors.h"
#include "weights/model_config.h"

namespace sdvsr {
namespace {

using test::conv_params;
using test::random_tensor;
using test::SameBits;

struct UpsampleConvCase {
  Shape x;
  int64_t out_h, out_w, out;
  int kernel;
  Conv2dParams params;
  bool bias = true;
  Activation act = Activation::kNone;
  bool time_embedding = false;  // a channel_add [N, out]
};

// Restores the CPU backend's thread count, band budget and direct-write switch.
class CpuUpsampleConv : public ::testing::Test {
 protected:
  void SetUp() override { threads_ = cpu_backend().threads(); }
  void TearDown() override {
    cpu_backend().set_threads(threads_);
    set_conv_band_bytes(size_t{64} << 20);
    set_upsampled_convs_direct(true);
  }

  // Returns how many direct writes the fused op made (0 or 1) after checking its bits.
  long long expect_same_bits(const UpsampleConvCase& c, uint32_t seed) {
    const Tensor x = random_tensor(c.x, seed, -2.f, 3.f);
    const Tensor weight =
        random_tensor({c.out, c.x[1], c.kernel, c.kernel}, seed + 1, -0.3f, 0.3f);
    const Tensor bias = random_tensor({c.out}, seed + 2);
    const Tensor temb = random_tensor({c.x[0], c.out}, seed + 3);
    const ConvStage conv{&weight, c.bias ? &bias : nullptr, c.params, c.act,
                         c.time_embedding ? &temb : nullptr};
    test::CpuForwardingBackend unfused;  // upsample_nearest, then conv2d
    const Tensor want = unfused.upsample_nearest_conv2d(x, c.out_h, c.out_w, conv);
    if (c.act == Activation::kNone && !c.time_embedding) {
      EXPECT_TRUE(SameBits(want, unfused.conv2d(unfused.upsample_nearest(x, c.out_h, c.out_w),
                                                weight, conv.bias, c.params)));
    }
    const long long before = upsampled_convs_direct();
    const Tensor got = cpu_backend().upsample_nearest_conv2d(x, c.out_h, c.out_w, conv);
    EXPECT_TRUE(SameBits(got, want));
    return upsampled_convs_direct() - before;
  }

 private:
  int threads_ = 1;
};

TEST_F(CpuUpsampleConv, GivesTheBitsOfUpsampleAndConvolutionOneByOne) {
  using A = Activation;
  const UpsampleConvCase cases[] = {
      // a U-Net upsampler: twice the size, 3x3
      {{1, 64, 12, 20}, 24, 40, 64, 3, conv_params(1, 1)},
      // the size of an odd skip connection (diffusers' upsample_size): no whole factor
      {{1, 32, 7, 9}, 13, 17, 32, 3, conv_params(1, 1)},
      // batch 2, no bias, an activation and a time embedding after it
      {{2, 16, 6, 5}, 12, 10, 24, 3, conv_params(1, 1), false, A::kReLU, true},
      // a shrinking size, 1x1, stride 2 and dilation after the upsampling
      {{1, 16, 9, 11}, 5, 7, 16, 1, conv_params(1, 0)},
      {{1, 16, 9, 11}, 18, 22, 16, 3, conv_params(2, 1)},
      {{1, 16, 9, 11}, 27, 33, 8, 3, conv_params(1, 2, 2), true, A::kSiLU},
      // channels that are no whole number of oneDNN's blocks; a 3-channel image
      {{1, 12, 8, 7}, 16, 14, 20, 3, conv_params(1, 1)},
      {{1, 3, 10, 10}, 20, 20, 16, 3, conv_params(1, 1)},
  };
  uint32_t seed = 900;
  for (const UpsampleConvCase& c : cases) {
    SCOPED_TRACE("x " + shape_str(c.x) + " to " + std::to_string(c.out_h) + "x" +
                 std::to_string(c.out_w) + " out " + std::to_string(c.out));
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads " + std::to_string(threads));
      cpu_backend().set_threads(threads);
      expect_same_bits(c, seed);
    }
    seed += 10;
  }
}

TEST_F(CpuUpsampleConv, AnUpsamplerWritesItsInputDirectlyAndCanBeSwitchedOff) {
  // 64 channels: oneDNN computes in a channel-blocked layout here.
  const UpsampleConvCase c{{1, 64, 12, 20}, 24, 40, 64, 3, conv_params(1, 1)};
  EXPECT_EQ(expect_same_bits(c, 1000), 1) << "the direct write did not run";
  set_upsampled_convs_direct(false);
  EXPECT_EQ(expect_same_bits(c, 1000), 0) << "switched off, the plain path should run";
}

TEST_F(CpuUpsampleConv, InBandsEachBandWritesItsOwnRowsAndHalo) {
  const UpsampleConvCase cases[] = {
      {{1, 32, 19, 15}, 38, 30, 32, 3, conv_params(1, 1)},
      {{2, 16, 17, 10}, 33, 20, 16, 3, conv_params(1, 1), true, Activation::kNone, true},
      {{1, 16, 15, 9}, 30, 18, 16, 3, conv_params(2, 1)},
  };
  uint32_t seed = 1100;
  for (const UpsampleConvCase& c : cases) {
    SCOPED_TRACE("x " + shape_str(c.x));
    set_conv_band_bytes(size_t{16} << 10);
    const long long bands_before = conv_bands_run();
    EXPECT_EQ(expect_same_bits(c, seed), 1) << "the direct write did not run";
    EXPECT_GT(conv_bands_run() - bands_before, 3) << "the convolution was not banded";
    seed += 10;
  }
}

TEST_F(CpuUpsampleConv, RefusesWhatTheConvolutionOrTheUpsamplingRefuses) {
  const Tensor x = random_tensor({1, 8, 5, 5}, 1);
  const Tensor w = random_tensor({8, 6, 3, 3}, 2);  // 6 input channels for 8
  const ConvStage conv{&w, nullptr, conv_params(1, 1)};
  auto message = [&](const Tensor& in, int64_t h, int64_t wd) {
    try {
      cpu_backend().upsample_nearest_conv2d(in, h, wd, conv);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string fit = message(x, 10, 10);
  EXPECT_NE(fit.find("does not fit"), std::string::npos) << fit;
  const std::string size = message(random_tensor({1, 6, 5, 5}, 3), 0, 10);
  EXPECT_NE(size.find("positive"), std::string::npos) << size;
  const std::string rank = message(random_tensor({6, 5, 5}, 4), 10, 10);
  EXPECT_NE(rank.find("upsample_nearest"), std::string::npos) << rank;
}

// Counts the calls of the fused op and hands everything to the CPU backend.
class UpsampleConvCounter : public test::CpuForwardingBackend {
 public:
  Tensor upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                 const ConvStage& conv) override {
    ++calls;
    return cpu().upsample_nearest_conv2d(x, out_h, out_w, conv);
  }
  int calls = 0;
};

TEST(UpsampleConvInModels, TheUNetsUpsamplersAndTheVaeDecoderRunTheFusedOp) {
  UpsampleConvCounter be;
  auto unet = UNet2DConditionModel::load(test::golden_path("tiny/unet"), be);
  auto g = test::open_case("unet.safetensors");
  const Tensor out = unet->forward(g->tensor("sample"),
                                   static_cast<float>(g->int64_values("timestep").at(0)),
                                   g->tensor("encoder_hidden_states"));
  EXPECT_CLOSE(out, g->tensor("output"));
  const ModelConfig config = ModelConfig::load(test::golden_path("tiny/unet/config.json"));
  const size_t up_blocks = config.get_string_list("up_block_types").size();
  EXPECT_EQ(be.calls, static_cast<int>(up_blocks) - 1) << "one per up block but the last";

  be.calls = 0;
  auto vae = TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), be);
  auto v = test::open_case("temporal_vae.safetensors");
  EXPECT_CLOSE(vae->decode(v->tensor("decode.input"), nullptr), v->tensor("decode.output"));
  EXPECT_EQ(be.calls, static_cast<int>(vae->config().decoder_block_out_channels.size()) - 1)
      << "one per decoder stage but the last";
}

}  // namespace
}  // namespace sdvsr
