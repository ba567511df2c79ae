// The float16 / bfloat16 budgets of the CUDA backend's reduced-precision
// modes, checked here on the CPU: RoundingCpuBackend computes in float32 on
// operands rounded to 16 bits (and rounds convolution outputs, as cuDNN's
// 16-bit configs write them), which is the numerics those modes are designed to
// have, up to float32 summation order. Every golden module within its bound
// and the golden sequence above 40 dB PSNR, without a GPU.
#include <gtest/gtest.h>

#include "reduced_precision_checks.h"

namespace sdvsr::test {
namespace {

class ReducedPrecisionBudget : public ::testing::TestWithParam<ComputeDtype> {};

TEST_P(ReducedPrecisionBudget, ModulesWithinBound) {
  RoundingCpuBackend be(GetParam());
  check_stages(be);
  check_module_cases(be);
}

TEST_P(ReducedPrecisionBudget, SequenceFramesAbove40Db) {
  RoundingCpuBackend be(GetParam());
  check_sequence(be, "e2e_seq_a.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Emulated, ReducedPrecisionBudget, ::testing::ValuesIn(kReducedDtypes),
                         dtype_param_name);

}  // namespace
}  // namespace sdvsr::test
