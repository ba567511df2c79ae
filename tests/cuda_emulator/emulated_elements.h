#pragma once
// The element types the fake cuBLAS and cuDNN read and write: float32 and the
// two 16-bit types, widened exactly to float and rounded back to nearest even.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

namespace sdvsr::emulated {

enum class Elem { kF32, kF16, kBF16 };

inline size_t elem_size(Elem e) { return e == Elem::kF32 ? 4 : 2; }

inline float load(const void* p, int64_t i, Elem e) {
  switch (e) {
    case Elem::kF32: return static_cast<const float*>(p)[i];
    case Elem::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case Elem::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
  return 0.f;
}

inline void store(void* p, int64_t i, Elem e, float v) {
  switch (e) {
    case Elem::kF32: static_cast<float*>(p)[i] = v; return;
    case Elem::kF16: static_cast<__half*>(p)[i] = __float2half_rn(v); return;
    case Elem::kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); return;
  }
}

}  // namespace sdvsr::emulated
