#pragma once
// Runs one sequence folder through a StreamSession and writes its frames.
#include <optional>
#include <string>

#include "cli/options.h"
#include "pipeline/model_bundle.h"
#include "pipeline/noise_file.h"

namespace sdvsr::cli {

struct SequenceJob {
  std::string name;     // the sequence folder's name
  std::string in_dir;   // its LR frames
  std::string out_dir;  // OUT/<name of IN>/<name>
};

// Every sequence of `in_path` (natural order) and where its frames go.
std::vector<SequenceJob> plan_sequences(const Options& o);

// Returns the number of frames written. Throws with one line naming the file.
int run_sequence(const SequenceJob& job, const ModelBundle& models, Backend& be,
                 const Options& o, const NoiseFile* noise);

}  // namespace sdvsr::cli
