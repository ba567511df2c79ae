// Convolution weights mapped from a safetensors file are cached in oneDNN's
// blocked layout and their mapped pages given back (each weight resident
// once); weights in ordinary memory are never dropped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "golden.h"
#include "runtime/backend.h"
#include "runtime/file_backed_memory.h"
#include "weights/safetensors.h"

namespace sdvsr {
namespace {

Tensor filled(const Shape& s, float seed) {
  Tensor t = Tensor::uninitialized(s);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = std::sin(seed * 0.37f + static_cast<float>(i) * 0.011f * seed);
  return t;
}

// Pages among those wholly inside [p, p + bytes) that this process has mapped
// in (bit 63 of /proc/self/pagemap; mincore would report the page cache).
size_t resident_pages(const void* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto lo = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (lo + page - 1) / page * page, last = (lo + bytes) / page * page;
  std::FILE* f = std::fopen("/proc/self/pagemap", "rb");
  EXPECT_NE(f, nullptr);
  if (!f) return 0;
  size_t n = 0;
  for (uintptr_t a = first; a < last; a += page) {
    uint64_t entry = 0;
    EXPECT_EQ(std::fseek(f, static_cast<long>(a / page * sizeof(entry)), SEEK_SET), 0);
    EXPECT_EQ(std::fread(&entry, sizeof(entry), 1, f), 1u);
    n += (entry >> 63) & 1;
  }
  std::fclose(f);
  return n;
}

TEST(FileBackedMemory, ConvWeightPagesAreGivenBackAndResultsStayTheSame) {
  const std::string dir = test::temp_dir("file_backed");
  const std::string path = dir + "/w.safetensors";
  // 64 -> 64 channels, 3x3: 147 KiB, many pages; oneDNN blocks this layout.
  const Tensor w_owned = filled({64, 64, 3, 3}, 1.5f);
  save_safetensors(path, {{"w", w_owned}});
  Backend& be = cpu_backend();
  const Tensor x = filled({1, 64, 9, 7}, 0.7f);
  Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  const Tensor reference = be.conv2d(x, w_owned, nullptr, p);  // ordinary memory: no cache

  {
    auto file = SafetensorsFile::open(path);
    const Tensor w = file->tensor("w");
    ASSERT_TRUE(w.is_borrowed());
    const size_t bytes = static_cast<size_t>(w.numel()) * sizeof(float);
    volatile float sink = 0;
    for (int64_t i = 0; i < w.numel(); i += 256) sink = sink + w[i];  // fault every page in
    ASSERT_GT(resident_pages(w.data(), bytes), 30u);

    const Tensor first = be.conv2d(x, w, nullptr, p);
    EXPECT_EQ(resident_pages(w.data(), bytes), 0u) << "mapped weight pages were not given back";
    const Tensor second = be.conv2d(x, w, nullptr, p);  // from the blocked copy
    ASSERT_EQ(first.numel(), reference.numel());
    for (int64_t i = 0; i < reference.numel(); ++i) {
      ASSERT_EQ(first[i], reference[i]) << i;
      ASSERT_EQ(second[i], reference[i]) << i;
    }
    EXPECT_EQ(resident_pages(w.data(), bytes), 0u);
    // The data is still there: dropped pages are read back from the file.
    for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(w[i], w_owned[i]) << i;
  }
  std::filesystem::remove_all(dir);
}

TEST(FileBackedMemory, OrdinaryMemoryIsNeverDropped) {
  std::vector<float> values(1 << 16);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) + 0.5f;
  EXPECT_FALSE(drop_file_backed_pages(values.data(), values.size() * sizeof(float)));
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(values[i], static_cast<float>(i) + 0.5f);

  // A range that starts inside a registered mapping but runs past its end is refused too.
  alignas(4096) static float fake[4096];
  register_file_mapping(fake, 1024 * sizeof(float));
  EXPECT_FALSE(drop_file_backed_pages(fake + 512, 1024 * sizeof(float)));
  unregister_file_mapping(fake);
  EXPECT_FALSE(drop_file_backed_pages(fake, 16));
}

}  // namespace
}  // namespace sdvsr
