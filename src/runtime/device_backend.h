#pragma once
// Choosing a backend by device name ("cpu", "cuda", "cuda:N"), in every build:
// without the CUDA backend compiled in, or without a CUDA device, asking for
// one fails with a one-line std::runtime_error before any work is done.
#include <string>

#include "runtime/backend.h"

namespace sdvsr {

// Whether this binary has the CUDA backend (CMake found the toolkit).
bool cuda_built();
// CUDA devices visible to this process (0 without the backend, a driver or a GPU).
int cuda_device_count();

// The process-wide backend for `device` ("cpu", "cuda" = "cuda:0", "cuda:N")
// computing in `dtype`. The CPU computes in float32 only: asking it for
// another dtype fails with one line.
Backend& backend_for_device(const std::string& device,
                            ComputeDtype dtype = ComputeDtype::kFloat32);

// The backend that computes the next frame's optical flow while `main`
// denoises the current one: for a GPU, a second stream on the same device and
// dtype; nullptr for the CPU, whose cores the current frame already uses.
Backend* flow_ahead_backend(Backend& main);

}  // namespace sdvsr
