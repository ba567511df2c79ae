#pragma once
// The oneDNN engine the CPU backend's primitives run on, and the vectorised
// pointwise functions it provides.
#include <dnnl.hpp>

#include <cmath>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace sdvsr::cpu {

dnnl::engine& dnnl_engine();

// out = f(x) elementwise with oneDNN's JIT eltwise primitive (cached per
// algorithm, alpha and size). Every element goes through the same vector code
// wherever it sits, so results do not depend on the thread count.
Tensor dnnl_eltwise(const Tensor& x, dnnl::algorithm alg, float alpha = 0.f);

// dst[0, n) = f(src[0, n)) with the same cached primitive as dnnl_eltwise, so
// each element gets the same bits as there; dst == src is allowed. Inside an
// OpenMP parallel region it runs on the calling thread alone.
void dnnl_eltwise_span(const float* src, float* dst, int64_t n, dnnl::algorithm alg, float alpha);

// The oneDNN algorithm and alpha CpuBackend::activation runs `a` with; false
// for the activations it computes itself (kNone, kReLU).
bool eltwise_for(Activation a, dnnl::algorithm& alg, float& alpha);

// ReLU as CpuBackend::activation computes it (NaN stays NaN).
inline float relu(float v) { return v > 0.f ? v : (std::isnan(v) ? v : 0.f); }

// data[0, n) = a(data[0, n)) in place, the same bits as CpuBackend::activation.
void activation_span(Activation a, float* data, int64_t n);
// Whether activation_span knows `a` (kNone: nothing to do).
bool activation_span_knows(Activation a);

}  // namespace sdvsr::cpu
