#pragma once
// A Backend for proving the pipeline device-clean without a GPU: it runs every
// op on an inner (CPU) backend but tags each result as a kCuda tensor, so any
// host code that reads a backend result without Backend::to_host() throws
// (Tensor::data() refuses non-host tensors). The memory underneath stays host
// memory, so the inner backend can compute on it: inputs of either tag are
// accepted (kCuda ones are re-tagged as host views, no copy), to_host() and
// to_device() copy and re-tag like a real device backend would.
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::test {

class DeviceTaggingBackend final : public Backend {
 public:
  explicit DeviceTaggingBackend(Backend& inner) : inner_(inner) {}

  // Copies made by to_host() / to_device() so far.
  int64_t host_copies() const { return host_copies_.load(); }
  int64_t device_copies() const { return device_copies_.load(); }

  std::string name() const override { return "tagged-" + inner_.name(); }
  void set_threads(int n) override { inner_.set_threads(n); }
  int threads() const override { return inner_.threads(); }
  Device device() const override { return Device::kCuda; }
  Tensor to_host(const Tensor& x) override;
  Tensor to_device(const Tensor& x) override;

  Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Conv2dParams& p) override;
  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Tensor& residual) override;
  Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_b) override;
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override;

  Tensor group_norm(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                    float eps) override;
  Tensor layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                    float eps) override;
  Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                    const Tensor* gamma, const Tensor* beta, float eps) override;
  Tensor instance_norm(const Tensor& x, float eps) override;
  Tensor softmax(const Tensor& x) override;

  Tensor activation(const Tensor& x, Activation a) override;
  Tensor add(const Tensor& a, const Tensor& b) override;
  Tensor sub(const Tensor& a, const Tensor& b) override;
  Tensor mul(const Tensor& a, const Tensor& b) override;
  Tensor scale(const Tensor& x, float s) override;
  Tensor add_scalar(const Tensor& x, float s) override;
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override;
  Tensor clamp(const Tensor& x, float lo, float hi) override;
  Tensor concat(const std::vector<Tensor>& xs, int dim) override;
  Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end) override;
  Tensor nchw_to_tokens(const Tensor& x) override;
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override;
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override;

  Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) override;
  Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                           bool align_corners) override;
  Tensor upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                          bool align_corners) override;
  Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                     bool align_corners) override;
  Tensor avg_pool2d(const Tensor& x, int kernel, int stride) override;

  Tensor correlation_volume(const Tensor& fmap1, const Tensor& fmap2) override;
  Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                          int radius) override;
  Tensor raft_corr_lookup_direct(const Tensor& fmap1_cl, const std::vector<Tensor>& fmap2_levels,
                                 const Tensor& coords, int radius) override;
  Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) override;

  // The fused ops reach the inner backend's fused forms.
  Tensor group_norm_act(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                        float eps, Activation a) override;
  Tensor conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Conv2dParams& p, const Tensor& residual) override;
  Tensor geglu(const Tensor& x) override;

 private:
  Backend& inner_;
  std::atomic<int64_t> host_copies_{0}, device_copies_{0};
};

}  // namespace sdvsr::test
