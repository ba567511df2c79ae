// RAFT-large against torchvision 0.14.1 (golden tiny/cases/raft.safetensors and
// the e2e flows), plus naive re-computations of the lookup and convex upsampling.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "golden.h"
#include "models/raft.h"
#include "models/raft_corr.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_raft_lookup.h"
#include "weights/weight_store.h"

namespace sdvsr {
namespace {

std::unique_ptr<Raft> load_tiny_raft() {
  return Raft::load(test::golden_path("tiny/raft/raft_large.pth"), cpu_backend());
}

void report(const std::string& name, const Tensor& out, const Tensor& ref) {
  const test::Closeness c = test::compare(out, ref);
  std::printf("  %-22s rel_l2 %.3e  max_abs %.3e  (max|ref| %.3e)\n", name.c_str(), c.rel_l2,
              c.max_abs, c.max_ref);
}

Tensor random_tensor(Shape shape, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::uninitialized(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = dist(gen);
  return t;
}

bool all_finite(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}

TEST(RaftGolden, EveryFlowUpdate) {
  auto golden = test::open_case("raft.safetensors");
  auto raft = load_tiny_raft();
  std::vector<Tensor> flows = raft->forward(golden->tensor("image1"), golden->tensor("image2"));
  ASSERT_EQ(flows.size(), 12u);
  for (size_t i = 0; i < flows.size(); ++i) {
    const Tensor ref = golden->tensor("flow_iter." + std::to_string(i));
    report("flow_iter." + std::to_string(i), flows[i], ref);
    EXPECT_CLOSE(flows[i], ref) << "iteration " << i;
  }
  // flow(): only the last update's mask and upsampling; same numbers.
  Tensor last = raft->flow(golden->tensor("image1"), golden->tensor("image2"));
  report("flow", last, golden->tensor("flow"));
  EXPECT_CLOSE(last, golden->tensor("flow"));
}

// On-the-fly correlations (large frames) against the same golden flows.
TEST(RaftGolden, EveryFlowUpdateCorrelationOnTheFly) {
  auto golden = test::open_case("raft.safetensors");
  auto raft = load_tiny_raft();
  raft->set_max_corr_volume_bytes(0);
  std::vector<Tensor> flows = raft->forward(golden->tensor("image1"), golden->tensor("image2"));
  ASSERT_EQ(flows.size(), 12u);
  for (size_t i = 0; i < flows.size(); ++i) {
    const Tensor ref = golden->tensor("flow_iter." + std::to_string(i));
    report("on-the-fly iter." + std::to_string(i), flows[i], ref);
    EXPECT_CLOSE(flows[i], ref) << "iteration " << i;
  }
}

// The pipeline's calls: flow[k-1] = RAFT(upscaled[k], upscaled[k-1]), stored NHWC.
void check_e2e_flows(const std::string& file, int frames, bool upscale_here) {
  auto golden = test::open_case(file);
  auto raft = load_tiny_raft();
  Backend& be = cpu_backend();
  auto upscaled = [&](int k) {
    const std::string key = "frame" + std::to_string(k);
    if (!upscale_here) return golden->tensor(key + ".upscaled");
    Tensor lr = golden->tensor(key + ".lr");
    return be.upsample_bicubic(lr, lr.size(2) * 4, lr.size(3) * 4, false);
  };
  for (int k = 1; k < frames; ++k) {
    Tensor flow = be.permute(raft->flow(upscaled(k), upscaled(k - 1)), {0, 2, 3, 1});
    const Tensor ref = golden->tensor("frame" + std::to_string(k) + ".flow");
    report(file + " frame" + std::to_string(k), flow, ref);
    EXPECT_CLOSE(flow, ref) << file << " frame " << k;
  }
}

TEST(RaftGolden, E2eSeqAFlows) { check_e2e_flows("e2e_seq_a.safetensors", 3, false); }
TEST(RaftGolden, E2eSeqOddFlows) { check_e2e_flows("e2e_seq_odd.safetensors", 2, true); }

// The full-size checkpoint's keys (torchvision state_dict) load with our names and shapes.
TEST(RaftGolden, FullManifestKeysLoad) {
  std::ifstream in(test::golden_path("full-config-manifest.json"));
  ASSERT_TRUE(in.good());
  const nlohmann::json manifest = nlohmann::json::parse(in);
  const nlohmann::json& sd = manifest.at("modules").at("raft").at("state_dict");
  std::map<std::string, Tensor> tensors;
  for (const auto& [key, info] : sd.items())
    tensors[key] = Tensor::zeros(info.at("shape").get<Shape>());
  EXPECT_EQ(tensors.size(), 169u);
  auto store = WeightStore::from_tensors(std::move(tensors), "full-config-manifest.json raft");
  Raft raft(WeightScope(store), cpu_backend());
  EXPECT_NO_THROW(store->finish());
}

// Independent lookup: bilinear at (x/2^l + a - r, y/2^l + b - r) with align_corners
// semantics and zero padding; a height-1 level reads row 0 whatever y is.
TEST(RaftLookup, MatchesNaiveBilinear) {
  const int64_t N = 1, h = 3, w = 5, P = N * h * w;
  const int radius = 2, side = 2 * radius + 1;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{6, 10}, {3, 5}, {1, 2}};
  std::vector<Tensor> pyramid;
  for (size_t l = 0; l < sizes.size(); ++l)
    pyramid.push_back(random_tensor({P, 1, sizes[l].first, sizes[l].second}, -1, 1, 7 + l));
  const Tensor coords = random_tensor({N, 2, h, w}, -3, 12, 3);
  const Tensor out = cpu::raft_corr_lookup(pyramid, coords, radius);
  ASSERT_EQ(out.shape(), (Shape{N, int64_t(sizes.size()) * side * side, h, w}));
  double worst = 0;
  for (int64_t i = 0; i < P; ++i) {
    double cx = coords[i], cy = coords[h * w + i];
    for (size_t l = 0; l < sizes.size(); ++l) {
      const int64_t H = sizes[l].first, W = sizes[l].second;
      const float* img = pyramid[l].data() + i * H * W;
      auto at = [&](int64_t y, int64_t x) {
        return (y >= 0 && y < H && x >= 0 && x < W) ? double(img[y * W + x]) : 0.0;
      };
      for (int a = 0; a < side; ++a)
        for (int b = 0; b < side; ++b) {
          const double px = cx + a - radius, py = H == 1 ? 0.0 : cy + b - radius;
          const double x0 = std::floor(px), y0 = std::floor(py), fx = px - x0, fy = py - y0;
          const int64_t xi = int64_t(x0), yi = int64_t(y0);
          const double ref = at(yi, xi) * (1 - fx) * (1 - fy) + at(yi, xi + 1) * fx * (1 - fy) +
                             at(yi + 1, xi) * (1 - fx) * fy + at(yi + 1, xi + 1) * fx * fy;
          const double got = out[(l * side * side + a * side + b) * h * w + i];
          worst = std::max(worst, std::abs(got - ref));
        }
      cx /= 2;
      cy /= 2;
    }
  }
  EXPECT_LT(worst, 1e-5);
}

// Materialised pyramid vs on-the-fly correlations, with out-of-range centroids,
// a height-1 last level (6x10 -> 3x5 -> 1x2) and odd sizes.
TEST(RaftLookup, OnTheFlyMatchesMaterialised) {
  Backend& be = cpu_backend();
  const int64_t N = 2, C = 20, h = 6, w = 10;
  const Tensor fmap1 = random_tensor({N, C, h, w}, -1, 1, 21);
  const Tensor fmap2 = random_tensor({N, C, h, w}, -1, 1, 22);
  const Tensor coords = random_tensor({N, 2, h, w}, -4, 13, 23);
  raft::CorrPyramid volume(be, fmap1, fmap2, 3, 4, int64_t{1} << 40);
  raft::CorrPyramid direct(be, fmap1, fmap2, 3, 4, 0);
  ASSERT_TRUE(volume.materialised());
  ASSERT_FALSE(direct.materialised());
  const Tensor a = volume.lookup(coords), b = direct.lookup(coords);
  ASSERT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-5);
}

// A width-1 level: torchvision divides by w - 1 = 0, so that level is NaN everywhere.
TEST(RaftLookup, WidthOneLevelIsNaN) {
  std::vector<Tensor> pyramid = {random_tensor({4, 1, 2, 2}, -1, 1, 1),
                                 random_tensor({4, 1, 1, 1}, -1, 1, 2)};
  const Tensor coords = random_tensor({1, 2, 2, 2}, 0, 1, 5);
  const Tensor out = cpu::raft_corr_lookup(pyramid, coords, 1);
  for (int64_t c = 0; c < 18; ++c)
    for (int64_t p = 0; p < 4; ++p) {
      const float v = out[c * 4 + p];
      if (c < 9) EXPECT_TRUE(std::isfinite(v)) << c;
      else EXPECT_TRUE(std::isnan(v)) << c;
    }
}

TEST(RaftUpsample, MatchesNaiveConvexCombination) {
  const int64_t N = 2, h = 3, w = 4, f = 8;
  const Tensor flow = random_tensor({N, 2, h, w}, -5, 5, 11);
  const Tensor mask = random_tensor({N, 9 * f * f, h, w}, -3, 3, 12);
  const Tensor out = cpu::raft_convex_upsample(flow, mask, f);
  ASSERT_EQ(out.shape(), (Shape{N, 2, h * f, w * f}));
  double worst = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t i = 0; i < f; ++i)
          for (int64_t j = 0; j < f; ++j) {
            double m[9], mx = -1e30, sum = 0;
            for (int k = 0; k < 9; ++k) {
              m[k] = mask[((n * 9 * f * f + k * f * f + i * f + j) * h + y) * w + x];
              mx = std::max(mx, m[k]);
            }
            for (int k = 0; k < 9; ++k) sum += std::exp(m[k] - mx);
            for (int64_t c = 0; c < 2; ++c) {
              double ref = 0;
              for (int k = 0; k < 9; ++k) {
                const int64_t yy = y + k / 3 - 1, xx = x + k % 3 - 1;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                ref += std::exp(m[k] - mx) / sum * f * flow[((n * 2 + c) * h + yy) * w + xx];
              }
              const double got = out[((n * 2 + c) * h * f + y * f + i) * w * f + x * f + j];
              worst = std::max(worst, std::abs(got - ref));
            }
          }
  EXPECT_LT(worst, 1e-4);
}

