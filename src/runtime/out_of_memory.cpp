#include "runtime/out_of_memory.h"

#include <new>
#include <string_view>

#include <oneapi/dnnl/dnnl.hpp>

namespace sdvsr {

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  if (const auto* d = dynamic_cast<const dnnl::error*>(&e)) return d->status == dnnl_out_of_memory;
  // cudaGetErrorString(cudaErrorMemoryAllocation) at the end of cuda::check's message.
  const std::string_view what = e.what();
  constexpr std::string_view kCuda = ": out of memory";
  return what.size() >= kCuda.size() && what.substr(what.size() - kCuda.size()) == kCuda;
}

}  // namespace sdvsr
