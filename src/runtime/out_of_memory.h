#pragma once
// Recognising memory exhaustion among the errors an upscale can throw, so that
// the CLI can name the frame and the size instead of printing a library's
// terse message ("std::bad_alloc", "could not create a memory object").
#include <exception>

namespace sdvsr {

// std::bad_alloc, a oneDNN error with the out-of-memory status, or a CUDA
// allocation failure (cuda::check's "<call>: out of memory").
bool is_out_of_memory(const std::exception& e);

}  // namespace sdvsr
