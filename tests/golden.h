#pragma once
// Golden-file access and closeness checks shared by the tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/model_bundle.h"
#include "runtime/backend.h"
#include "runtime/tensor.h"
#include "weights/safetensors.h"

namespace sdvsr::test {

// ../shared/golden beside the repository. Missing => the test FAILS (never skips).
std::string golden_dir();
std::string golden_path(const std::string& relative);
std::shared_ptr<SafetensorsFile> open_case(const std::string& relative_to_tiny_cases);
// An end-to-end golden case's LR frames and injected initial latents, frame by
// frame ("frame{k}.lr", "frame{k}.init_latents"; e.g. e2e_seq_a.safetensors).
struct GoldenSequence {
  std::vector<Tensor> lr, noise;
};
GoldenSequence golden_sequence(const std::string& relative_to_tiny_cases);
// The tiny golden model (golden/tiny: every component, random weights) on `be`.
std::unique_ptr<ModelBundle> load_tiny_models(Backend& be);
// A fresh, empty temporary folder removed at process exit.
std::string temp_dir(const std::string& tag);

struct Closeness {
  double rel_l2 = 0;       // ||out - ref|| / ||ref||
  double max_abs = 0;      // max |out - ref|
  double max_ref = 0;      // max |ref|
  bool shapes_equal = true;
};
Closeness compare(const Tensor& out, const Tensor& ref);

// The engine issue's bounds: rel L2 <= rel and max abs <= max_frac * max|ref|.
::testing::AssertionResult IsClose(const char* out_expr, const char* ref_expr,
                                   const Tensor& out, const Tensor& ref);
::testing::AssertionResult IsCloseTol(const char* out_expr, const char* ref_expr, const char*,
                                      const char*, const Tensor& out, const Tensor& ref,
                                      double rel, double max_frac);

}  // namespace sdvsr::test

#define EXPECT_CLOSE(out, ref) EXPECT_PRED_FORMAT2(::sdvsr::test::IsClose, out, ref)
#define EXPECT_CLOSE_TOL(out, ref, rel, max_frac) \
  EXPECT_PRED_FORMAT4(::sdvsr::test::IsCloseTol, out, ref, rel, max_frac)
