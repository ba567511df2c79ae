#include "counting_backend.h"

namespace sdvsr::bench {

void CountingBackend::reset() {
  flops_.store(0.0);
  profile_.clear();
}

namespace {

class CountedRecording final : public Recording {
 public:
  CountedRecording(std::unique_ptr<Recording> inner, double flops, CountingBackend& owner)
      : inner_(std::move(inner)), flops_(flops), owner_(owner) {}
  void replay() override { owner_.replay_counted(*inner_, flops_); }

 private:
  std::unique_ptr<Recording> inner_;
  double flops_;
  CountingBackend& owner_;
};

// A convolution's FLOPs: every one of `outputs` values takes (C / groups) * kh * kw
// multiply-adds, whatever is added after (bias, residual).
double conv_flops(const Tensor& weight, double outputs) {
  const double per_output = static_cast<double>(weight.size(1)) * weight.size(2) * weight.size(3);
  return 2.0 * per_output * outputs;
}

}  // namespace

std::unique_ptr<Recording> CountingBackend::record(const std::function<void()>& work) {
  const bool profiling = profiling_;
  profiling_ = false;  // recording launches nothing: no op time to attribute
  const double before = flops_.load();
  std::unique_ptr<Recording> inner;
  try {
    inner = inner_.record(work);
  } catch (...) {
    profiling_ = profiling;
    flops_.store(before);
    throw;
  }
  profiling_ = profiling;
  const double recorded = flops_.load() - before;
  flops_.store(before);
  return std::make_unique<CountedRecording>(std::move(inner), recorded, *this);
}

void CountingBackend::replay_counted(Recording& inner, double flops) {
  replaying_ = true;
  try {
    inner.replay();
  } catch (...) {
    replaying_ = false;
    throw;
  }
  replaying_ = false;
  flops_.fetch_add(flops);
}

Tensor CountingBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                               const Conv2dParams& p) {
  Tensor out = timed("conv2d", [&] { return inner_.conv2d(x, weight, bias, p); });
  count("conv2d", conv_flops(weight, static_cast<double>(out.numel())));
  return out;
}

Tensor CountingBackend::conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                                   const Conv2dParams& p, const Tensor& residual) {
  Tensor out = timed("conv2d_add", [&] { return inner_.conv2d_add(x, weight, bias, p, residual); });
  count("conv2d_add", conv_flops(weight, static_cast<double>(out.numel())));
  return out;
}

Tensor CountingBackend::conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                                     const Tensor* residual) {
  Tensor out = timed("conv2d_stack", [&] { return inner_.conv2d_stack(x, stages, residual); });
  // Each stage's multiply-adds as conv2d counts them, its output size followed
  // from the input's (PyTorch's formula).
  double flops = 0;
  int64_t h = x.size(2), w = x.size(3);
  for (const ConvStage& st : stages) {
    const Tensor& wt = *st.weight;
    const Conv2dParams& p = st.params;
    h = conv2d_out_h(p, h, wt.size(2));
    w = conv2d_out_w(p, w, wt.size(3));
    flops += conv_flops(wt, static_cast<double>(x.size(0) * wt.size(0) * h * w));
  }
  count("conv2d_stack", flops);
  return out;
}

Tensor CountingBackend::group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm,
                                              const ConvStage& conv, const Tensor* residual) {
  Tensor out = timed("group_norm_act_conv2d",
                     [&] { return inner_.group_norm_act_conv2d(x, norm, conv, residual); });
  // The norm is not counted.
  count("group_norm_act_conv2d", conv_flops(*conv.weight, static_cast<double>(out.numel())));
  return out;
}

Tensor CountingBackend::group_norm_act_conv2d_shortcut(const Tensor& h, const GroupNormAct& norm,
                                                       const ConvStage& conv,
                                                       const Tensor& skip_input,
                                                       const ConvStage& shortcut) {
  Tensor out = timed("group_norm_act_conv2d_shortcut", [&] {
    return inner_.group_norm_act_conv2d_shortcut(h, norm, conv, skip_input, shortcut);
  });
  // Both convolutions write the output's size.
  const double outputs = static_cast<double>(out.numel());
  count("group_norm_act_conv2d_shortcut",
        conv_flops(*conv.weight, outputs) + conv_flops(*shortcut.weight, outputs));
  return out;
}

Tensor CountingBackend::upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                                const ConvStage& conv) {
  Tensor out = timed("upsample_nearest_conv2d",
                     [&] { return inner_.upsample_nearest_conv2d(x, out_h, out_w, conv); });
  count("upsample_nearest_conv2d", conv_flops(*conv.weight, static_cast<double>(out.numel())));
  return out;
}

Tensor CountingBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  Tensor out = timed("linear", [&] { return inner_.linear(x, weight, bias); });
  count("linear", 2.0 * static_cast<double>(out.numel()) * static_cast<double>(weight.size(1)));
  return out;
}

Tensor CountingBackend::linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) {
  Tensor out = timed("linear_geglu", [&] { return inner_.linear_geglu(x, weight, bias); });
  // Both halves of the projection; out holds one of them.
  count("linear_geglu",
        4.0 * static_cast<double>(out.numel()) * static_cast<double>(weight.size(1)));
  return out;
}

Tensor CountingBackend::linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                                   const Tensor& residual) {
  Tensor out = timed("linear_add", [&] { return inner_.linear_add(x, weight, bias, residual); });
  count("linear_add", 2.0 * static_cast<double>(out.numel()) * static_cast<double>(weight.size(1)));
  return out;
}

Tensor CountingBackend::matmul(const Tensor& a, const Tensor& b, bool transpose_b) {
  Tensor out = timed("matmul", [&] { return inner_.matmul(a, b, transpose_b); });
  count("matmul", 2.0 * static_cast<double>(out.numel()) * static_cast<double>(a.size(2)));
  return out;
}

Tensor CountingBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                                  float scale, bool causal) {
  Tensor out = timed("attention", [&] { return inner_.attention(q, k, v, heads, scale, causal); });
  // q k^T: B*heads*Lq*Lk*d, p v: the same again; heads*d = width. The causal
  // mask is applied after a full product, so it saves nothing here.
  const double b = static_cast<double>(q.size(0)), lq = static_cast<double>(q.size(1)),
               lk = static_cast<double>(k.size(1)), width = static_cast<double>(q.size(2));
  count("attention", 2.0 * 2.0 * b * lq * lk * width);
  return out;
}

Tensor CountingBackend::correlation_volume(const Tensor& fmap1, const Tensor& fmap2) {
  Tensor out = timed("correlation_volume", [&] { return inner_.correlation_volume(fmap1, fmap2); });
  // [HW, C] x [C, HW] per image.
  const double hw = static_cast<double>(fmap1.size(2)) * static_cast<double>(fmap1.size(3));
  count("correlation_volume", 2.0 * static_cast<double>(fmap1.size(0)) * hw * hw * static_cast<double>(fmap1.size(1)));
  return out;
}

}  // namespace sdvsr::bench
