#!/usr/bin/env bash
# bench/device-check.sh: the one check to run on a lent H100/H200 machine, all
# within 8 minutes: the machine's facts, the GPU tests, the benchmark on the
# tiny golden model, a full-size synthetic model, and the benchmark at 720p
# output (LR 180x320) in bfloat16 and float16, 1080p output (LR 272x480, the
# CLI's padding of 270x480) for the memory figure, float32 and bfloat16 with
# the CUDA graphs off (what the graphs bring) if time is left; the summary,
# the issue's targets and the tables are printed last.
#
# The GPU machine cannot build this project: it has the CUDA toolkit, CMake
# and ninja, but no oneDNN, FFmpeg, GoogleTest or nlohmann-json, no apt and no
# network. So the programs are built HERE, on the development machine, and
# carried there in build-gpu-bundle/ (with their libraries, loader, the tiny
# golden model and the full-size config manifest; under the 64 MiB carry limit):
#
#   1. here:   cmake --build build --target sdvsr_cuda_tests sdvsr-bench sdvsr-synth-model && scripts/cuda-bundle.sh build --golden
#   2. device: the device tool's run with carry ["build-gpu-bundle"] and command `bench/device-check.sh`
#
# Every step runs under its own timeout and the script keeps going when one
# fails; it prints one line per step and exits 1 if any required step failed.
# Without a GPU (or without the bundle) every step fails at once with one line
# saying why. Logs and tables also go to $OUT when the device tool sets it.
#   SDVSR_CHECK_SECONDS  the whole check's budget (default 480)
#   SDVSR_CHECK_MODEL    where the synthetic model goes (default /tmp/fullmodel)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUNDLE="$ROOT/build-gpu-bundle"
RUN="$BUNDLE/run.sh"
BUDGET="${SDVSR_CHECK_SECONDS:-480}"
MODEL="${SDVSR_CHECK_MODEL:-/tmp/fullmodel}"
MANIFEST="$BUNDLE/golden/full-config-manifest.json"
REPORT_RESERVE=10  # seconds kept for the summary and tables
WORK="$(mktemp -d /tmp/sdvsr-device-check.XXXXXX)"
LOG="$WORK/device-check.log"
TABLES="$WORK/tables.txt"
: > "$LOG"
: > "$TABLES"

failed=0
summary=()
bench_tables=()

# Why nothing can run ("" when the GPU and the bundle are there).
blocker=""
[ -f "$RUN" ] && [ ! -x "$RUN" ] && chmod +x "$RUN" 2> /dev/null  # should a copy have lost the mode
if [ ! -x "$RUN" ]; then
  blocker="no bundle: $RUN is missing (build it on the development machine: see this script's header)"
elif ! command -v nvidia-smi > /dev/null 2>&1; then
  blocker="no GPU: nvidia-smi is not installed"
elif ! nvidia-smi -L 2> /dev/null | grep -q '^GPU '; then
  blocker="no GPU: nvidia-smi lists no device"
fi

report() {  # NAME STATUS DETAIL
  local line
  line="$(printf '%-16s %-8s %s' "$1" "$2" "$3")"
  summary+=("$line")
  echo "device-check: $line"
}

# step NAME TIMEOUT_S required|optional COMMAND...: runs COMMAND with its
# output in the log (and on the terminal), under min(TIMEOUT_S, what is left
# of the budget). An optional step with under a minute left is skipped.
step() {
  local name="$1" limit="$2" need="$3"
  shift 3
  if [ -n "$blocker" ]; then
    report "$name" FAILED "$blocker"
    failed=1
    return 1
  fi
  local left=$((BUDGET - SECONDS - REPORT_RESERVE))
  if [ "$need" = optional ] && [ "$left" -lt 60 ]; then
    report "$name" SKIPPED "only ${left}s of the budget left"
    return 1
  fi
  if [ "$left" -lt 5 ]; then
    report "$name" FAILED "no time left in the ${BUDGET}s budget"
    failed=1
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo "==== $name (timeout ${limit}s): $*" | tee -a "$LOG"
  local start=$SECONDS rc out="$WORK/$name.log"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  cat "$out" >> "$LOG"
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    report "$name" ok "${took}s"
    return 0
  fi
  local last
  last="$(grep -v '^\s*$' "$out" | tail -1 | cut -c1-160)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    report "$name" FAILED "timed out after ${limit}s${last:+: $last}"
  else
    report "$name" FAILED "exit $rc after ${took}s${last:+: $last}"
  fi
  [ "$need" = required ] && failed=1
  return 1
}

# shellcheck disable=SC2317  # run through bash -c (export -f)
facts() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(uname -srm); cpus: $(nproc)"
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  command -v nvcc > /dev/null && nvcc --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 || true
  # Which CUDA libraries the bundled benchmark loads, through the bundle's own
  # loader and library path (cuDNN: the toolkit's or pip's nvidia-cudnn).
  local paths loader d
  paths="$(SDVSR_BUNDLE_PRINT_PATHS=1 "$RUN")" || return 1
  loader="${paths%%:*}/ld-linux-x86-64.so.2"
  echo "library path: $paths"
  "$loader" --library-path "$paths" --list "$BUNDLE/bin/sdvsr-bench" |
    grep -E 'cudnn|cublas|cudart|not found'
  echo "cuDNN on the library path (first one wins):"
  for d in ${paths//:/ }; do
    [ -e "$d/libcudnn.so.9" ] && echo "  $d/libcudnn.so.9 -> $(readlink -f "$d/libcudnn.so.9")"
  done
  ! "$loader" --library-path "$paths" --list "$BUNDLE/bin/sdvsr-bench" | grep -q 'not found'
}

