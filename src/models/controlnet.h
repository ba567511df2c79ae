#pragma once
// diffusers 0.27.2 ControlNetModel (Stream-DiffVSR's ARTG), built from its config.json.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/controlnet_residuals.h"
#include "nn/unet_encoder.h"
#include "weights/model_config.h"

namespace sdvsr {

class ControlNetModel {
 public:
  static std::unique_ptr<ControlNetModel> load(const std::string& folder, Backend& be);

  ControlNetModel(const ModelConfig& cfg, WeightScope weights, Backend& be);

  // sample [N, in, h, w] (the U-Net's input), controlnet_cond [N, 3, H, W] (an
  // image whose conditioning embedding lands on h x w). Every residual is
  // multiplied by conditioning_scale (guess_mode: by 10^linspace(-1, 0) * scale).
  ControlNetResiduals forward(const Tensor& sample, float timestep,
                              const Tensor& encoder_hidden_states, const Tensor& controlnet_cond,
                              float conditioning_scale, bool guess_mode = false,
                              std::optional<int64_t> class_label = std::nullopt);

  // The two halves of forward(), for callers that reuse one condition over
  // several denoising steps: the conditioning embedding depends only on the image.
  Tensor condition_embedding(const Tensor& controlnet_cond) const;
  ControlNetResiduals forward_embedded(const Tensor& sample, float timestep,
                                       const Tensor& encoder_hidden_states,
                                       const Tensor& condition_embedding, float conditioning_scale,
                                       bool guess_mode = false,
                                       std::optional<int64_t> class_label = std::nullopt);

  // The time (and class) embedding forward_embedded() computes from its
  // timestep, and the same step from one computed before (a recorded step
  // reads it from a fixed buffer).
  Tensor time_embedding(float timestep, int64_t batch,
                        std::optional<int64_t> class_label = std::nullopt) const;
  ControlNetResiduals forward_timed(const Tensor& sample, const Tensor& time_embedding,
                                    const Tensor& encoder_hidden_states,
                                    const Tensor& condition_embedding, float conditioning_scale,
                                    bool guess_mode = false);

  int in_channels() const { return static_cast<int>(encoder_.spec().in_channels); }
  bool global_pool_conditions() const { return global_pool_; }
  const nn::UNetEncoderSpec& spec() const { return encoder_.spec(); }

 private:
  Backend* be_;
  std::string origin_;
  nn::UNetEncoder encoder_;
  bool bgr_ = false;
  bool global_pool_ = false;
  int64_t cond_channels_ = 3;
  // ControlNetConditioningEmbedding: conv_in, (conv, stride-2 conv) pairs, conv_out.
  nn::Conv2d cond_in_, cond_out_;
  std::vector<nn::Conv2d> cond_blocks_;
  std::vector<nn::Conv2d> zero_convs_;  // controlnet_down_blocks
  nn::Conv2d zero_conv_mid_;            // controlnet_mid_block
};

}  // namespace sdvsr
