#include "device_tagging_backend.h"

#include <cstring>

namespace sdvsr::test {

namespace {

// The same storage seen as a tensor on `device` (no copy; the owner keeps it alive,
// so storage-keyed caches see the same identity either way).
Tensor retag(const Tensor& x, Device device) {
  if (!x.defined() || x.device() == device) return x;
  return Tensor::wrap(device, x.shape(), x.raw_data(), x.storage_owner().lock());
}

// An input for the inner backend: host tensors as they are, kCuda ones as host views.
Tensor in(const Tensor& x) { return retag(x, Device::kCpu); }
std::vector<Tensor> in(const std::vector<Tensor>& xs) {
  std::vector<Tensor> out;
  out.reserve(xs.size());
  for (const Tensor& x : xs) out.push_back(in(x));
  return out;
}
// An optional input (nullptr stays nullptr); `slot` holds the view.
const Tensor* in(const Tensor* x, Tensor& slot) {
  if (!x) return nullptr;
  slot = in(*x);
  return &slot;
}
// A result as the device backend would return it.
Tensor out(const Tensor& x) { return retag(x, Device::kCuda); }

}  // namespace

Tensor DeviceTaggingBackend::to_host(const Tensor& x) {
  if (x.is_host()) return x;
  ++host_copies_;
  Tensor h = Tensor::uninitialized(x.shape());
  if (x.numel()) std::memcpy(h.data(), x.raw_data(), static_cast<size_t>(x.numel()) * sizeof(float));
  return h;
}

Tensor DeviceTaggingBackend::to_device(const Tensor& x) {
  if (x.device() == Device::kCuda) return x;
  ++device_copies_;
  return out(x.clone());
}

Tensor DeviceTaggingBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                                    const Conv2dParams& p) {
  Tensor b;
  return out(inner_.conv2d(in(x), in(weight), in(bias, b), p));
}
Tensor DeviceTaggingBackend::conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                                        const Conv2dParams& p, const Tensor& residual) {
  Tensor b;
  return out(inner_.conv2d_add(in(x), in(weight), in(bias, b), p, in(residual)));
}
Tensor DeviceTaggingBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  Tensor b;
  return out(inner_.linear(in(x), in(weight), in(bias, b)));
}
Tensor DeviceTaggingBackend::linear_geglu(const Tensor& x, const Tensor& weight,
                                          const Tensor* bias) {
  Tensor b;
  return out(inner_.linear_geglu(in(x), in(weight), in(bias, b)));
}
Tensor DeviceTaggingBackend::linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                                        const Tensor& residual) {
  Tensor b;
  return out(inner_.linear_add(in(x), in(weight), in(bias, b), in(residual)));
}
Tensor DeviceTaggingBackend::matmul(const Tensor& a, const Tensor& b, bool transpose_b) {
  return out(inner_.matmul(in(a), in(b), transpose_b));
}
Tensor DeviceTaggingBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                       int heads, float scale, bool causal) {
  return out(inner_.attention(in(q), in(k), in(v), heads, scale, causal));
}

Tensor DeviceTaggingBackend::group_norm(const Tensor& x, int groups, const Tensor* gamma,
                                        const Tensor* beta, float eps) {
  Tensor g, b;
  return out(inner_.group_norm(in(x), groups, in(gamma, g), in(beta, b), eps));
}
Tensor DeviceTaggingBackend::group_norm_act(const Tensor& x, int groups, const Tensor* gamma,
                                            const Tensor* beta, float eps, Activation a) {
  Tensor g, b;
  return out(inner_.group_norm_act(in(x), groups, in(gamma, g), in(beta, b), eps, a));
}
Tensor DeviceTaggingBackend::geglu(const Tensor& x) { return out(inner_.geglu(in(x))); }
Tensor DeviceTaggingBackend::layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                                        float eps) {
  Tensor g, b;
  return out(inner_.layer_norm(in(x), in(gamma, g), in(beta, b), eps));
}
Tensor DeviceTaggingBackend::batch_norm(const Tensor& x, const Tensor& running_mean,
                                        const Tensor& running_var, const Tensor* gamma,
                                        const Tensor* beta, float eps) {
  Tensor g, b;
  return out(inner_.batch_norm(in(x), in(running_mean), in(running_var), in(gamma, g),
                               in(beta, b), eps));
}
Tensor DeviceTaggingBackend::instance_norm(const Tensor& x, float eps) {
  return out(inner_.instance_norm(in(x), eps));
}
Tensor DeviceTaggingBackend::softmax(const Tensor& x) { return out(inner_.softmax(in(x))); }

