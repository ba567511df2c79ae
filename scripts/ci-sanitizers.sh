#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer
# (RelWithDebInfo, -DSDVSR_SANITIZE=ON) in BUILD_DIR and runs the CPU unit
# tests under them. The golden/end-to-end model tests are left out: they run
# the whole model and take too long under the sanitizers (the plain ctest
# stage runs them).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="$1"
# Any report fails the test; set before the build, since test discovery runs the binary.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"

start=$(date +%s)
# -O1 -g1 keeps this second full build affordable on 2 cores.
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDVSR_SANITIZE=ON -DSDVSR_CUDA=OFF \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
cmake --build "$BUILD_DIR" -j 2 --target sdvsr_tests
echo "sanitizer build: $(( $(date +%s) - start ))s"

t0=$(date +%s)
# Test names holding Golden, E2E, FullModel or ReducedPrecisionBudget (the
# golden modules and sequences with 16-bit-rounded operands) run whole models, and the Cli*
# and BenchProgram tests run whole programs end to end (the plain ctest stage
# runs them all); the slow label (and its placeholder when sdvsr_slow_tests is
# not built) is the full-size model; CpuBackendCappedAtAvx2 runs the CPU tests
# again, golden models included, under oneDNN's AVX2 kernels.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 --timeout 600 \
  -E 'Golden|E2E|FullModel|ReducedPrecisionBudget|_NOT_BUILT|^Cli[A-Z]|BenchProgram|CappedAtAvx2' -LE slow
echo "sanitizer tests: $(( $(date +%s) - t0 ))s"
echo "sanitizer stage: $(( $(date +%s) - start ))s"
