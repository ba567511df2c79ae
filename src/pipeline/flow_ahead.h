#pragma once
// The next frame's optical flow, computed while the current frame denoises.
// The flow into frame t+1 needs only the LR frames t and t+1 (RAFT between
// their bicubic upscales), not frame t's output, so once frame t+1 has been
// read it can run on a second backend (a second CUDA stream) beside frame t's
// diffusion: one frame ahead at most. The flow comes back as a host tensor, so
// nothing of the second backend's memory is shared with the first.
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "models/raft.h"
#include "runtime/backend.h"

namespace sdvsr {

class FlowAhead {
 public:
  // Loads its own RAFT (it keeps a feature cache, so it is not shared) on `side`.
  // `side_lock`, when given, is held while a flow runs: several FlowAheads
  // (one per stream of a model) then take turns on one side backend.
  FlowAhead(const std::string& raft_weights, Backend& side, std::mutex* side_lock = nullptr);
  ~FlowAhead();  // waits for a flow in flight
  FlowAhead(const FlowAhead&) = delete;
  FlowAhead& operator=(const FlowAhead&) = delete;

  Backend& backend() const { return side_; }

  // Starts the flow from host LR frame `current` (frame `index`) to host LR
  // frame `next` (frame index + 1), NHWC as StreamSession::flow gives it.
  void start(int64_t index, const Tensor& current, const Tensor& next);
  // The flow started for frame `index` (the pair ending in `lr`, compared by
  // value), as a host tensor; nothing when none was started for it or it
  // failed (the caller computes the flow itself and meets any error there).
  std::optional<Tensor> take(int64_t index, const Tensor& lr);
  // Waits for and drops a flow in flight (a stream reset or restored).
  void cancel();

  // Flows taken from this object so far (for tests and the bench).
  int64_t flows_used() const { return flows_used_; }

 private:
  void forget_pending();  // after the pending flow was waited for or taken

  Backend& side_;
  std::mutex* side_lock_;
  std::unique_ptr<Raft> raft_;
  std::future<Tensor> pending_;
  int64_t pending_index_ = -1;  // the frame the pending flow leads into
  Tensor pending_lr_;           // that frame's LR (host)
  // The last `next` frame and its upscale on the side backend: the following
  // pair starts from it (and RAFT reuses its features).
  Tensor last_lr_, last_up_;
  int64_t flows_used_ = 0;
};

}  // namespace sdvsr
