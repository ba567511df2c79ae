#include "runtime/cpu/cpu_dnnl.h"

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace sdvsr::cpu {

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

namespace {

using EltwiseKey = std::tuple<int, float, int64_t>;  // algorithm, alpha, elements

std::mutex g_eltwise_mutex;
std::map<EltwiseKey, std::shared_ptr<const dnnl::eltwise_forward>> g_eltwise_cache;

std::shared_ptr<const dnnl::eltwise_forward> eltwise_primitive(dnnl::algorithm alg, float alpha,
                                                               int64_t n) {
  const EltwiseKey key{static_cast<int>(alg), alpha, n};
  std::lock_guard<std::mutex> lock(g_eltwise_mutex);
  auto it = g_eltwise_cache.find(key);
  if (it != g_eltwise_cache.end()) return it->second;
  const dnnl::memory::desc md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x);
  const dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, alg, md, alpha, 0.f);
  auto prim = std::make_shared<const dnnl::eltwise_forward>(
      dnnl::eltwise_forward::primitive_desc(desc, dnnl_engine()));
  g_eltwise_cache.emplace(key, prim);
  return prim;
}

}  // namespace

void dnnl_eltwise_span(const float* src, float* dst, int64_t n, dnnl::algorithm alg,
                       float alpha) {
  if (n <= 0) return;
  const auto prim = eltwise_primitive(alg, alpha, n);
  const dnnl::memory::desc md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x);
  dnnl::memory src_m(md, dnnl_engine(), const_cast<float*>(src));
  dnnl::memory dst_m(md, dnnl_engine(), dst);
  dnnl::stream s(dnnl_engine());
  prim->execute(s, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_DST, dst_m}});
  s.wait();
}

Tensor dnnl_eltwise(const Tensor& x, dnnl::algorithm alg, float alpha) {
  Tensor out = Tensor::uninitialized(x.shape());
  dnnl_eltwise_span(x.data(), out.data(), x.numel(), alg, alpha);
  return out;
}

bool eltwise_for(Activation a, dnnl::algorithm& alg, float& alpha) {
  // The U-Net's and CLIP's activations run over large tensors: oneDNN's
  // vectorised forms (scalar libm exp/erf cost more than the memory traffic).
  alpha = 0.f;
  switch (a) {
    case Activation::kSiLU:  // x * sigmoid(x)
      alg = dnnl::algorithm::eltwise_swish;
      alpha = 1.f;
      return true;
    case Activation::kGELU:  // exact erf form
      alg = dnnl::algorithm::eltwise_gelu_erf;
      return true;
    case Activation::kGELUTanh:
      alg = dnnl::algorithm::eltwise_gelu_tanh;
      return true;
    case Activation::kQuickGELU:  // x * sigmoid(1.702 x)
      alg = dnnl::algorithm::eltwise_swish;
      alpha = 1.702f;
      return true;
    case Activation::kTanh:  // RAFT's GRU: NaN must stay NaN (tested)
      alg = dnnl::algorithm::eltwise_tanh;
      return true;
    case Activation::kSigmoid:
      alg = dnnl::algorithm::eltwise_logistic;
      return true;
    case Activation::kNone:
    case Activation::kReLU:
      return false;
  }
  return false;
}

bool activation_span_knows(Activation a) {
  dnnl::algorithm alg;
  float alpha;
  return a == Activation::kNone || a == Activation::kReLU || eltwise_for(a, alg, alpha);
}

void activation_span(Activation a, float* data, int64_t n) {
  dnnl::algorithm alg;
  float alpha;
  if (eltwise_for(a, alg, alpha)) {
    dnnl_eltwise_span(data, data, n, alg, alpha);
  } else if (a == Activation::kReLU) {
    for (int64_t i = 0; i < n; ++i) data[i] = relu(data[i]);
  }
}

}  // namespace sdvsr::cpu
