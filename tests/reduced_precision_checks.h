#pragma once
// Shared by the reduced-precision tests (cuda_half_test.cpp on the GPU,
// reduced_precision_budget_test.cpp on the CPU): a host reference for rounding
// to float16 / bfloat16, a CPU backend that computes on 16-bit-rounded
// operands (the numerics the CUDA backend's float16 / bfloat16 modes are
// designed to have), and the golden checks both run.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::test {

inline constexpr ComputeDtype kReducedDtypes[] = {ComputeDtype::kFloat16, ComputeDtype::kBFloat16};

// float32 -> 16 bits -> float32, round to nearest even (NaN stays NaN).
float round_bfloat16(float v);
float round_float16(float v);
float round_to(ComputeDtype d, float v);
Tensor rounded(ComputeDtype d, const Tensor& x);  // host tensors

// ---- an emulating backend: the CPU on 16-bit operands ----

// The CPU backend with every operand of conv2d / linear / matmul / attention rounded to
// `dtype` first, and conv2d's output rounded too before its float32 bias (as
// cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configs write y in 16 bits).
// Everything else is the CPU's float32.
class RoundingCpuBackend final : public Backend {
 public:
  explicit RoundingCpuBackend(ComputeDtype d) : d_(d) {}
  std::string name() const override { return "cpu-rounding-" + compute_dtype_name(d_); }
  void set_threads(int n) override { cpu().set_threads(n); }
  int threads() const override { return cpu().threads(); }
  ComputeDtype compute_dtype() const override { return d_; }

  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias,
                const Conv2dParams& p) override {
    Tensor y = rounded(d_, cpu().conv2d(rounded(d_, x), weight(w), nullptr, p));
    if (bias) {
      const int64_t hw = y.size(2) * y.size(3), o = y.size(1);
      float* py = y.data();
      for (int64_t i = 0; i < y.numel(); ++i) py[i] += (*bias)[(i / hw) % o];
    }
    return y;
  }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) override {
    return cpu().linear(rounded(d_, x), weight(w), bias);
  }
  Tensor matmul(const Tensor& a, const Tensor& b, bool tb) override {
    return cpu().matmul(rounded(d_, a), rounded(d_, b), tb);
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override {
    return cpu().attention(rounded(d_, q), rounded(d_, k), rounded(d_, v), heads, scale, causal);
  }

  Tensor group_norm(const Tensor& x, int g, const Tensor* ga, const Tensor* be, float eps) override {
    return cpu().group_norm(x, g, ga, be, eps);
  }
  Tensor layer_norm(const Tensor& x, const Tensor* g, const Tensor* b, float eps) override {
    return cpu().layer_norm(x, g, b, eps);
  }
  Tensor batch_norm(const Tensor& x, const Tensor& m, const Tensor& v, const Tensor* g,
                    const Tensor* b, float eps) override {
    return cpu().batch_norm(x, m, v, g, b, eps);
  }
  Tensor instance_norm(const Tensor& x, float eps) override { return cpu().instance_norm(x, eps); }
  Tensor softmax(const Tensor& x) override { return cpu().softmax(x); }
  Tensor activation(const Tensor& x, Activation a) override { return cpu().activation(x, a); }
  Tensor add(const Tensor& a, const Tensor& b) override { return cpu().add(a, b); }
  Tensor sub(const Tensor& a, const Tensor& b) override { return cpu().sub(a, b); }
  Tensor mul(const Tensor& a, const Tensor& b) override { return cpu().mul(a, b); }
  Tensor scale(const Tensor& x, float s) override { return cpu().scale(x, s); }
  Tensor add_scalar(const Tensor& x, float s) override { return cpu().add_scalar(x, s); }
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override {
    return cpu().add_channel_bias(x, b);
  }
  Tensor clamp(const Tensor& x, float lo, float hi) override { return cpu().clamp(x, lo, hi); }
  Tensor concat(const std::vector<Tensor>& xs, int dim) override { return cpu().concat(xs, dim); }
  Tensor slice(const Tensor& x, int dim, int64_t s, int64_t e) override {
    return cpu().slice(x, dim, s, e);
  }
  Tensor nchw_to_tokens(const Tensor& x) override { return cpu().nchw_to_tokens(x); }
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().tokens_to_nchw(x, h, w);
  }
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override {
    return cpu().permute(x, perm);
  }
  Tensor upsample_nearest(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().upsample_nearest(x, h, w);
  }
  Tensor upsample_bilinear(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bilinear(x, h, w, ac);
  }
  Tensor upsample_bicubic(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bicubic(x, h, w, ac);
  }
  Tensor grid_sample(const Tensor& x, const Tensor& g, GridSampleMode m, bool ac) override {
    return cpu().grid_sample(x, g, m, ac);
  }
  Tensor avg_pool2d(const Tensor& x, int k, int s) override { return cpu().avg_pool2d(x, k, s); }
  Tensor correlation_volume(const Tensor& f1, const Tensor& f2) override {
    return cpu().correlation_volume(f1, f2);
  }
  Tensor raft_corr_lookup(const std::vector<Tensor>& p, const Tensor& c, int r) override {
    return cpu().raft_corr_lookup(p, c, r);
  }
  Tensor raft_corr_lookup_direct(const Tensor& f1, const std::vector<Tensor>& f2, const Tensor& c,
                                 int r) override {
    return cpu().raft_corr_lookup_direct(f1, f2, c, r);
  }
  Tensor raft_convex_upsample(const Tensor& f, const Tensor& m, int factor) override {
    return cpu().raft_convex_upsample(f, m, factor);
  }

 private:
  static Backend& cpu() { return cpu_backend(); }
  // Mapped (borrowed) weights rounded once, so the CPU's own per-weight caches
  // (reordered convolution weights) keep working.
  Tensor weight(const Tensor& w);

  struct Rounded {
    std::weak_ptr<const void> owner;  // a remapped file at the same address is not a match
    Tensor values;
  };
  ComputeDtype d_;
  std::mutex mutex_;
  std::map<const void*, Rounded> weights_;
};

// got (any device of `be`, read with be.to_host) vs want (host): relative L2
// within tol and at least `at_least` (a reduced result identical to float32
// means no rounding happened); prints the value.
::testing::AssertionResult RelL2Within(Backend& be, const Tensor& got_any, const Tensor& want,
                                       double tol, const std::string& what, double at_least = 0);

// Relative L2 bound of a module's output against the golden float32 one.
double module_bound(ComputeDtype d);
// Every module teacher-forced on the stages of e2e_seq_a (in the GPU bundle).
void check_stages(Backend& be);
// The dedicated module cases (unet*, controlnet*, temporal_vae, raft).
void check_module_cases(Backend& be);
// The golden sequence `file` free-running on `be`: every frame's PSNR >= 40 dB
// against the golden decoded frames.
void check_sequence(Backend& be, const std::string& file);

std::string dtype_param_name(const ::testing::TestParamInfo<ComputeDtype>& info);

}  // namespace sdvsr::test
