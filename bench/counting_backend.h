#pragma once
// A Backend decorator for the benchmark: forwards every op to the real backend
// and counts the floating-point work of the matrix products as they are run,
// FLOPs = 2 x multiply-adds of conv2d (conv2d_add too), linear (linear_geglu and
// linear_add too), matmul, attention (q k^T and p v) and correlation_volume.
// Everything else (norms, elementwise, resampling) is forwarded uncounted,
// RAFT's on-the-fly correlation lookup included, so large frames whose volume
// is not materialised count less.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::bench {

class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(Backend& inner) : inner_(inner) {}

  double flops() const { return flops_.load(); }
  // Also clears the per-op profile.
  void reset();
  Backend& inner() { return inner_; }

  // Per-op wall time, calls and FLOPs since reset(), when profiling is on.
  struct OpStats {
    double ms = 0, flops = 0;
    int64_t calls = 0;
  };
  void set_profiling(bool on) { profiling_ = on; }
  const std::map<std::string, OpStats>& profile() const { return profile_; }

  std::string name() const override { return inner_.name(); }
  void set_threads(int n) override { inner_.set_threads(n); }
  int threads() const override { return inner_.threads(); }
  Device device() const override { return inner_.device(); }
  Tensor to_host(const Tensor& x) override { return inner_.to_host(x); }
  Tensor to_device(const Tensor& x) override { return inner_.to_device(x); }
  ComputeDtype compute_dtype() const override { return inner_.compute_dtype(); }
  int64_t peak_device_memory_bytes() override { return inner_.peak_device_memory_bytes(); }
  void reset_peak_device_memory() override { inner_.reset_peak_device_memory(); }

  Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Conv2dParams& p) override;
  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Tensor& residual) override;
  Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_b) override;
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override;
  Tensor correlation_volume(const Tensor& fmap1, const Tensor& fmap2) override;
  Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                          int radius) override {
    return timed("raft_corr_lookup", [&] { return inner_.raft_corr_lookup(pyramid, coords, radius); });
  }
  Tensor raft_corr_lookup_direct(const Tensor& fmap1_cl, const std::vector<Tensor>& fmap2_levels,
                                 const Tensor& coords, int radius) override {
    return timed("raft_corr_lookup_direct", [&] {
      return inner_.raft_corr_lookup_direct(fmap1_cl, fmap2_levels, coords, radius);
    });
  }
  Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) override {
    return timed("raft_convex_upsample", [&] { return inner_.raft_convex_upsample(flow, mask, factor); });
  }

  // The fused ops go to the inner backend's fused forms, so the bench measures them.
  Tensor conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Conv2dParams& p, const Tensor& residual) override;
  Tensor conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                      const Tensor* residual) override;
  Tensor group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm, const ConvStage& conv,
                               const Tensor* residual) override;
  Tensor group_norm_act_conv2d_shortcut(const Tensor& h, const GroupNormAct& norm,
                                        const ConvStage& conv, const Tensor& skip_input,
                                        const ConvStage& shortcut) override;
  Tensor upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                 const ConvStage& conv) override;
  Tensor add_bilinear_upsampled(Tensor x, const Tensor& small, float s, const Tensor* residual,
                                Activation a) override {
    return timed("add_bilinear_upsampled", [&] {
      return inner_.add_bilinear_upsampled(std::move(x), small, s, residual, a);
    });
  }
  Tensor group_norm_act(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                        float eps, Activation a) override {
    return timed("group_norm_act", [&] { return inner_.group_norm_act(x, groups, gamma, beta, eps, a); });
  }
  Tensor geglu(const Tensor& x) override { return timed("geglu", [&] { return inner_.geglu(x); }); }
  Tensor group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) override {
    return timed("group_norm_act_tokens", [&] { return inner_.group_norm_act_tokens(x, norm); });
  }
  Tensor tokens_to_nchw_add(const Tensor& tokens, int64_t h, int64_t w,
                            const Tensor& residual) override {
    return timed("tokens_to_nchw_add",
                 [&] { return inner_.tokens_to_nchw_add(tokens, h, w, residual); });
  }
  // The in-place forms too (their memory saving is part of what peak_mem_mb measures).
  Tensor activation_in_place(Tensor x, Activation a) override {
    return timed("activation", [&] { return inner_.activation_in_place(std::move(x), a); });
  }
  Tensor add_in_place(Tensor a, const Tensor& b) override {
    return timed("add", [&] { return inner_.add_in_place(std::move(a), b); });
  }
  Tensor scale_in_place(Tensor x, float s) override {
    return timed("scale", [&] { return inner_.scale_in_place(std::move(x), s); });
  }

  // A recording's FLOPs are counted once while it records (nothing runs then)
  // and again at every replay; its ops do not appear in the profile.
  bool can_record() const override { return inner_.can_record(); }
  std::unique_ptr<Recording> record(const std::function<void()>& work) override;
  void copy_into(const Tensor& dst, const Tensor& src) override { inner_.copy_into(dst, src); }
  // Replays `inner` (one of this backend's recordings) and counts its `flops`;
  // ops a replay calls on the host (a test backend that replays by running the
  // work again) are not counted twice.
  void replay_counted(Recording& inner, double flops);

  Tensor group_norm(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                    float eps) override {
    return timed("group_norm", [&] { return inner_.group_norm(x, groups, gamma, beta, eps); });
  }
  Tensor layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                    float eps) override {
    return timed("layer_norm", [&] { return inner_.layer_norm(x, gamma, beta, eps); });
  }
  Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                    const Tensor* gamma, const Tensor* beta, float eps) override {
    return timed("batch_norm", [&] { return inner_.batch_norm(x, running_mean, running_var, gamma, beta, eps); });
  }
  Tensor instance_norm(const Tensor& x, float eps) override { return timed("instance_norm", [&] { return inner_.instance_norm(x, eps); }); }
  Tensor softmax(const Tensor& x) override { return timed("softmax", [&] { return inner_.softmax(x); }); }

  Tensor activation(const Tensor& x, Activation a) override { return timed("activation", [&] { return inner_.activation(x, a); }); }
  Tensor add(const Tensor& a, const Tensor& b) override { return timed("add", [&] { return inner_.add(a, b); }); }
  Tensor sub(const Tensor& a, const Tensor& b) override { return timed("sub", [&] { return inner_.sub(a, b); }); }
  Tensor mul(const Tensor& a, const Tensor& b) override { return timed("mul", [&] { return inner_.mul(a, b); }); }
  Tensor scale(const Tensor& x, float s) override { return timed("scale", [&] { return inner_.scale(x, s); }); }
  Tensor add_scalar(const Tensor& x, float s) override { return timed("add_scalar", [&] { return inner_.add_scalar(x, s); }); }
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override {
    return timed("add_channel_bias", [&] { return inner_.add_channel_bias(x, b); });
  }
  Tensor clamp(const Tensor& x, float lo, float hi) override { return timed("clamp", [&] { return inner_.clamp(x, lo, hi); }); }
  Tensor concat(const std::vector<Tensor>& xs, int dim) override { return timed("concat", [&] { return inner_.concat(xs, dim); }); }
  Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end) override {
    return timed("slice", [&] { return inner_.slice(x, dim, start, end); });
  }
  Tensor nchw_to_tokens(const Tensor& x) override { return timed("nchw_to_tokens", [&] { return inner_.nchw_to_tokens(x); }); }
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override {
    return timed("tokens_to_nchw", [&] { return inner_.tokens_to_nchw(x, h, w); });
  }
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override {
    return timed("permute", [&] { return inner_.permute(x, perm); });
  }

  Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) override {
    return timed("upsample_nearest", [&] { return inner_.upsample_nearest(x, out_h, out_w); });
  }
  Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                           bool align_corners) override {
    return timed("upsample_bilinear", [&] { return inner_.upsample_bilinear(x, out_h, out_w, align_corners); });
  }
  Tensor upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                          bool align_corners) override {
    return timed("upsample_bicubic", [&] { return inner_.upsample_bicubic(x, out_h, out_w, align_corners); });
  }
  Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                     bool align_corners) override {
    return timed("grid_sample", [&] { return inner_.grid_sample(x, grid, mode, align_corners); });
  }
  Tensor avg_pool2d(const Tensor& x, int kernel, int stride) override {
    return timed("avg_pool2d", [&] { return inner_.avg_pool2d(x, kernel, stride); });
  }

 private:
  void count(const char* op, double f) {
    if (replaying_) return;
    flops_.fetch_add(f);
    if (profiling_) profile_[op].flops += f;
  }
  // Runs fn (one inner op); with profiling on, its time is booked under `op`.
  template <class Fn>
  Tensor timed(const char* op, Fn&& fn) {
    if (!profiling_ || replaying_) return fn();
    const auto t0 = std::chrono::steady_clock::now();
    Tensor out = fn();
    OpStats& st = profile_[op];
    st.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    st.calls += 1;
    return out;
  }

  Backend& inner_;
  std::atomic<double> flops_{0.0};
  bool profiling_ = false;
  bool replaying_ = false;
  std::map<std::string, OpStats> profile_;  // ops are called from one thread
};

}  // namespace sdvsr::bench
