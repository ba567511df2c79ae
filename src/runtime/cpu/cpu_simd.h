#pragma once
// Kernels of our own (the loops oneDNN does not run for us) can be built twice:
// once for the baseline x86-64 every machine runs, once for x86-64-v3 (AVX2)
// where the CPU has it, picked at run time. Both builds do the same float
// operations in the same order (the project compiles with -ffp-contract=off,
// so no FMA is formed), hence give the same bits; the wide one does them eight
// at a time.
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#define SDVSR_HAVE_X86_V3 1
#define SDVSR_TARGET_X86_V3 __attribute__((target("arch=x86-64-v3")))
#else
#define SDVSR_HAVE_X86_V3 0
#define SDVSR_TARGET_X86_V3
#endif
#define SDVSR_ALWAYS_INLINE inline __attribute__((always_inline))

namespace sdvsr::cpu {

// Whether this CPU runs x86-64-v3 code.
bool wide_simd_supported();
// Whether kernels use their x86-64-v3 build now: supported and not switched off.
bool wide_simd();
// Off: every kernel runs its baseline build (tests, benchmark A/B). Returns the
// previous setting. Results are the same either way.
bool set_wide_simd(bool on);
// Kernel calls that ran their x86-64-v3 build, for tests.
long long wide_simd_runs();
void count_wide_simd_run();

// Eight floats as one GCC vector: one AVX register in a wide build, two SSE
// registers in the baseline build; either way lane k only ever meets lane k.
// (Every use is inlined, so the ABI note GCC makes about such values does not apply.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Lanes8 __attribute__((vector_size(32)));

SDVSR_ALWAYS_INLINE Lanes8 load8(const float* p) {
  Lanes8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The eight lanes added pairwise: ((0+1)+(2+3))+((4+5)+(6+7)).
SDVSR_ALWAYS_INLINE float sum8(Lanes8 a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
#pragma GCC diagnostic pop

}  // namespace sdvsr::cpu
