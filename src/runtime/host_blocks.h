// Large host allocations (tensor storage, oneDNN's blocked copies), mapped
// here and kept when freed, so that the next allocation of about the same
// size reuses pages already faulted in instead of fresh zeroed ones.
//
// Why: malloc maps every block over 32 MiB afresh and unmaps it on free, and
// gives the top of its heap back once 64 MiB there are free, so each new
// activation of a U-Net's top level paid its page faults again: at LR 180x320
// a unet_step spent about 2.5 s of 45 CPU-seconds in the kernel.
//
// Bound: live and cached blocks together never exceed the most live blocks
// there have been, plus kSlackBytes. A miss that would pass that first unmaps
// cached blocks (see host_blocks.cpp). Peak memory therefore stays within
// kSlackBytes of what the live blocks need (measured lower than with malloc,
// whose free chunks between live ones are gone), while the same sizes
// recurring every layer, step and frame are found in the cache.
#pragma once

#include <cstddef>
#include <memory>

namespace sdvsr::host_blocks {

// Blocks of this size or more are mapped (with transparent huge pages asked
// for) and cached here; smaller ones come from aligned_alloc.
constexpr size_t kMinBytes = size_t{1} << 20;
// Freed blocks kept beyond the most live blocks there have ever been.
constexpr size_t kSlackBytes = size_t{128} << 20;

// `bytes` of host memory, 64-byte aligned (page aligned when cached here),
// contents unspecified; freed (returned to the cache) with the last owner.
// Throws std::bad_alloc when no memory can be had.
std::shared_ptr<void> allocate(size_t bytes);

struct Stats {
  size_t mapped_bytes = 0;  // live and cached blocks together
  size_t cached_bytes = 0;  // freed blocks kept for reuse
  size_t peak_live_bytes = 0;  // the most live blocks there have been
  long long hits = 0, misses = 0;
};
Stats stats();

// Unmaps every cached block (a caller done with a long stream may give the
// memory back; the next frame then faults its pages in again).
void release_cached();

// Off: every large block is mapped on allocation and unmapped on free (what
// malloc does). On by default; SDVSR_HOST_BLOCK_CACHE=0 turns it off, and it
// is always off in sanitizer builds, where malloc's checks matter more.
void set_cache_enabled(bool on);
bool cache_enabled();

}  // namespace sdvsr::host_blocks
