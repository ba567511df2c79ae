#pragma once
// The denoising step recorded once per input shape and replayed (CUDA graphs
// per resolution): the ControlNet and U-Net run some two thousand ops per step,
// each a launch plus our host code around it; a replay is one launch.
//
// A recording reads fixed buffers (latents, LR frame, both time embeddings,
// the conditioning embedding) and writes a fixed output, so one recording
// serves every timestep and every later frame of its shape: each call copies
// its inputs in and the prediction out. The first call of a shape runs the
// step unrecorded through the same buffers, which fills every cache the
// recording must find full (weights on the device, convolution algorithms,
// the prompt's cross-attention keys and values); the second records.
// Where recording fails (an op that needs the host mid-step), the shape falls
// back to the ordinary step with one warning. Values are the ordinary step's.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/noise_prediction.h"

namespace sdvsr {

class RecordedSteps {
 public:
  // `be` must be able to record (Backend::can_record) and be the models' backend.
  RecordedSteps(const ModelBundle& models, Backend& be);
  ~RecordedSteps();
  RecordedSteps(const RecordedSteps&) = delete;
  RecordedSteps& operator=(const RecordedSteps&) = delete;

  // The step's noise prediction (a host tensor), or nothing where this shape
  // cannot be recorded: the caller then runs predict_noise_timed itself.
  std::optional<Tensor> predict(const TimedStep& step, float conditioning_scale);

  int64_t recordings() const { return recordings_; }  // recordings made
  int64_t replays() const { return replays_; }        // steps replayed
  // Why the last recording or replay failed (empty when none did).
  const std::string& failure() const { return failure_; }

 private:
  struct Slot;
  Slot& slot_for(const TimedStep& step, float conditioning_scale);

  const ModelBundle& models_;
  Backend& be_;
  std::map<std::vector<int64_t>, std::unique_ptr<Slot>> slots_;
  int64_t recordings_ = 0, replays_ = 0;
  std::string failure_;
};

}  // namespace sdvsr
