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

#include "cpu_forwarding_backend.h"
#include "runtime/backend.h"

namespace sdvsr::test {

inline constexpr ComputeDtype kReducedDtypes[] = {ComputeDtype::kFloat16, ComputeDtype::kBFloat16};

// float32 -> 16 bits -> float32, round to nearest even (NaN stays NaN).
float round_bfloat16(float v);
float round_float16(float v);
float round_to(ComputeDtype d, float v);
Tensor rounded(ComputeDtype d, const Tensor& x);  // host tensors

// ---- an emulating backend: the CPU on 16-bit operands ----

// softmax(scale * q k^T) v per head (q [B, Lq, W], k, v [B, Lk, W], host) as
// the CUDA tensor-core kernel computes it: float32 scores and softmax, keys in
// tiles of `key_tile` with a running maximum, each probability taken relative
// to the maximum so far and rounded to `d` before its product with v (the row
// sums add the unrounded ones).
Tensor rounded_probability_attention(ComputeDtype d, const Tensor& q, const Tensor& k,
                                     const Tensor& v, int heads, float scale, int64_t key_tile);

// The CPU backend with every operand of conv2d / linear / matmul / attention rounded to
// `dtype` first, and conv2d's output rounded too before its float32 bias (as
// cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configs write y in 16 bits).
// Everything else is the CPU's float32 (CpuForwardingBackend), and the fused ops
// compose these (Backend's defaults), so their products are rounded too.
class RoundingCpuBackend final : public CpuForwardingBackend {
 public:
  explicit RoundingCpuBackend(ComputeDtype d) : d_(d) {}
  std::string name() const override { return "cpu-rounding-" + compute_dtype_name(d_); }
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
  // The CUDA backend's tensor-core kernel (heads up to 128, no causal mask)
  // also rounds the softmax's probabilities before their product with v.
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override {
    if (!causal && heads > 0 && q.size(2) / heads <= kTensorCoreHeadSize)
      return rounded_probability_attention(d_, rounded(d_, q), rounded(d_, k), rounded(d_, v),
                                           heads, scale, kTensorCoreKeyTile);
    return cpu().attention(rounded(d_, q), rounded(d_, k), rounded(d_, v), heads, scale, causal);
  }
  // cuda_attention_mma.h's kMmaMaxHeadSize and kMmaKeyTile (cuda_half_test.cpp checks).
  static constexpr int64_t kTensorCoreHeadSize = 128, kTensorCoreKeyTile = 64;

 private:
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
