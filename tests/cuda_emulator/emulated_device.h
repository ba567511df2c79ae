#pragma once
// The emulated GPU the CUDA backend runs on in tests without a device: device
// memory is host memory, work runs in stream order on the host, and a kernel's
// threads run one block at a time (see emulated_kernels.h). The fake runtime,
// cuBLAS and cuDNN (fake_*.cpp) share this file's stream queue, so a stream is
// the only ordering there is: work runs when the host synchronises with it, and
// work submitted while a stream records a graph runs at each replay instead.
// It checks our code's logic against the documented semantics of the CUDA
// APIs; it says nothing about speed or about what only hardware does.
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>

namespace sdvsr::emulated {

// Queues `work` on `stream` (nullptr: the legacy default stream). It runs in
// that stream's order when the host next waits for the stream (or the device);
// on a stream that is recording a graph it runs at every launch of the graph
// instead. `what` names the call in error messages. Work runs with the
// emulator's lock held: one piece at a time, whatever host thread submitted it.
void enqueue(cudaStream_t stream, const char* what, std::function<void()> work);

// Whether [p, p + bytes) lies inside one live device allocation (cudaMalloc,
// cudaMallocAsync). Fakes check their pointer arguments with it when called.
bool is_device_range(const void* p, size_t bytes);

// A launch with an invalid configuration: sets the calling thread's last
// error (cudaGetLastError), as a real launch does.
void record_launch_error(cudaError_t error);

// Stops the test process with "emulated CUDA: <what>: <problem>" on stderr: for
// misuse a real device would answer with corrupted memory or a hang, not a status.
[[noreturn]] void fail(const char* what, const std::string& problem);

}  // namespace sdvsr::emulated
