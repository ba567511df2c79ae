#pragma once
// A test backend that hands every basic op to the CPU backend and leaves the
// fused ops (group_norm_act, conv2d_add, geglu) to Backend's default
// composition of basic ops. Tests derive from it to change a few ops (e.g.
// rounding the operands of the matrix products) or use it as the unfused CPU.
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr::test {

class CpuForwardingBackend : public Backend {
 public:
  std::string name() const override { return "unfused-cpu"; }
  void set_threads(int n) override { cpu().set_threads(n); }
  int threads() const override { return cpu().threads(); }
  Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dParams& p) override {
    return cpu().conv2d(x, w, b, p);
  }
  Tensor linear(const Tensor& x, const Tensor& w, const Tensor* b) override { return cpu().linear(x, w, b); }
  Tensor matmul(const Tensor& a, const Tensor& b, bool tb) override { return cpu().matmul(a, b, tb); }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override {
    return cpu().attention(q, k, v, heads, scale, causal);
  }
  Tensor group_norm(const Tensor& x, int groups, const Tensor* g, const Tensor* b, float eps) override {
    return cpu().group_norm(x, groups, g, b, eps);
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
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override { return cpu().add_channel_bias(x, b); }
  Tensor clamp(const Tensor& x, float lo, float hi) override { return cpu().clamp(x, lo, hi); }
  Tensor concat(const std::vector<Tensor>& xs, int dim) override { return cpu().concat(xs, dim); }
  Tensor slice(const Tensor& x, int dim, int64_t s, int64_t e) override { return cpu().slice(x, dim, s, e); }
  Tensor nchw_to_tokens(const Tensor& x) override { return cpu().nchw_to_tokens(x); }
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().tokens_to_nchw(x, h, w);
  }
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override { return cpu().permute(x, perm); }
  Tensor upsample_nearest(const Tensor& x, int64_t h, int64_t w) override {
    return cpu().upsample_nearest(x, h, w);
  }
  Tensor upsample_bilinear(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bilinear(x, h, w, ac);
  }
  Tensor upsample_bicubic(const Tensor& x, int64_t h, int64_t w, bool ac) override {
    return cpu().upsample_bicubic(x, h, w, ac);
  }
  Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode m, bool ac) override {
    return cpu().grid_sample(x, grid, m, ac);
  }
  Tensor avg_pool2d(const Tensor& x, int k, int s) override { return cpu().avg_pool2d(x, k, s); }
  Tensor correlation_volume(const Tensor& a, const Tensor& b) override {
    return cpu().correlation_volume(a, b);
  }
  Tensor raft_corr_lookup(const std::vector<Tensor>& pyr, const Tensor& coords, int r) override {
    return cpu().raft_corr_lookup(pyr, coords, r);
  }
  Tensor raft_corr_lookup_direct(const Tensor& f1, const std::vector<Tensor>& f2, const Tensor& coords,
                                 int r) override {
    return cpu().raft_corr_lookup_direct(f1, f2, coords, r);
  }
  Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int f) override {
    return cpu().raft_convex_upsample(flow, mask, f);
  }
 protected:
  static Backend& cpu() { return cpu_backend(); }
};

}  // namespace sdvsr::test
