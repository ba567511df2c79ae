#pragma once
// Warp-wide tensor-core products for kernels of our own (sm_80 and later):
// mma.sync m16n8k16 with 16-bit operands and float32 accumulation, and the
// packing of two 16-bit values into one operand register. Which element of a
// tile each lane holds is PTX's documented fragment layout (see the
// emulator's mma_m16n8k16, which rebuilds the tiles from it). On the tests'
// host emulator the same calls go to its warp-wide emulation.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace sdvsr::cuda {

// Two values rounded to T (round to nearest even), `lo` in the low half.
template <typename T>
__device__ inline uint32_t pack2(float lo, float hi);
template <>
__device__ inline uint32_t pack2<__half>(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  uint32_t bits;
  std::memcpy(&bits, &h, sizeof(bits));
  return bits;
}
template <>
__device__ inline uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  std::memcpy(&bits, &h, sizeof(bits));
  return bits;
}

// Two consecutive 16-bit values at p (4-byte aligned) as one operand register.
template <typename T>
__device__ inline uint32_t load2(const T* p) {
#ifdef SDVSR_CUDA_EMULATOR
  uint32_t bits;  // host C++: no aliasing through another type
  std::memcpy(&bits, p, sizeof(bits));
  return bits;
#else
  // One 32-bit load: a memcpy from a 2-byte type may become two 16-bit ones.
  return *reinterpret_cast<const uint32_t*>(p);
#endif
}

// c (16x8) += A (16x16, row-major fragments) * B (16x8, column-major), one warp.
template <typename T>
__device__ inline void mma_16816(float c[4], const uint32_t a[4], const uint32_t b[2]);

#ifdef SDVSR_CUDA_EMULATOR
template <typename T>
__device__ inline void mma_16816(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  ::sdvsr::emulated::mma_m16n8k16<T>(c, a, b);
}
#else
template <>
__device__ inline void mma_16816<__half>(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // launchers check the device's compute capability first
#endif
}
template <>
__device__ inline void mma_16816<__nv_bfloat16>(float c[4], const uint32_t a[4],
                                                const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}
#endif

}  // namespace sdvsr::cuda
