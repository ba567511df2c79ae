#pragma once
// Element conversions between float32 and the reduced backends' 16-bit types
// in device code: widening is exact; narrowing rounds to nearest even, as
// PyTorch's .half() and .bfloat16() do.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sdvsr::cuda {

__device__ inline float widen(float v) { return v; }
__device__ inline float widen(__half v) { return __half2float(v); }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ inline T narrow(float v);
template <>
__device__ inline float narrow<float>(float v) {
  return v;
}
template <>
__device__ inline __half narrow<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ inline __nv_bfloat16 narrow<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

}  // namespace sdvsr::cuda
