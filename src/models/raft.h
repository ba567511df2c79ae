#pragma once
// torchvision 0.14.1 raft_large optical flow, as Stream-DiffVSR calls it:
// model(image1 = current upscaled frame, image2 = previous one), images in
// [-1, 1], flow [N, 2, H, W] in pixels (channel 0 = x, 1 = y) such that pixel
// (x, y) of image1 matches (x + u, y + v) of image2.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/raft_config.h"
#include "runtime/backend.h"
#include "weights/weight_store.h"

namespace sdvsr {

namespace raft {
class FeatureEncoder;
class UpdateBlock;
class MaskPredictor;
}  // namespace raft

// Not thread-safe: it keeps a one-entry feature cache between calls.
class Raft {
 public:
  // A torchvision state_dict (.pth, zip) or the same keys in a .safetensors file.
  // Every tensor must be used (num_batches_tracked is ignored).
  static std::unique_ptr<Raft> load(const std::string& weights_path, Backend& be);
  // Keys under `weights` exactly as torchvision's RAFT.state_dict().
  Raft(WeightScope weights, Backend& be, int num_flow_updates = 12);
  ~Raft();

  // torchvision's RAFT.forward: the convex-upsampled flow after every update,
  // [N, 2, H, W] each. H and W must be multiples of 8 and at least 64 (where
  // the original raises); a width in 64..120 gives NaN everywhere, as there.
  std::vector<Tensor> forward(const Tensor& image1, const Tensor& image2);
  // The final flow only (what the pipeline keeps). Below the size where the
  // original computes a finite flow (H < 64 or W < 128) both images are
  // edge-padded on the right/bottom to max(H, 64) x max(W, 128) and the flow is
  // cropped back (spec raft.md section 2).
  Tensor flow(const Tensor& image1, const Tensor& image2);

  int num_flow_updates() const { return num_flow_updates_; }
  // Above this size of the level-0 correlation volume (N*(H/8*W/8)^2 floats) the
  // correlations are computed on the fly instead of materialised (same math,
  // summation order differs at ~1e-7). 0 = always on the fly.
  void set_max_corr_volume_bytes(int64_t bytes) { max_corr_volume_bytes_ = bytes; }
  static constexpr int64_t kDefaultMaxCorrVolumeBytes = int64_t{256} << 20;
  const raft::RaftConfig& config() const { return cfg_; }

 private:
  std::vector<Tensor> run(const Tensor& image1, const Tensor& image2, bool every_update);
  // Feature-encoder output for `image`, reusing the last one when the same
  // image comes again (frame t is image1 of one pair and image2 of the next;
  // instance norm is per image, so this is exact).
  Tensor features(const Tensor& image);

  Backend& be_;
  raft::RaftConfig cfg_;
  int num_flow_updates_;
  std::unique_ptr<raft::FeatureEncoder> feature_encoder_, context_encoder_;
  std::unique_ptr<raft::UpdateBlock> update_block_;
  std::unique_ptr<raft::MaskPredictor> mask_predictor_;
  int64_t max_corr_volume_bytes_ = kDefaultMaxCorrVolumeBytes;
  Tensor cached_image_, cached_fmap_;
};

}  // namespace sdvsr
