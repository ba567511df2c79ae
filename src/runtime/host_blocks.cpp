#include "runtime/host_blocks.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace sdvsr::host_blocks {
namespace {

// ASan checks malloc'd blocks only (GCC says so with __SANITIZE_ADDRESS__,
// clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define SDVSR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SDVSR_ASAN 1
#endif
#endif
#ifdef SDVSR_ASAN
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

struct Block {
  void* ptr = nullptr;
  size_t bytes = 0;
  unsigned long long freed_at = 0;  // order of freeing, for evicting the oldest
};

// The process-wide cache. Never destroyed: tensors in static storage may be
// freed after main() returns and must still find it.
struct Cache {
  std::mutex mutex;
  std::vector<Block> cached;
  size_t mapped_bytes = 0, cached_bytes = 0, peak_live_bytes = 0;
  long long hits = 0, misses = 0;
  unsigned long long frees = 0;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

std::atomic<int> g_enabled{-1};  // -1: not read from the environment yet

size_t page_bytes() {
  static const size_t page = [] {
    const long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page;
}

void unmap_all(const std::vector<Block>& blocks) {
  for (const Block& b : blocks) munmap(b.ptr, b.bytes);
}

// The smallest cached block of `bytes` to `most` bytes (caller holds the
// lock), or end().
std::vector<Block>::iterator smallest_within(Cache& c, size_t bytes, size_t most) {
  auto best = c.cached.end();
  for (auto it = c.cached.begin(); it != c.cached.end(); ++it)
    if (it->bytes >= bytes && it->bytes <= most &&
        (best == c.cached.end() || it->bytes < best->bytes))
      best = it;
  return best;
}

// Takes out of the cache (caller holds the lock) blocks totalling at least
// `bytes`, or all of it: the smallest single block that big if there is one
// (one unmap, the least lost), else the oldest first.
std::vector<Block> evict_for(Cache& c, size_t bytes) {
  std::vector<Block> out;
  const auto smallest = smallest_within(c, bytes, SIZE_MAX);
  if (smallest != c.cached.end()) {
    out.push_back(*smallest);
    c.cached.erase(smallest);
  } else {
    std::sort(c.cached.begin(), c.cached.end(),
              [](const Block& a, const Block& b) { return a.freed_at < b.freed_at; });
    size_t got = 0;
    size_t taken = 0;
    while (taken < c.cached.size() && got < bytes) got += c.cached[taken++].bytes;
    out.assign(c.cached.begin(), c.cached.begin() + static_cast<std::ptrdiff_t>(taken));
    c.cached.erase(c.cached.begin(), c.cached.begin() + static_cast<std::ptrdiff_t>(taken));
  }
  for (const Block& b : out) {
    c.cached_bytes -= b.bytes;
    c.mapped_bytes -= b.bytes;
  }
  return out;
}

void give_back(void* ptr, size_t bytes) {
  Cache& c = cache();
  if (!cache_enabled()) {
    munmap(ptr, bytes);
    std::lock_guard<std::mutex> lock(c.mutex);
    c.mapped_bytes -= bytes;
    return;
  }
  std::lock_guard<std::mutex> lock(c.mutex);
  c.cached.push_back(Block{ptr, bytes, ++c.frees});
  c.cached_bytes += bytes;
}

constexpr size_t kHugePage = size_t{2} << 20;

// `bytes` (a multiple of the page size) mapped at a 2 MiB boundary, with
// transparent huge pages asked for: first touch then faults once per 2 MiB
// instead of once per 4 KiB page.
void* map_block(size_t bytes) {
  const size_t span = bytes + kHugePage;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const auto at = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (at + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > at) munmap(p, aligned - at);
  const uintptr_t end = at + span, used_end = aligned + bytes;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

std::shared_ptr<void> large_block(size_t wanted) {
  const size_t page = page_bytes();
  if (wanted > (SIZE_MAX >> 1)) throw std::bad_alloc();
  const size_t bytes = (wanted + page - 1) / page * page;
  Cache& c = cache();
  std::vector<Block> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    // Best fit among blocks at most 1/16 larger: the same sizes recur from
    // frame to frame and step to step, and the slack stays small.
    const auto best = smallest_within(c, bytes, bytes + bytes / 16);
    if (best != c.cached.end()) {
      const Block b = *best;
      c.cached.erase(best);
      c.cached_bytes -= b.bytes;
      c.peak_live_bytes = std::max(c.peak_live_bytes, c.mapped_bytes - c.cached_bytes);
      ++c.hits;
      return std::shared_ptr<void>(b.ptr, [n = b.bytes](void* p) { give_back(p, n); });
    }
    ++c.misses;
    // Live blocks after this one, and the most there have ever been.
    const size_t live = c.mapped_bytes - c.cached_bytes + bytes;
    c.peak_live_bytes = std::max(c.peak_live_bytes, live);
    const size_t limit = c.peak_live_bytes + kSlackBytes;
    if (c.mapped_bytes + bytes > limit) evicted = evict_for(c, c.mapped_bytes + bytes - limit);
    c.mapped_bytes += bytes;
  }
  unmap_all(evicted);
  void* p = map_block(bytes);
  if (!p) {  // give back everything cached and try once more
    release_cached();
    p = map_block(bytes);
  }
  if (!p) {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.mapped_bytes -= bytes;
    throw std::bad_alloc();
  }
  return std::shared_ptr<void>(p, [bytes](void* q) { give_back(q, bytes); });
}

}  // namespace

bool cache_enabled() {
  int on = g_enabled.load();
  if (on < 0) {
    const char* env = std::getenv("SDVSR_HOST_BLOCK_CACHE");
    on = (env && std::strcmp(env, "0") == 0) ? 0 : 1;
    int unset = -1;
    g_enabled.compare_exchange_strong(unset, on);
    on = g_enabled.load();
  }
  return on == 1 && !kSanitized;
}

void set_cache_enabled(bool on) {
  g_enabled.store(on ? 1 : 0);
  if (!on) release_cached();
}

std::shared_ptr<void> allocate(size_t bytes) {
  if (bytes >= kMinBytes && cache_enabled()) return large_block(bytes);
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return Stats{c.mapped_bytes, c.cached_bytes, c.peak_live_bytes, c.hits, c.misses};
}

void release_cached() {
  Cache& c = cache();
  std::vector<Block> all;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    all.swap(c.cached);
    c.mapped_bytes -= c.cached_bytes;
    c.cached_bytes = 0;
  }
  unmap_all(all);
}

}  // namespace sdvsr::host_blocks
