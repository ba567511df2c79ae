#include "runtime/cpu/cpu_simd.h"

#include <atomic>

namespace sdvsr::cpu {

namespace {
std::atomic<bool> g_wide_on{true};
std::atomic<long long> g_wide_runs{0};
}  // namespace

bool wide_simd_supported() {
#if SDVSR_HAVE_X86_V3
  static const bool supported = [] {
    __builtin_cpu_init();  // may run before libgcc's own constructor
    return __builtin_cpu_supports("x86-64-v3") != 0;
  }();
  return supported;
#else
  return false;
#endif
}

bool wide_simd() { return g_wide_on.load() && wide_simd_supported(); }

bool set_wide_simd(bool on) { return g_wide_on.exchange(on); }

long long wide_simd_runs() { return g_wide_runs.load(); }

void count_wide_simd_run() { ++g_wide_runs; }

}  // namespace sdvsr::cpu
