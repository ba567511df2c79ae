// Large host blocks are mapped once and reused when freed; live and cached
// blocks together never pass the peak of live blocks plus kSlackBytes.
#include "runtime/host_blocks.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr {
namespace {

namespace hb = host_blocks;

#define SKIP_WITHOUT_CACHE()                                                              \
  if (!hb::cache_enabled())                                                               \
  GTEST_SKIP() << "the host block cache is off here (sanitizer build or "                 \
                  "SDVSR_HOST_BLOCK_CACHE=0)"

constexpr size_t kMiB = size_t{1} << 20;

TEST(HostBlocks, AFreedBlockIsReusedForTheSameSize) {
  SKIP_WITHOUT_CACHE();
  const size_t bytes = 3 * kMiB + 100;
  void* first = nullptr;
  {
    auto a = hb::allocate(bytes);
    first = a.get();
    std::memset(a.get(), 1, bytes);
  }
  const hb::Stats before = hb::stats();
  EXPECT_GE(before.cached_bytes, bytes);
  auto b = hb::allocate(bytes);
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(hb::stats().hits, before.hits + 1);
  EXPECT_EQ(hb::stats().misses, before.misses);
  EXPECT_EQ(static_cast<unsigned char*>(b.get())[bytes - 1], 1);  // the same pages
}

TEST(HostBlocks, OnlyABlockAtMostASixteenthLargerFits) {
  SKIP_WITHOUT_CACHE();
  void* big = nullptr;
  { auto a = hb::allocate(32 * kMiB); big = a.get(); }
  {
    auto half = hb::allocate(16 * kMiB);  // would waste half the block: mapped anew
    EXPECT_NE(half.get(), big);
  }
  auto near = hb::allocate(31 * kMiB);  // 1/31 smaller: fits
  EXPECT_EQ(near.get(), big);
}

TEST(HostBlocks, AlignedAndWritableAtBothEnds) {
  for (size_t bytes : {size_t{1}, size_t{100}, hb::kMinBytes - 1, hb::kMinBytes, 5 * kMiB + 7}) {
    auto p = hb::allocate(bytes);
    ASSERT_NE(p.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % 64, 0u) << bytes;
    auto* c = static_cast<unsigned char*>(p.get());
    c[0] = 1;
    c[bytes - 1] = 2;
    EXPECT_EQ(c[bytes - 1], 2);
    if (bytes > 1) {
      EXPECT_EQ(c[0], 1);
    }
  }
}

// A fixed pseudo-random run of allocations and frees of 1-40 MiB: after every
// step the mapped total is within the bound, and the live total is what the
// test holds.
TEST(HostBlocks, MappedStaysWithinPeakLivePlusSlack) {
  SKIP_WITHOUT_CACHE();
  const size_t page = 4096;
  std::vector<std::pair<std::shared_ptr<void>, size_t>> held;
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  const size_t earlier_peak = hb::stats().peak_live_bytes;  // earlier tests in this process
  size_t most_held = 0;
  for (int step = 0; step < 400; ++step) {
    if (held.size() < 12 && (held.empty() || next() % 3 != 0)) {
      const size_t bytes = kMiB + (next() % (40 * kMiB));
      held.emplace_back(hb::allocate(bytes), bytes);
    } else {
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(next() % held.size()));
    }
    const hb::Stats s = hb::stats();
    size_t live = 0;
    for (const auto& h : held) live += (h.second + page - 1) / page * page;
    most_held = std::max(most_held, live);
    ASSERT_LE(s.mapped_bytes, s.peak_live_bytes + hb::kSlackBytes) << "step " << step;
    // Blocks handed out may be up to 1/16 larger than asked for.
    ASSERT_GE(s.mapped_bytes - s.cached_bytes, live) << "step " << step;
    ASSERT_LE(s.mapped_bytes - s.cached_bytes, live + live / 16) << "step " << step;
    ASSERT_LE(s.peak_live_bytes, std::max(earlier_peak, most_held + most_held / 16))
        << "step " << step;
  }
  held.clear();
  const hb::Stats s = hb::stats();
  EXPECT_EQ(s.mapped_bytes, s.cached_bytes);  // nothing live
  EXPECT_GT(s.hits, 0);
  hb::release_cached();
  EXPECT_EQ(hb::stats().mapped_bytes, 0u);
  EXPECT_EQ(hb::stats().cached_bytes, 0u);
}

TEST(HostBlocks, TurnedOffBlocksComeFromMallocAndTheCacheIsGivenBack) {
  SKIP_WITHOUT_CACHE();
  { auto a = hb::allocate(2 * kMiB); }
  EXPECT_GT(hb::stats().cached_bytes, 0u);
  hb::set_cache_enabled(false);
  EXPECT_EQ(hb::stats().mapped_bytes, 0u);
  {
    auto b = hb::allocate(2 * kMiB);
    static_cast<char*>(b.get())[0] = 1;
    EXPECT_EQ(hb::stats().mapped_bytes, 0u);
  }
  hb::set_cache_enabled(true);
  auto c = hb::allocate(2 * kMiB);
  EXPECT_EQ(hb::stats().mapped_bytes, 2 * kMiB);
}

TEST(HostBlocks, TensorStorageOfAFreedTensorIsReused) {
  SKIP_WITHOUT_CACHE();
  const float* first = nullptr;
  {
    Tensor a = Tensor::uninitialized({1, 256, 32, 32});  // 1 MiB
    first = a.data();
  }
  Tensor b({1, 256, 32, 32});  // zero-filled whatever the block held
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(b.data()[0], 0.f);
  EXPECT_EQ(b.data()[b.numel() - 1], 0.f);
}

}  // namespace
}  // namespace sdvsr
