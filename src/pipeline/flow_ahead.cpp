#include "pipeline/flow_ahead.h"

#include <cstring>
#include <utility>

#include "pipeline/bicubic_upscale.h"

namespace sdvsr {

namespace {
bool same_values(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}
}  // namespace

FlowAhead::FlowAhead(const std::string& raft_weights, Backend& side, std::mutex* side_lock)
    : side_(side), side_lock_(side_lock), raft_(Raft::load(raft_weights, side)) {}

FlowAhead::~FlowAhead() { cancel(); }

void FlowAhead::cancel() {
  if (pending_.valid()) pending_.wait();
  forget_pending();
}

void FlowAhead::forget_pending() {
  pending_ = {};
  pending_index_ = -1;
  pending_lr_ = Tensor();
}

void FlowAhead::start(int64_t index, const Tensor& current, const Tensor& next) {
  cancel();
  if (current.shape() != next.shape()) return;  // a size change: the stream will refuse it
  // The upscale of `current` is the last pair's `next` when the stream goes on.
  Tensor up_current = same_values(current, last_lr_) ? last_up_ : Tensor();
  Tensor current_copy = up_current.defined() ? Tensor() : current.clone();
  Tensor next_copy = next.clone();
  pending_index_ = index + 1;
  pending_lr_ = next_copy;
  pending_ = std::async(std::launch::async, [this, up_current, current_copy, next_copy]() {
    std::unique_lock<std::mutex> turn;
    if (side_lock_) turn = std::unique_lock<std::mutex>(*side_lock_);
    const Tensor up_cur = up_current.defined()
                              ? up_current
                              : bicubic_upscale(side_, side_.to_device(current_copy));
    const Tensor up_next = bicubic_upscale(side_, side_.to_device(next_copy));
    // As StreamSession::flow: RAFT(current, previous), then NHWC.
    const Tensor flow = side_.permute(raft_->flow(up_next, up_cur), {0, 2, 3, 1});
    last_lr_ = next_copy;
    last_up_ = up_next;
    return side_.to_host(flow);
  });
}

std::optional<Tensor> FlowAhead::take(int64_t index, const Tensor& lr) {
  if (!pending_.valid()) return std::nullopt;
  const bool match = index == pending_index_ && same_values(lr, pending_lr_);
  std::optional<Tensor> flow;
  try {
    Tensor f = pending_.get();
    if (match) flow = std::move(f);
  } catch (...) {
    // Computed again by the caller, which reports the error in its own words.
    last_lr_ = last_up_ = Tensor();
  }
  forget_pending();
  if (flow) ++flows_used_;
  return flow;
}

}  // namespace sdvsr