# The GPU tests must run, not skip: a skip here means the bundle saw no device.
# shellcheck disable=SC2317
gpu_tests() {
  local out
  out="$("$RUN" sdvsr_cuda_tests --gtest_filter='Cuda*' 2>&1)"
  local rc=$?
  echo "$out"
  [ "$rc" -eq 0 ] || return "$rc"
  if echo "$out" | grep -q '^\[  SKIPPED \]'; then
    echo "GPU tests were skipped although nvidia-smi lists a GPU: $(echo "$out" | grep -m1 -A1 'Skipped$' | tail -1)"
    return 1
  fi
}

# shellcheck disable=SC2317
synth_model() {
  if [ -f "$MODEL/.device-check-complete" ]; then
    echo "reusing $MODEL (made by an earlier run on this machine)"
    return 0
  fi
  rm -rf "${MODEL:?}"
  "$RUN" sdvsr-synth-model --manifest "$MANIFEST" --out "$MODEL" && touch "$MODEL/.device-check-complete" &&
    du -sh "$MODEL"
}

# bench NAME TIMEOUT required|optional ARGS...: the benchmark on the synthetic
# model; its table (stdout) is kept for the end.
bench() {
  local name="$1" limit="$2" need="$3"
  shift 3
  if [ -z "$blocker" ] && [ ! -f "$MODEL/.device-check-complete" ]; then
    if [ "$need" = required ]; then
      report "$name" FAILED "no model ($MODEL was not made)"
      failed=1
    else
      report "$name" SKIPPED "no model ($MODEL was not made)"
    fi
    return 1
  fi
  local table="$WORK/$name.txt" mem="$WORK/$name.mem" sampler="" rc
  bench_tables+=("$name")
  # The whole device's memory in use, sampled while the benchmark runs (the
  # table's peak_mem_mb counts the backend's pool only).
  if [ -z "$blocker" ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$mem" 2> /dev/null &
    sampler=$!
  fi
  # stdout (the table) to its own file as rows finish; stderr to the log.
  step "$name" "$limit" "$need" bash -c 'exec "$@" > "'"$table"'"' _ \
    "$RUN" sdvsr-bench --model "$MODEL" --device cuda "$@"
  rc=$?
  if [ -n "$sampler" ]; then
    kill "$sampler" 2> /dev/null
    wait "$sampler" 2> /dev/null
    local most
    most="$(grep -E '^[0-9]+$' "$mem" | sort -n | tail -1)"
    [ -s "$table" ] && echo "# nvidia-smi memory.used, the most seen during the run: ${most:-n/a} MiB (whole device: CUDA context and library workspaces included)" >> "$table"
  fi
  return "$rc"
}

# The issue's targets, read off the tables (informational: they do not fail the check).
targets() {
  local name f
  for name in bench_bf16_720p bench_fp16_720p bench_fp32_720p bench_bf16_720p_no_graphs; do
    f="$WORK/$name.txt"
    [ -s "$f" ] || continue
    awk -v n="$name" '$1 == "frame" || $1 == "frame_flow_ahead" { printf "%-16s %s %.1f ms (target <= 45 ms in bf16 or fp16)\n", n, $1, $5 }
                      $1 == "unet_step" { printf "%-16s unet_step peak_ratio %.3f (target >= 0.55)\n", n, $7 }' "$f"
  done
  f="$WORK/bench_bf16_1080p.txt"
  [ -s "$f" ] && awk '$1 == "frame" { printf "%-16s frame peak_mem_mb %.0f MiB (target: within 24 GB = 24576 MiB)\n", "bench_bf16_1080p", $8 }' "$f"
  return 0
}

# The steps that are shell functions run in a child bash under timeout.
export -f facts gpu_tests synth_model
export RUN BUNDLE MODEL MANIFEST
step facts 30 required bash -c facts
step gpu_tests 120 required bash -c gpu_tests
# The benchmark on the tiny golden model first: quick, and it tells a problem
# of the program from one of the full size.
step bench_tiny 45 required "$RUN" sdvsr-bench --model "$BUNDLE/golden/tiny" --device cuda \
  --dtype bfloat16 --sizes 32x32 --repeats 1 --gemm-size 2048
step synth_model 150 required bash -c synth_model
bench bench_bf16_720p 100 required --dtype bfloat16 --sizes 180x320 --repeats 3 \
  --components unet_step,controlnet_step,raft,vae_encode_features,vae_decode,denoise_step,frame,frame_flow_ahead
bench bench_fp16_720p 100 required --dtype float16 --sizes 180x320 --repeats 3
bench bench_bf16_1080p 80 required --dtype bfloat16 --sizes 272x480 --components frame --repeats 2
bench bench_fp32_720p 100 optional --dtype float32 --sizes 180x320 --repeats 3
# What the CUDA graphs bring: the same step and frame launched op by op.
bench bench_bf16_720p_no_graphs 60 optional --dtype bfloat16 --sizes 180x320 --repeats 2 \
  --cuda-graphs off --components denoise_step,frame

# ---- the report: steps, then the tables ----
{
  echo
  echo "==== device-check summary ($SECONDS s of ${BUDGET}s)"
  for line in "${summary[@]}"; do echo "$line"; done
  echo
  echo "==== targets"
  targets
  for name in "${bench_tables[@]}"; do
    [ -s "$WORK/$name.txt" ] || continue
    echo
    echo "==== $name"
    cat "$WORK/$name.txt"
  done
} > "$TABLES"
if [ -n "$blocker" ]; then
  echo "device-check: FAILED: $blocker"
else
  cat "$TABLES"
fi
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$LOG" "$TABLES" "$OUT/" 2> /dev/null || true
fi
if [ -n "$blocker" ]; then
  rm -rf "$WORK"
else
  echo "device-check: logs in $WORK${OUT:+ and $OUT}"
fi
exit "$failed"
