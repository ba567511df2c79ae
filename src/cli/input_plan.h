#pragma once
// What --in_path is and where each of its sequences goes: the one place that
// decides the input kind. A job opens its FrameSource and FrameSink only when
// its turn comes, so nothing is read or written for later sequences early.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/frame_io.h"
#include "cli/options.h"

namespace sdvsr::cli {

struct SequenceJob {
  std::string name;   // the sequence's name (logs, --noise keys "<name>/frame{k}...")
  std::string label;  // what to name in messages (the input folder or file)
  // The output folder of a frame-folder output (frames and .sdvsr-state);
  // empty when the output is not a folder (then --resume does not apply).
  std::string out_dir;
  std::function<std::unique_ptr<FrameSource>()> open_source;
  std::function<std::unique_ptr<FrameSink>()> open_sink;
};

// The input kinds, decided in this order:
//  - a folder holding image files directly: one sequence, OUT/<name of IN>/<names>;
//  - a folder of sequence folders (the original's layout): OUT/<name of IN>/<seq>/<names>;
//  - anything else is an error naming IN (video files and "-" come with FFmpeg support).
// Throws one line naming the path and the problem.
// Warnings of the media readers and writers (streams dropped or re-encoded,
// corrupt packets skipped) go to `warn`, possibly from the read-ahead thread.
std::vector<SequenceJob> plan_inputs(const Options& o,
                                     std::function<void(const std::string&)> warn = {});

// The original takes Path(seq_path).parent.name: the last component of IN,
// trailing slashes ignored.
std::string input_basename(std::string in_path);

}  // namespace sdvsr::cli
