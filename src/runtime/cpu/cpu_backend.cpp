#include "runtime/cpu/cpu_backend.h"

#include <omp.h>

#include <stdexcept>

namespace sdvsr {

void CpuBackend::set_threads(int n) {
  // oneDNN's OpenMP runtime follows the OpenMP thread count.
  if (n > 0) omp_set_num_threads(n);
}

int CpuBackend::threads() const { return omp_get_max_threads(); }

namespace cpu {
void check(bool ok, const char* op, const std::string& message) {
  if (!ok) throw std::runtime_error(std::string("cpu backend: ") + op + ": " + message);
}
}  // namespace cpu

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace sdvsr
