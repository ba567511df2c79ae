#include "pipeline/noise_prediction.h"

#include <stdexcept>

namespace sdvsr {

Tensor predict_noise_timed(const ModelBundle& models, Backend& be, const TimedStep& step,
                           float conditioning_scale) {
  // scale_model_input is the identity for DDIM; the LR frame joins as extra channels.
  const Tensor model_in = be.concat({step.latents, step.lr}, 1);
  if (!step.control_embedding)
    return models.unet->forward_timed(model_in, step.unet_time, models.prompt_embeds, nullptr);
  if (!models.controlnet || !step.control_time)
    throw std::logic_error("predict_noise_timed: a control embedding needs a ControlNet and its "
                           "time embedding");
  // As the pipeline does: guess mode follows the ControlNet's global_pool_conditions.
  ControlNetModel& cn = *models.controlnet;
  // Handed over, so the U-Net releases each residual once it is added.
  return models.unet->forward_timed(
      model_in, step.unet_time, models.prompt_embeds,
      cn.forward_timed(model_in, *step.control_time, models.prompt_embeds,
                       *step.control_embedding, conditioning_scale,
                       cn.global_pool_conditions()));
}

}  // namespace sdvsr