Tensor DeviceTaggingBackend::activation(const Tensor& x, Activation a) {
  return out(inner_.activation(in(x), a));
}
Tensor DeviceTaggingBackend::add(const Tensor& a, const Tensor& b) {
  return out(inner_.add(in(a), in(b)));
}
Tensor DeviceTaggingBackend::sub(const Tensor& a, const Tensor& b) {
  return out(inner_.sub(in(a), in(b)));
}
Tensor DeviceTaggingBackend::mul(const Tensor& a, const Tensor& b) {
  return out(inner_.mul(in(a), in(b)));
}
Tensor DeviceTaggingBackend::scale(const Tensor& x, float s) { return out(inner_.scale(in(x), s)); }
Tensor DeviceTaggingBackend::add_scalar(const Tensor& x, float s) {
  return out(inner_.add_scalar(in(x), s));
}
Tensor DeviceTaggingBackend::add_channel_bias(const Tensor& x, const Tensor& b) {
  return out(inner_.add_channel_bias(in(x), in(b)));
}
Tensor DeviceTaggingBackend::clamp(const Tensor& x, float lo, float hi) {
  return out(inner_.clamp(in(x), lo, hi));
}
Tensor DeviceTaggingBackend::concat(const std::vector<Tensor>& xs, int dim) {
  return out(inner_.concat(in(xs), dim));
}
Tensor DeviceTaggingBackend::slice(const Tensor& x, int dim, int64_t start, int64_t end) {
  return out(inner_.slice(in(x), dim, start, end));
}
Tensor DeviceTaggingBackend::nchw_to_tokens(const Tensor& x) {
  return out(inner_.nchw_to_tokens(in(x)));
}
Tensor DeviceTaggingBackend::tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  return out(inner_.tokens_to_nchw(in(x), h, w));
}
Tensor DeviceTaggingBackend::permute(const Tensor& x, const std::vector<int>& perm) {
  return out(inner_.permute(in(x), perm));
}

Tensor DeviceTaggingBackend::upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  return out(inner_.upsample_nearest(in(x), out_h, out_w));
}
Tensor DeviceTaggingBackend::upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                                               bool align_corners) {
  return out(inner_.upsample_bilinear(in(x), out_h, out_w, align_corners));
}
Tensor DeviceTaggingBackend::upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                                              bool align_corners) {
  return out(inner_.upsample_bicubic(in(x), out_h, out_w, align_corners));
}
Tensor DeviceTaggingBackend::grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                                         bool align_corners) {
  return out(inner_.grid_sample(in(x), in(grid), mode, align_corners));
}
Tensor DeviceTaggingBackend::avg_pool2d(const Tensor& x, int kernel, int stride) {
  return out(inner_.avg_pool2d(in(x), kernel, stride));
}

Tensor DeviceTaggingBackend::correlation_volume(const Tensor& fmap1, const Tensor& fmap2) {
  return out(inner_.correlation_volume(in(fmap1), in(fmap2)));
}
Tensor DeviceTaggingBackend::raft_corr_lookup(const std::vector<Tensor>& pyramid,
                                              const Tensor& coords, int radius) {
  return out(inner_.raft_corr_lookup(in(pyramid), in(coords), radius));
}
Tensor DeviceTaggingBackend::raft_corr_lookup_direct(const Tensor& fmap1_cl,
                                                     const std::vector<Tensor>& fmap2_levels,
                                                     const Tensor& coords, int radius) {
  return out(inner_.raft_corr_lookup_direct(in(fmap1_cl), in(fmap2_levels), in(coords), radius));
}
Tensor DeviceTaggingBackend::raft_convex_upsample(const Tensor& flow, const Tensor& mask,
                                                  int factor) {
  return out(inner_.raft_convex_upsample(in(flow), in(mask), factor));
}

}  // namespace sdvsr::test
