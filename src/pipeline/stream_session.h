#pragma once
// The causal frame loop of StreamDiffVSRPipeline, one LR frame at a time
// (spec/pipeline.md §3). A stream's whole state is one small value: the
// previous bicubic-upscaled LR frame, the previous raw decoder output and the
// frame index; memory does not grow with the number of frames.
#include <cstdint>
#include <functional>
#include <optional>

#include "pipeline/flow_ahead.h"
#include "pipeline/model_bundle.h"
#include "pipeline/recorded_steps.h"
#include "runtime/backend.h"

namespace sdvsr {

struct StreamOptions {
  int num_inference_steps = 4;
  uint64_t seed = 0;                  // initial noise: Philox(seed, stream = frame index)
  float conditioning_scale = 1.0f;    // ControlNet residual scale (the original uses 1.0)
  // Called before each denoising step (step, steps) of push(): progress reports
  // and cancellation (it may throw; push() then leaves the state unchanged).
  std::function<void(int step, int steps)> before_step;
};

struct StreamState {
  Tensor prev_upscaled;  // bicubic x4 of the previous LR frame, [1, 3, H, W]
  Tensor prev_decoded;   // raw (unclamped) decoder output of the previous frame
  int64_t index = 0;     // frames done
};

// The state with its tensors on the host (to save it); they stay on the backend's
// device in a session, and restore() accepts either.
StreamState state_to_host(Backend& be, const StreamState& state);

class StreamSession {
 public:
  StreamSession(const ModelBundle& models, Backend& be, StreamOptions options);

  // One preprocessed LR frame [1, 3, h, w] in [-1, 1] (h, w multiples of the VAE
  // scale factor) -> its raw decoded HR frame [1, 3, 4h, 4w] (unclamped), on the
  // backend's device (Backend::to_host before reading it).
  // `init_latents` replaces the generated noise when given. `next_lr`, the
  // frame that will be pushed next when it is already known, lets a FlowAhead
  // compute the flow into it while this frame denoises.
  Tensor push(const Tensor& lr, const Tensor* init_latents = nullptr,
              const Tensor* next_lr = nullptr);

  const StreamState& state() const { return state_; }
  void restore(StreamState state);
  void reset() { restore(StreamState{}); }

  // Computes the next frame's flow beside the current frame's denoising (not
  // owned; nullptr turns it off). The frames are the same either way.
  void set_flow_ahead(FlowAhead* ahead) { flow_ahead_ = ahead; }
  bool flow_ahead_enabled() const { return flow_ahead_ != nullptr; }
  // Replays the denoising step from recordings (CUDA graphs; not owned, may
  // serve several sessions of the same models one push at a time; nullptr:
  // op by op). The frames are the same either way.
  void set_recorded_steps(RecordedSteps* steps) { recorded_ = steps; }

  // ---- the stages push() is made of (public so tests can feed golden inputs) ----
  Tensor upscale(const Tensor& lr) const;  // bicubic x4
  // RAFT(current, previous) final flow, NHWC [1, H, W, 2] (dx, dy).
  Tensor flow(const Tensor& up_current, const Tensor& up_previous) const;
  Tensor warp(const Tensor& prev_decoded, const Tensor& flow_nhwc) const;
  Tensor initial_latents(const Tensor& lr, int64_t frame_index) const;
  // The U-Net noise prediction for latents at timestep t; ControlNet joins when warped is given.
  Tensor predict_noise(const Tensor& latents, const Tensor& lr, int64_t t,
                       const Tensor* warped) const;
  // The same with the ControlNet's conditioning embedding of the warped frame
  // already computed (it depends only on the image: once per frame, not per step).
  Tensor predict_noise_embedded(const Tensor& latents, const Tensor& lr, int64_t t,
                                const Tensor* control_embedding) const;
  // The whole denoising loop of one frame.
  Tensor denoise(Tensor latents, const Tensor& lr, const Tensor* warped) const;
  Tensor decode(const Tensor& latents, const Tensor* warped) const;
  const std::vector<int64_t>& timesteps() const { return timesteps_; }

 private:
  const ModelBundle& models_;
  Backend& be_;
  StreamOptions options_;
  DdimScheduler scheduler_;  // own copy: set_timesteps is per stream
  std::vector<int64_t> timesteps_;
  StreamState state_;
  FlowAhead* flow_ahead_ = nullptr;
  RecordedSteps* recorded_ = nullptr;
};

}  // namespace sdvsr
