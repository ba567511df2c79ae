#include "models/raft.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "models/raft_corr.h"
#include "models/raft_encoder.h"
#include "models/raft_update.h"
#include "weights/torch_checkpoint.h"

namespace sdvsr {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// make_coords_grid: channel 0 = column (x), channel 1 = row (y).
Tensor coords_grid(int64_t n, int64_t h, int64_t w) {
  Tensor g = Tensor::uninitialized({n, 2, h, w});
  float* p = g.data();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        p[((b * 2 + 0) * h + y) * w + x] = static_cast<float>(x);
        p[((b * 2 + 1) * h + y) * w + x] = static_cast<float>(y);
      }
  return g;
}

// Right/bottom edge replication of [N, C, H, W] up to [N, C, Hp, Wp] (on the host).
Tensor pad_edge(Backend& be, const Tensor& x_any, int64_t Hp, int64_t Wp) {
  const Tensor x = be.to_host(x_any);
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor out = Tensor::uninitialized({x.size(0), x.size(1), Hp, Wp});
  const float* src = x.data();
  float* dst = out.data();
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t y = 0; y < Hp; ++y) {
      const float* row = src + (p * H + std::min(y, H - 1)) * W;
      float* o = dst + (p * Hp + y) * Wp;
      std::copy(row, row + W, o);
      std::fill(o + W, o + Wp, row[W - 1]);
    }
  return out;
}

// a: any device; b: a host copy.
bool same_contents(Backend& be, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape()) return false;
  const Tensor h = be.to_host(a);
  return std::memcmp(h.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

void check_images(const Tensor& image1, const Tensor& image2) {
  if (image1.dim() != 4 || image1.size(1) != 3)
    throw std::runtime_error("RAFT: image1 must be [N, 3, H, W], got " +
                             shape_str(image1.shape()));
  if (image1.shape() != image2.shape())
    throw std::runtime_error("RAFT: input images differ in shape: " + shape_str(image1.shape()) +
                             " vs " + shape_str(image2.shape()));
  if (image1.size(2) % 8 != 0 || image1.size(3) % 8 != 0)
    throw std::runtime_error("RAFT: input H and W must be multiples of 8, got " +
                             std::to_string(image1.size(2)) + "x" +
                             std::to_string(image1.size(3)));
}

}  // namespace

std::unique_ptr<Raft> Raft::load(const std::string& weights_path, Backend& be) {
  std::shared_ptr<WeightStore> store =
      ends_with(weights_path, ".safetensors")
          ? WeightStore::from_safetensors(weights_path)
          : WeightStore::from_tensors(load_torch_checkpoint(weights_path), weights_path);
  auto model = std::make_unique<Raft>(WeightScope(store), be);
  store->finish();
  return model;
}

Raft::Raft(WeightScope weights, Backend& be, int num_flow_updates)
    : be_(be), num_flow_updates_(num_flow_updates) {
  if (num_flow_updates < 1)
    throw std::runtime_error("RAFT: num_flow_updates must be positive, got " +
                             std::to_string(num_flow_updates));
  feature_encoder_ = std::make_unique<raft::FeatureEncoder>(
      weights.sub("feature_encoder"), raft::NormKind::kInstance, cfg_.feature_layers, cfg_.strides);
  context_encoder_ = std::make_unique<raft::FeatureEncoder>(
      weights.sub("context_encoder"), raft::NormKind::kBatch, cfg_.context_layers, cfg_.strides);
  update_block_ = std::make_unique<raft::UpdateBlock>(weights.sub("update_block"), cfg_);
  mask_predictor_ = std::make_unique<raft::MaskPredictor>(weights.sub("mask_predictor"), cfg_);
}

Raft::~Raft() = default;

Tensor Raft::features(const Tensor& image) {
  if (same_contents(be_, image, cached_image_)) return cached_fmap_;
  Tensor fmap = feature_encoder_->forward(be_, image);
  // A private host copy: the caller may reuse the image's storage.
  Tensor host = be_.to_host(image);
  cached_image_ = host.storage_ptr() == image.storage_ptr() ? host.clone() : host;
  cached_fmap_ = fmap;
  return fmap;
}

std::vector<Tensor> Raft::run(const Tensor& image1, const Tensor& image2, bool every_update) {
  check_images(image1, image2);
  const int64_t N = image1.size(0);
  const int64_t h = image1.size(2) / cfg_.downsample, w = image1.size(3) / cfg_.downsample;

  // image2 first: in a stream it is the previous call's image1, still cached.
  Tensor fmap2 = features(image2);
  Tensor fmap1 = features(image1);
  if (fmap1.size(2) != h || fmap1.size(3) != w)
    throw std::runtime_error("RAFT: the feature encoder did not downsample by 8");
  raft::CorrPyramid pyramid(be_, fmap1, fmap2, cfg_.corr_levels, cfg_.corr_radius,
                            max_corr_volume_bytes_);

  // Context split: the first hidden_size channels start the GRU state, the rest is context.
  Tensor ctx = context_encoder_->forward(be_, image1);
  Tensor hidden = be_.activation(be_.slice(ctx, 1, 0, cfg_.hidden_size), Activation::kTanh);
  Tensor context = be_.activation(be_.slice(ctx, 1, cfg_.hidden_size, ctx.size(1)),
                                  Activation::kReLU);

  const Tensor coords0 = coords_grid(N, h, w);
  Tensor coords1 = coords0.clone();
  std::vector<Tensor> predictions;
  for (int it = 0; it < num_flow_updates_; ++it) {
    Tensor corr = pyramid.lookup(coords1);
    Tensor flow = be_.sub(coords1, coords0);
    raft::UpdateBlock::Result r = update_block_->forward(be_, hidden, context, corr, flow);
    hidden = r.hidden;
    coords1 = be_.add(coords1, r.delta_flow);
    // Nothing feeds back from the mask, so it is only needed where a prediction is kept.
    if (every_update || it == num_flow_updates_ - 1) {
      Tensor mask = mask_predictor_->forward(be_, hidden);
      predictions.push_back(
          be_.raft_convex_upsample(be_.sub(coords1, coords0), mask, cfg_.downsample));
    }
  }
  return predictions;
}

std::vector<Tensor> Raft::forward(const Tensor& image1, const Tensor& image2) {
  return run(image1, image2, true);
}

Tensor Raft::flow(const Tensor& image1, const Tensor& image2) {
  check_images(image1, image2);
  const int64_t H = image1.size(2), W = image1.size(3);
  // Smallest size where torchvision computes a finite flow: every pyramid level
  // at least 1 row and 2 columns (for raft_large the last level is H/64 x W/64).
  const int64_t unit = int64_t{cfg_.downsample} << (cfg_.corr_levels - 1);
  const int64_t Hp = std::max(H, unit), Wp = std::max(W, 2 * unit);
  if (Hp == H && Wp == W) return run(image1, image2, false).back();
  Tensor flow =
      run(pad_edge(be_, image1, Hp, Wp), pad_edge(be_, image2, Hp, Wp), false).back();
  return be_.slice(be_.slice(flow, 2, 0, H), 3, 0, W);
}

}  // namespace sdvsr
