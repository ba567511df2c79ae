#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang 14 (address + undefined
# sanitizers) into BUILD_DIR and runs each for SDVSR_FUZZ_SECONDS (default 30)
# from a temporary copy of its seed corpus. Fails if any target crashes;
# crashing inputs are kept in BUILD_DIR/artifacts/ (replay one with
# BUILD_DIR/<target>_fuzz FILE; SDVSR_FUZZ_VERBOSE=1 prints each refusal).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
SECONDS_PER_TARGET="${SDVSR_FUZZ_SECONDS:-30}"
CXX_FUZZ="${SDVSR_FUZZ_CXX:-clang++-14}"

start=$(date +%s)
cmake -S "$ROOT/fuzz" -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_FUZZ" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j 2
echo "fuzz build: $(( $(date +%s) - start ))s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$BUILD_DIR/artifacts"
read -r -a targets < <(tr ';' ' ' < "$BUILD_DIR/fuzz_targets.txt")
failed=()
for t in "${targets[@]}"; do
  cp -r "$ROOT/fuzz/corpus/$t" "$work/$t"
  dict=()
  if [ -f "$ROOT/fuzz/$t.dict" ]; then dict=(-dict="$ROOT/fuzz/$t.dict"); fi
  t0=$(date +%s)
  # The parsers' own caps bound memory; 2 GB RSS / malloc and 10 s per input are crashes.
  if TMPDIR="$work" "$BUILD_DIR/${t}_fuzz" "$work/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$BUILD_DIR/artifacts/$t-" -print_final_stats=1 "${dict[@]}" \
      >"$work/$t.log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    tail -n 60 "$work/$t.log"
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $t: $status in $(( $(date +%s) - t0 ))s ($runs inputs)"
done
echo "fuzz stage: $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]} (inputs in $BUILD_DIR/artifacts/)" >&2
  exit 1
fi
