#pragma once
// The U-Net stages of diffusers' unet_2d_blocks.py used by the SD-x4-upscaler
// family: DownBlock2D / CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn /
// UNetMidBlock2D, UpBlock2D / CrossAttnUpBlock2D. A stage with attention
// settings is the CrossAttn variant (a Transformer2D after every ResNet).
#include <optional>
#include <vector>

#include "nn/resample.h"
#include "nn/resnet_block.h"
#include "nn/transformer_2d.h"

namespace sdvsr::nn {

struct StageSettings {
  int num_layers = 2;  // ResNets in the stage
  ResnetSettings resnet;
  // Present for the CrossAttn stages; attn->num_layers is replaced per ResNet by
  // transformer_layers[i] (diffusers' transformer_layers_per_block).
  std::optional<TransformerSettings> attn;
  std::vector<int> transformer_layers;
};

class DownStage {
 public:
  DownStage(const WeightScope& w, Backend& be, int64_t in, int64_t out, const StageSettings& s,
            bool add_downsample, int downsample_padding);
  // Appends every ResNet(+attention) output and the downsampler output to `skips`.
  Tensor forward(const Tensor& x, const Tensor& emb, const Tensor& context,
                 std::vector<Tensor>& skips) const;
  bool has_downsampler() const { return downsampler_.has_value(); }

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;
  std::optional<Downsample2D> downsampler_;
};

class MidStage {
 public:
  // with_attention: UNetMidBlock2DCrossAttn (ResNet, then num_layers x
  // (Transformer2D, ResNet)); otherwise UNetMidBlock2D with num_layers 0 (one ResNet).
  MidStage(const WeightScope& w, Backend& be, int64_t channels, const StageSettings& s);
  Tensor forward(const Tensor& x, const Tensor& emb, const Tensor& context) const;

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;
};

class UpStage {
 public:
  // in: channels of the skip consumed by the last ResNet; prev_out: channels of
  // the incoming hidden state; out: this stage's width.
  UpStage(const WeightScope& w, Backend& be, int64_t in, int64_t prev_out, int64_t out,
          const StageSettings& s, bool add_upsample);
  int num_resnets() const { return static_cast<int>(resnets_.size()); }
  bool has_upsampler() const { return upsampler_.has_value(); }
  // Pops one skip per ResNet from the back of `skips` (concatenated after x on
  // channels); the upsampler, if any, resizes to (up_h, up_w).
  Tensor forward(const Tensor& x, std::vector<Tensor>& skips, const Tensor& emb,
                 const Tensor& context, int64_t up_h, int64_t up_w) const;

 private:
  Backend* be_;
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;
  std::optional<Upsample2D> upsampler_;
};

}  // namespace sdvsr::nn
