#include "pipeline/stream_session.h"

#include <stdexcept>
#include <string>

#include "pipeline/bicubic_upscale.h"
#include "pipeline/flow_warp.h"
#include "pipeline/noise.h"
#include "pipeline/noise_prediction.h"

namespace sdvsr {

StreamSession::StreamSession(const ModelBundle& models, Backend& be, StreamOptions options)
    : models_(models), be_(be), options_(options), scheduler_(*models.scheduler) {
  if (options_.num_inference_steps < 1)
    throw std::invalid_argument("num_inference_steps must be at least 1");
  scheduler_.set_timesteps(options_.num_inference_steps);
  timesteps_ = scheduler_.timesteps();
}

Tensor StreamSession::upscale(const Tensor& lr) const { return bicubic_upscale(be_, lr); }

Tensor StreamSession::flow(const Tensor& up_current, const Tensor& up_previous) const {
  Tensor f = models_.raft->flow(up_current, up_previous);  // [1, 2, H, W]
  return be_.permute(f, {0, 2, 3, 1});
}

Tensor StreamSession::warp(const Tensor& prev_decoded, const Tensor& flow_nhwc) const {
  return flow_warp(be_, prev_decoded, flow_nhwc, GridSampleMode::kBilinear);
}

Tensor StreamSession::initial_latents(const Tensor& lr, int64_t frame_index) const {
  // latent_channels x (LR size): the latent is HR / vae_scale_factor = LR size.
  const int64_t c = models_.unet->in_channels() - lr.size(1);
  return gaussian_noise({1, c, lr.size(2), lr.size(3)}, options_.seed,
                        static_cast<uint64_t>(frame_index));
}

Tensor StreamSession::predict_noise(const Tensor& latents, const Tensor& lr, int64_t t,
                                    const Tensor* warped) const {
  if (!warped || !models_.controlnet) return predict_noise_embedded(latents, lr, t, nullptr);
  const Tensor embedding = models_.controlnet->condition_embedding(*warped);
  return predict_noise_embedded(latents, lr, t, &embedding);
}

Tensor StreamSession::predict_noise_embedded(const Tensor& latents, const Tensor& lr, int64_t t,
                                             const Tensor* control_embedding) const {
  const float timestep = static_cast<float>(t);
  const bool control = control_embedding && models_.controlnet;
  // Both models keep their time embeddings per timestep: computed once a stream.
  const Tensor unet_time = models_.unet->time_embedding(timestep, latents.size(0));
  const Tensor control_time =
      control ? models_.controlnet->time_embedding(timestep, latents.size(0)) : Tensor();
  const TimedStep step{latents, lr, unet_time, control ? &control_time : nullptr,
                       control ? control_embedding : nullptr};
  if (recorded_)
    if (std::optional<Tensor> pred = recorded_->predict(step, options_.conditioning_scale))
      return *pred;
  return predict_noise_timed(models_, be_, step, options_.conditioning_scale);
}

Tensor StreamSession::denoise(Tensor latents, const Tensor& lr, const Tensor* warped) const {
  std::optional<Tensor> embedding;
  if (warped && models_.controlnet) embedding = models_.controlnet->condition_embedding(*warped);
  const int steps = static_cast<int>(timesteps_.size());
  for (int i = 0; i < steps; ++i) {
    const int64_t t = timesteps_[i];
    if (options_.before_step) options_.before_step(i, steps);
    const Tensor noise_pred =
        predict_noise_embedded(latents, lr, t, embedding ? &*embedding : nullptr);
    // The scheduler's arithmetic runs on the host (the latents are LR-sized).
    latents = scheduler_.step(be_.to_host(noise_pred), t, be_.to_host(latents)).prev_sample;
  }
  return latents;
}

Tensor StreamSession::decode(const Tensor& latents, const Tensor* warped) const {
  const double sf = models_.vae->scaling_factor();
  Tensor z = sf == 1.0 ? latents : be_.scale(latents, static_cast<float>(1.0 / sf));
  if (!warped) return models_.vae->decode(z, nullptr);
  // The encoder's block outputs on the raw warped frame, deepest first, feed
  // the decoder's temporal blocks one to one.
  std::vector<Tensor> features = models_.vae->temporal_features(*warped);
  return models_.vae->decode(z, &features);
}

void StreamSession::restore(StreamState state) {
  if (flow_ahead_) flow_ahead_->cancel();
  state_ = std::move(state);
}

Tensor StreamSession::push(const Tensor& lr, const Tensor* init_latents, const Tensor* next_lr) {
  if (lr.dim() != 4 || lr.size(0) != 1 || lr.size(1) != 3)
    throw std::invalid_argument("StreamSession::push: LR frame must be [1, 3, h, w], got " +
                                shape_str(lr.shape()));
  const int f = models_.vae_scale_factor;
  if (lr.size(2) % f || lr.size(3) % f)
    throw std::invalid_argument("StreamSession::push: LR size " + shape_str(lr.shape()) +
                                " is not a multiple of " + std::to_string(f));
  Tensor up = upscale(lr);
  // FlowAhead compares and keeps LR frames on the host.
  const Tensor lr_host = flow_ahead_ ? be_.to_host(lr) : Tensor();
  std::optional<Tensor> warped;
  if (state_.index > 0) {
    if (state_.prev_upscaled.shape() != up.shape())
      throw std::invalid_argument("StreamSession::push: frame size changed within a stream (" +
                                  shape_str(state_.prev_upscaled.shape()) + " -> " +
                                  shape_str(up.shape()) + ")");
    std::optional<Tensor> ahead;
    if (flow_ahead_) ahead = flow_ahead_->take(state_.index, lr_host);
    warped = warp(state_.prev_decoded,
                  ahead ? be_.to_device(*ahead) : flow(up, state_.prev_upscaled));
  }
  // The flow into the next frame starts now, beside this frame's diffusion.
  if (flow_ahead_ && next_lr) flow_ahead_->start(state_.index, lr_host, be_.to_host(*next_lr));
  Tensor latents = init_latents ? *init_latents : initial_latents(lr, state_.index);
  const Shape want{1, models_.unet->in_channels() - 3, lr.size(2), lr.size(3)};
  if (latents.shape() != want)
    throw std::invalid_argument("initial latents have shape " + shape_str(latents.shape()) +
                                " but frame " + std::to_string(state_.index) + " needs " +
                                shape_str(want));
  latents = denoise(latents, lr, warped ? &*warped : nullptr);
  Tensor decoded = decode(latents, warped ? &*warped : nullptr);
  state_.prev_upscaled = up;
  state_.prev_decoded = decoded;
  ++state_.index;
  return decoded;
}

StreamState state_to_host(Backend& be, const StreamState& state) {
  StreamState host = state;
  if (host.prev_upscaled.defined()) host.prev_upscaled = be.to_host(state.prev_upscaled);
  if (host.prev_decoded.defined()) host.prev_decoded = be.to_host(state.prev_decoded);
  return host;
}

}  // namespace sdvsr
