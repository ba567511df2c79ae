#pragma once
// One noise prediction of the denoising loop, its time embeddings computed
// before: the LR frame joins the latents as extra channels, and the ControlNet
// (given the conditioning embedding of the warped previous output) adds its
// residuals to the U-Net's skip connections. StreamSession runs it directly;
// RecordedSteps records it once per shape and replays it.
#include "pipeline/model_bundle.h"
#include "runtime/backend.h"

namespace sdvsr {

struct TimedStep {
  const Tensor& latents;           // [1, latent channels, h, w]
  const Tensor& lr;                // [1, 3, h, w]
  const Tensor& unet_time;         // UNet2DConditionModel::time_embedding
  const Tensor* control_time;      // ControlNetModel::time_embedding (with control only)
  const Tensor* control_embedding; // ControlNetModel::condition_embedding, or null: no control
};

Tensor predict_noise_timed(const ModelBundle& models, Backend& be, const TimedStep& step,
                           float conditioning_scale);

}  // namespace sdvsr
