#pragma once
// diffusers 0.27.2 UNet2DConditionModel (the SD-x4-upscaler family used by
// Stream-DiffVSR), built from its config.json.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/controlnet_residuals.h"
#include "nn/unet_encoder.h"
#include "weights/model_config.h"

namespace sdvsr {

class UNet2DConditionModel {
 public:
  // folder/config.json + diffusion_pytorch_model.safetensors (or .bin); every
  // tensor of the file must be used.
  static std::unique_ptr<UNet2DConditionModel> load(const std::string& folder, Backend& be);

  UNet2DConditionModel(const ModelConfig& cfg, WeightScope weights, Backend& be);

  // sample [N, in, h, w], encoder_hidden_states [N, L, cross_attention_dim].
  // residuals: ControlNet outputs added to the skip connections and the mid
  // block output (down_block_additional_residuals / mid_block_additional_residual).
  // class_label: diffusers' class_labels (the x4 upscaler's noise_level); needed
  // exactly when the config has a class embedding.
  Tensor forward(const Tensor& sample, float timestep, const Tensor& encoder_hidden_states,
                 const ControlNetResiduals* residuals = nullptr,
                 std::optional<int64_t> class_label = std::nullopt);
  // The same with residuals the U-Net may consume: each is released once added,
  // so none is held through the up path (at LR 360x640 they are about 1 GB).
  Tensor forward(const Tensor& sample, float timestep, const Tensor& encoder_hidden_states,
                 ControlNetResiduals&& residuals);

  // The time (and class) embedding forward() computes from its timestep, and
  // forward() from one computed before: a recorded denoising step reads it
  // from a fixed buffer, so that one recording serves every timestep.
  Tensor time_embedding(float timestep, int64_t batch,
                        std::optional<int64_t> class_label = std::nullopt) const;
  Tensor forward_timed(const Tensor& sample, const Tensor& time_embedding,
                       const Tensor& encoder_hidden_states,
                       const ControlNetResiduals* residuals = nullptr);
  Tensor forward_timed(const Tensor& sample, const Tensor& time_embedding,
                       const Tensor& encoder_hidden_states, ControlNetResiduals&& residuals);

  int in_channels() const { return static_cast<int>(encoder_.spec().in_channels); }
  int out_channels() const { return static_cast<int>(decoder_.out_channels); }
  const nn::UNetEncoderSpec& spec() const { return encoder_.spec(); }

 private:
  Tensor forward_impl(const Tensor& sample, const Tensor& emb, const Tensor& encoder_hidden_states,
                      const ControlNetResiduals* residuals, ControlNetResiduals* consumed);

  UNet2DConditionModel(const ModelConfig& cfg, const nn::UNetEncoderSpec& enc, WeightScope weights,
                       Backend& be);

  Backend* be_;
  nn::UNetEncoder encoder_;
  nn::UNetDecoderSpec decoder_;
  std::vector<nn::UpStage> up_;
  nn::GroupNorm conv_norm_out_;
  nn::Conv2d conv_out_;
};

}  // namespace sdvsr
