#pragma once
// The short sample clip sdvsr upscales when no --in_path is given
// (samples/sintel-lr in the source tree, installed to share/sdvsr/samples).
#include <string>

namespace sdvsr::cli {

// The clip's folder: the source tree's samples/ this binary was built from,
// else <folder of the executable>/../samples or ../share/sdvsr/samples.
// Throws one line naming the places looked at when none exists.
std::string sample_clip_dir(const char* argv0);

}  // namespace sdvsr::cli
