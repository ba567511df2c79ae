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

Tensor dnnl_eltwise(const Tensor& x, dnnl::algorithm alg, float alpha) {
  Tensor out = Tensor::uninitialized(x.shape());
  const int64_t n = x.numel();
  if (n == 0) return out;
  const auto prim = eltwise_primitive(alg, alpha, n);
  const dnnl::memory::desc md({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x);
  dnnl::memory src(md, dnnl_engine(), const_cast<float*>(x.data()));
  dnnl::memory dst(md, dnnl_engine(), out.data());
  dnnl::stream s(dnnl_engine());
  prim->execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  s.wait();
  return out;
}

}  // namespace sdvsr::cpu
