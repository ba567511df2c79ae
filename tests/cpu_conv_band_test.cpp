// Large CPU convolutions run in bands of output rows (cpu_conv.cpp), so that
// oneDNN's blocked copies stay band-sized. A band must give exactly the bits
// of the whole convolution: every output value is the same sum of the same
// products. Checked on awkward shapes, strides, dilation, groups, a plain-layout
// first layer, batch 2 and the fused residual, with 1 and 2 threads, and with
// one-row and uneven bands.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "golden.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::random_tensor;
using test::SameBits;
using test::conv_params;

struct BandCase {
  const char* name;
  Shape x;  // [n, c, h, w]
  int64_t out_channels, kernel;
  Conv2dParams p;
};

const BandCase kCases[] = {
    {"3x3 same", {1, 13, 37, 21}, 19, 3, conv_params(1, 1)},
    {"3x3 stride 2 (downsample)", {1, 16, 38, 23}, 16, 3, conv_params(2, 1)},
    {"3x3 stride 2, odd height", {1, 8, 37, 20}, 12, 3, conv_params(2, 1)},
    {"1x1", {1, 24, 29, 17}, 40, 1, conv_params(1, 0)},
    {"3x3 dilation 2", {1, 8, 31, 19}, 8, 3, conv_params(1, 2, 2)},
    {"3x3 groups 2", {1, 16, 27, 15}, 32, 3, conv_params(1, 1, 1, 2)},
    {"7x7 stride 2 (RAFT stem)", {1, 3, 45, 33}, 64, 7, conv_params(2, 3)},
    {"3x3 three input channels", {1, 3, 40, 24}, 64, 3, conv_params(1, 1)},
    {"3x3 batch 2", {2, 9, 26, 18}, 10, 3, conv_params(1, 1)},
    {"3x3 no padding", {1, 8, 25, 16}, 8, 3, conv_params(1, 0)},
};

// The whole convolution (banding off), then the banded one at each budget.
void expect_bands_match(const BandCase& c, bool with_bias, bool with_residual) {
  Backend& cpu = cpu_backend();
  const int64_t in_per_group = c.x[1] / c.p.groups;
  const Tensor x = random_tensor(c.x, 11, -2.f, 2.f);
  const Tensor w = random_tensor({c.out_channels, in_per_group, c.kernel, c.kernel}, 12);
  const Tensor b = random_tensor({c.out_channels}, 13);
  const Tensor* bias = with_bias ? &b : nullptr;
  auto run = [&](const Tensor* residual) {
    return residual ? cpu.conv2d_add(x, w, bias, c.p, *residual) : cpu.conv2d(x, w, bias, c.p);
  };

  set_conv_band_bytes(0);
  const Tensor plain = cpu.conv2d(x, w, bias, c.p);
  const Tensor residual = random_tensor(plain.shape(), 14, -4.f, 4.f);
  const Tensor* r = with_residual ? &residual : nullptr;
  const Tensor whole = run(r);
  const int64_t out_rows = plain.size(2);
  const size_t row_bytes = static_cast<size_t>(c.x[0] * (c.x[1] * c.x[3] + c.out_channels * plain.size(3))) * sizeof(float);
  // 1 byte: one output row per band. 5 rows' worth: uneven bands with halos.
  for (size_t budget : {size_t{1}, 5 * row_bytes}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::string(c.name) + " budget " + std::to_string(budget) + " threads " +
                   std::to_string(threads));
      cpu.set_threads(threads);
      set_conv_band_bytes(budget);
      const long long before = conv_bands_run();
      const Tensor banded = run(r);
      const long long bands = conv_bands_run() - before;
      EXPECT_GT(bands, 1) << "the convolution was not split";
      EXPECT_LE(bands, out_rows);
      if (budget == 1) {
        EXPECT_EQ(bands, out_rows);
      }
      EXPECT_TRUE(SameBits(banded, whole));
    }
  }
  set_conv_band_bytes(size_t{64} << 20);
  cpu.set_threads(2);
}

TEST(CpuConvBands, EqualTheWholeConvolution) {
  for (const BandCase& c : kCases) expect_bands_match(c, /*bias=*/true, /*residual=*/false);
}

TEST(CpuConvBands, WithoutBias) {
  for (const BandCase& c : kCases) expect_bands_match(c, /*bias=*/false, /*residual=*/false);
}

TEST(CpuConvBands, FusedResidualEqualsTheWholeConvolution) {
  for (const BandCase& c : kCases) expect_bands_match(c, /*bias=*/true, /*residual=*/true);
}

// Whole golden models (U-Net and temporal VAE) give the same bits with every
// convolution split into bands as with none split.
TEST(CpuConvBands, GoldenModelsSameBitsBandedAndWhole) {
  auto unet = UNet2DConditionModel::load(test::golden_path("tiny/unet"), cpu_backend());
  auto vae = TemporalAutoencoderTiny::load(test::golden_path("tiny/vae"), cpu_backend());
  auto g = test::open_case("unet_odd.safetensors");
  const Tensor sample = g->tensor("sample");
  const Tensor context = g->tensor("encoder_hidden_states");
  const float t = static_cast<float>(g->int64_values("timestep").at(0));
  const Tensor image = test::open_case("temporal_vae.safetensors")->tensor("encode.input");
  auto run_all = [&] {
    std::vector<Tensor> out{unet->forward(sample, t, context), vae->encode(image)};
    const std::vector<Tensor> feats = vae->temporal_features(image);
    out.push_back(vae->decode(out[1], &feats));
    return out;
  };
  set_conv_band_bytes(0);
  const std::vector<Tensor> whole = run_all();
  set_conv_band_bytes(4096);  // a few rows per band at these sizes
  const long long before = conv_bands_run();
  const std::vector<Tensor> banded = run_all();
  EXPECT_GT(conv_bands_run() - before, 200) << "the models' convolutions were not split";
  set_conv_band_bytes(size_t{64} << 20);
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_TRUE(SameBits(banded[i], whole[i])) << i;
}

// The default budget leaves small convolutions whole and splits large ones.
TEST(CpuConvBands, DefaultBudgetSplitsOnlyLargeConvolutions) {
  Backend& cpu = cpu_backend();
  set_conv_band_bytes(size_t{64} << 20);
  const Tensor w = random_tensor({64, 64, 3, 3}, 21);
  long long before = conv_bands_run();
  cpu.conv2d(random_tensor({1, 64, 32, 32}, 22), w, nullptr, conv_params(1, 1));
  EXPECT_EQ(conv_bands_run() - before, 1);
  // 64 channels at 256 x 640: 40 MiB in and 40 MiB out, over the 64 MiB budget.
  before = conv_bands_run();
  cpu.conv2d(random_tensor({1, 64, 256, 640}, 23), w, nullptr, conv_params(1, 1));
  EXPECT_GE(conv_bands_run() - before, 2);
}

}  // namespace
}  // namespace sdvsr
