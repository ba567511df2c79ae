#include "runtime/file_backed_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>

namespace sdvsr {
namespace {

std::mutex g_mutex;
std::map<uintptr_t, uintptr_t> g_mappings;  // begin -> end

}  // namespace

void register_file_mapping(const void* begin, size_t bytes) {
  const auto b = reinterpret_cast<uintptr_t>(begin);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_mappings[b] = b + bytes;
}

void unregister_file_mapping(const void* begin) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_mappings.erase(reinterpret_cast<uintptr_t>(begin));
}

bool drop_file_backed_pages(const void* p, size_t bytes) {
  const auto lo = reinterpret_cast<uintptr_t>(p);
  const uintptr_t hi = lo + bytes;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_mappings.upper_bound(lo);
    if (it == g_mappings.begin()) return false;
    --it;
    if (hi > it->second) return false;
    // Unregistering happens just before munmap, and the caller holds the
    // tensor (and so the mapping) alive: the range stays mapped past the lock.
  }
  // Only pages wholly inside the range: a neighbour's bytes stay resident.
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (lo + page - 1) / page * page;
  const uintptr_t last = hi / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  return true;
}

}  // namespace sdvsr
