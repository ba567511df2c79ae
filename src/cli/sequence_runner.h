#pragma once
// Runs one sequence through a StreamSession: frames from its FrameSource,
// upscaled in order, to its FrameSink; resume state, stop requests, progress.
#include <string>

#include "cli/input_plan.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/resume_state.h"
#include "pipeline/flow_ahead.h"
#include "pipeline/recorded_steps.h"
#include "pipeline/model_bundle.h"
#include "pipeline/noise_file.h"

namespace sdvsr::cli {

struct RunContext {
  const ModelBundle& models;
  Backend& be;
  const Options& options;
  const NoiseFile* noise;     // --noise, or null
  Fingerprint fingerprint;    // run_fingerprint(): model, steps, seed, noise
  Progress& progress;
  FlowAhead* flow_ahead = nullptr;  // --flow-ahead: the next frame's flow beside the diffusion
  RecordedSteps* recorded_steps = nullptr;  // --cuda-graphs: one recording per resolution, all sequences
};

enum class SequenceOutcome { kDone, kSkipped, kStopped };

// Throws one line naming the file and the problem; the resume state of the
// frames done so far is saved first.
SequenceOutcome run_sequence(const SequenceJob& job, RunContext& ctx);

}  // namespace sdvsr::cli