// Sizes the original cannot handle: forward() raises (empty pyramid level) or gives
// NaN (width-1 level) like torchvision; flow() pads to 64x128 and crops back.
TEST(RaftGolden, SmallSizesPolicy) {
  auto golden = test::open_case("raft.safetensors");
  auto raft = load_tiny_raft();
  Backend& be = cpu_backend();
  const Tensor image1 = golden->tensor("image1"), image2 = golden->tensor("image2");
  auto crop = [&](const Tensor& t, int64_t H, int64_t W) {
    return be.slice(be.slice(t, 2, 0, H), 3, 0, W);
  };
  // 56 rows: level 3 would have no row.
  EXPECT_THROW(raft->forward(crop(image1, 56, 128), crop(image2, 56, 128)), std::runtime_error);
  // 64x64: level 3 is 1x1, torchvision's flow is NaN everywhere.
  std::vector<Tensor> nan_flows = raft->forward(crop(image1, 64, 64), crop(image2, 64, 64));
  EXPECT_TRUE(std::isnan(nan_flows.back()[0]));
  raft->set_max_corr_volume_bytes(0);
  EXPECT_TRUE(std::isnan(raft->forward(crop(image1, 64, 64), crop(image2, 64, 64)).back()[0]));
  raft->set_max_corr_volume_bytes(Raft::kDefaultMaxCorrVolumeBytes);
  // flow() = the padded run, cropped.
  Tensor small = raft->flow(crop(image1, 48, 64), crop(image2, 48, 64));
  ASSERT_EQ(small.shape(), (Shape{1, 2, 48, 64}));
  EXPECT_TRUE(all_finite(small));
  // Not a multiple of 8.
  EXPECT_THROW(raft->flow(crop(image1, 92, 128), crop(image2, 92, 128)), std::runtime_error);
}

}  // namespace
}  // namespace sdvsr
