#pragma once
// The oneDNN engine the CPU backend's primitives run on, and the vectorised
// pointwise functions it provides.
#include <dnnl.hpp>

#include "runtime/tensor.h"

namespace sdvsr::cpu {

dnnl::engine& dnnl_engine();

// out = f(x) elementwise with oneDNN's JIT eltwise primitive (cached per
// algorithm, alpha and size). Every element goes through the same vector code
// wherever it sits, so results do not depend on the thread count.
Tensor dnnl_eltwise(const Tensor& x, dnnl::algorithm alg, float alpha = 0.f);

}  // namespace sdvsr::cpu
