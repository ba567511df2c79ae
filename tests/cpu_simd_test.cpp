// Kernels of our own built twice (cpu_simd.h): the x86-64-v3 build must give
// exactly the baseline build's bits, and both must agree with the reference
// path they replace.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "models/raft_corr.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_simd.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::random_tensor;
using test::SameBits;

class CpuSimd : public ::testing::Test {
 protected:
  void TearDown() override { cpu::set_wide_simd(true); }
};

struct LookupCase {
  int64_t n, c, h, w;
  int levels, radius;
};

// RAFT's correlation lookup without the volume (raft_corr_lookup_direct): four
// dot products at a time, eight lanes each. Channel counts with and without a
// tail past the last 8, windows whose tap count is not a multiple of 4,
// centroids outside the map and a height-1 last level.
TEST_F(CpuSimd, RaftLookupSameBitsInBothBuilds) {
  Backend& be = cpu_backend();
  const LookupCase cases[] = {{2, 37, 12, 20, 3, 4}, {1, 256, 9, 14, 4, 3}, {1, 5, 8, 8, 2, 1}};
  for (const LookupCase& k : cases) {
    SCOPED_TRACE("C=" + std::to_string(k.c) + " radius=" + std::to_string(k.radius));
    const Tensor fmap1 = random_tensor({k.n, k.c, k.h, k.w}, 31);
    const Tensor fmap2 = random_tensor({k.n, k.c, k.h, k.w}, 32);
    const Tensor coords = random_tensor({k.n, 2, k.h, k.w}, 33, -5.f, float(k.w) + 5.f);
    raft::CorrPyramid volume(be, fmap1, fmap2, k.levels, k.radius, int64_t{1} << 40);
    raft::CorrPyramid direct(be, fmap1, fmap2, k.levels, k.radius, 0);
    ASSERT_TRUE(volume.materialised());
    ASSERT_FALSE(direct.materialised());
    const Tensor reference = volume.lookup(coords);

    cpu::set_wide_simd(false);
    const long long wide_before = cpu::wide_simd_runs();
    const Tensor baseline = direct.lookup(coords);
    EXPECT_EQ(cpu::wide_simd_runs(), wide_before) << "switched off, yet the wide build ran";
    ASSERT_EQ(baseline.shape(), reference.shape());
    double worst = 0;
    for (int64_t i = 0; i < reference.numel(); ++i)
      worst = std::max(worst, double(std::abs(baseline[i] - reference[i])));
    EXPECT_LT(worst, 2e-6);

    cpu::set_wide_simd(true);
    if (!cpu::wide_simd_supported()) continue;
    const Tensor wide = direct.lookup(coords);
    EXPECT_GT(cpu::wide_simd_runs(), wide_before) << "the wide build did not run";
    EXPECT_TRUE(SameBits(wide, baseline));
  }
  if (!cpu::wide_simd_supported())
    GTEST_SKIP() << "this CPU has no x86-64-v3: only the baseline build was checked";
}

TEST_F(CpuSimd, SwitchReportsThePreviousSetting) {
  EXPECT_TRUE(cpu::set_wide_simd(false));
  EXPECT_FALSE(cpu::wide_simd());
  EXPECT_FALSE(cpu::set_wide_simd(true));
  EXPECT_EQ(cpu::wide_simd(), cpu::wide_simd_supported());
}

}  // namespace
}  // namespace sdvsr
