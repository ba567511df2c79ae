#pragma once
// --resume: a sequence's stream state saved in its output folder as
// ".sdvsr-state" (safetensors: prev_upscaled, prev_decoded; metadata: the
// frame index and a fingerprint of everything that shapes the frames), so an
// interrupted run continues bit for bit where it stopped.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"

namespace sdvsr::cli {

inline constexpr const char* kStateFileName = ".sdvsr-state";

// What must match for a saved state to be continued: field -> value, where a
// field is a human name ("model folder", "seed", ...).
using Fingerprint = std::map<std::string, std::string>;

// Advisory field: oneDNN blocks its work differently per thread count, so a
// resume on another count continues with frames that may differ by one level
// from an uninterrupted run. It is reported, not refused.
inline constexpr const char* kThreadsField = "threads";

// The run-wide part: model files, steps, seed, noise file.
Fingerprint run_fingerprint(const Options& o, const ModelPaths& resolved);
// Adds the sequence's input frame names.
Fingerprint sequence_fingerprint(Fingerprint run, const std::vector<std::string>& frame_names);

// The fields that differ, "seed, input frames", or "" when none do (advisory
// fields left out).
std::string fingerprint_difference(const Fingerprint& saved, const Fingerprint& now);

std::string state_path(const std::string& out_dir);

// Writes atomically (temporary file, then rename). A state with no frame done
// is not worth saving: the file is removed instead.
void save_state(const std::string& out_dir, const StreamState& state, const Fingerprint& fp);

struct SavedState {
  StreamState state;
  Fingerprint fingerprint;
};
// nullopt when there is no state file; throws naming the file when it is broken.
std::optional<SavedState> load_state(const std::string& out_dir);

void remove_state(const std::string& out_dir);

}  // namespace sdvsr::cli
