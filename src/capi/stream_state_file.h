#pragma once
// A stream's temporal state in a file (safetensors: the previous upscaled LR
// frame and raw decoded HR frame as float32, the rest as metadata), so a
// stream can stop and later continue bit-identically.
#include <cstdint>
#include <string>

#include "pipeline/stream_session.h"

namespace sdvsr::capi {

struct SavedStream {
  StreamState state;
  uint64_t seed = 0;
  int num_inference_steps = 0;
  int width = 0, height = 0;  // LR size of the sequence (0 before its first frame)
};

// Written atomically. Throws std::runtime_error naming the file.
void save_stream_state(const std::string& path, const SavedStream& saved);

// Throws Error(SDVSR_ERROR_IO) for a missing or unreadable file and
// Error(SDVSR_ERROR_INVALID_ARGUMENT) for a file that is not a consistent stream state.
SavedStream load_stream_state(const std::string& path);

}  // namespace sdvsr::capi
