#pragma once
// The part UNet2DConditionModel and ControlNetModel share: conv_in, the time
// (and optional class) embedding, the down stages and the mid stage. Each model
// owns one built from its own weights.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "nn/timestep_embedding.h"
#include "nn/unet_blocks.h"
#include "nn/unet_config.h"

namespace sdvsr::nn {

class UNetEncoder {
 public:
  UNetEncoder(const UNetEncoderSpec& spec, const WeightScope& w, Backend& be);

  const UNetEncoderSpec& spec() const { return spec_; }

  // emb [batch, time_embed_dim] for a scalar timestep broadcast over the batch.
  // class_label is required exactly when the config has a class embedding.
  // The result depends only on its arguments, and a stream uses the same few
  // timesteps on every frame: each is computed once and kept.
  Tensor time_embedding(float timestep, int64_t batch, std::optional<int64_t> class_label) const;

  // conv_in (after center_input_sample when configured).
  Tensor conv_in(const Tensor& sample) const;
  // residual + conv_in(sample) in one op (the ControlNet adds its conditioning
  // embedding); same bits as add(conv_in(sample), residual).
  Tensor conv_in_add(const Tensor& sample, const Tensor& residual) const;
  // The shape conv_in gives for a sample of shape `sample` [N, C, H, W].
  Shape conv_in_shape(const Shape& sample) const;

  // Runs the down stages on x (the conv_in output, plus the ControlNet
  // condition for a ControlNet). `skips` receives x first, then every stage output.
  Tensor down(const Tensor& x, const Tensor& emb, const Tensor& context,
              std::vector<Tensor>& skips) const;

  // The mid stage (identity when mid_block_type is null).
  Tensor mid(const Tensor& x, const Tensor& emb, const Tensor& context) const;

  int num_downsamplers() const;

  // Throws naming the config when sample / encoder_hidden_states do not fit.
  void check_inputs(const Tensor& sample, const Tensor& context) const;

 private:
  UNetEncoderSpec spec_;
  Backend* be_;
  Conv2d conv_in_;
  TimestepEmbedding time_embedding_;
  TimestepEmbedding class_mlp_;  // ClassEmbedKind::kTimestep
  Tensor class_table_;           // ClassEmbedKind::kTable [num_class_embeds, time_embed_dim]
  std::vector<DownStage> down_;
  std::optional<MidStage> mid_;

  Tensor compute_time_embedding(float timestep, int64_t batch,
                                std::optional<int64_t> class_label) const;
  using TimeKey = std::tuple<float, int64_t, std::optional<int64_t>>;
  struct TimeEmbeddings {
    std::mutex mutex;
    std::map<TimeKey, Tensor> by_key;
  };
  std::shared_ptr<TimeEmbeddings> time_embeddings_ = std::make_shared<TimeEmbeddings>();
};

}  // namespace sdvsr::nn
