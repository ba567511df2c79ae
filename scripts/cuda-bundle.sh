#!/usr/bin/env bash
# Packs a CUDA build's GPU programs (sdvsr_cuda_tests, sdvsr-bench,
# sdvsr-synth-model) with every shared library they load except the GPU ones
# (driver, cudart, cuBLAS, cuDNN: the GPU machine has its own), the C library
# and its loader included, so that they run on a lent GPU machine that has
# neither oneDNN nor FFmpeg nor this glibc. Optionally adds the golden files
# the CUDA golden test reads and the full-size config manifest the synthetic
# model is made from. The result goes in build-gpu-bundle/ (ignored by git,
# checked here to fit the device tool's carry limit of 64 MiB):
#   cmake --build build --target sdvsr_cuda_tests sdvsr-bench sdvsr-synth-model
#   scripts/cuda-bundle.sh build [--golden]
# and runs there as (bench/device-check.sh does all of it):
#   build-gpu-bundle/run.sh sdvsr_cuda_tests --gtest_filter='Cuda*'
#   build-gpu-bundle/run.sh sdvsr-synth-model --manifest build-gpu-bundle/golden/full-config-manifest.json --out DIR
#   build-gpu-bundle/run.sh sdvsr-bench --model DIR --device cuda --dtype bfloat16
# (run.sh with no program name, or with options first, runs sdvsr_cuda_tests.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:?usage: $0 BUILD_DIR [--golden]}"
OUT="$ROOT/build-gpu-bundle"
PROGRAMS=(sdvsr_cuda_tests sdvsr-bench sdvsr-synth-model)
LIMIT_BYTES=$((64 * 1024 * 1024))
for p in "${PROGRAMS[@]}"; do
  [ -x "$BUILD/$p" ] || { echo "cuda-bundle: $BUILD/$p is missing (cmake --build $BUILD --target ${PROGRAMS[*]})" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
for p in "${PROGRAMS[@]}"; do
  cp "$BUILD/$p" "$OUT/bin/"
  ldd "$BUILD/$p" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libcuda.so*|libcudart.so*|libcublas*|libcudnn*|libnvrtc*|libnvJitLink*) ;;  # from the GPU machine
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
tar -C "$OUT" -cf - lib | xz -6 -T2 > "$OUT/lib.tar.xz"
rm -rf "${OUT:?}/lib"
if [ "${2:-}" = "--golden" ]; then
  G="$ROOT/../shared/golden"
  # The tiny model and the one sequence CudaGolden reads (not the other cases).
  mkdir -p "$OUT/golden/tiny/cases"
  cp -r "$G/tiny/unet" "$G/tiny/controlnet" "$G/tiny/vae" "$G/tiny/scheduler" "$G/tiny/raft" \
    "$G/tiny/model_index.json" "$G/tiny/prompt_embeds.safetensors" "$OUT/golden/tiny/"
  cp "$G/tiny/cases/cases_index.json" "$G/tiny/cases/e2e_seq_a.safetensors" "$OUT/golden/tiny/cases/"
  # The full-size shapes sdvsr-synth-model builds the benchmark's model from.
  cp "$G/full-config-manifest.json" "$OUT/golden/"
fi
cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# run.sh [PROGRAM] [ARGS...]: runs a bundled program (sdvsr_cuda_tests when
# PROGRAM is not one of bin/) with its own loader and libraries plus the GPU
# machine's CUDA libraries (toolkit folders, pip's nvidia-* packages).
# SDVSR_BUNDLE_PRINT_PATHS=1 prints the library path instead of running (its
# first folder holds the bundled libraries and loader).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
program=sdvsr_cuda_tests
if [ $# -gt 0 ] && [ -f "$HERE/bin/$1" ]; then program="$1"; shift; fi
# The libraries are unpacked outside the bundle (so that the bundle stays small
# enough to carry), once per archive, atomically.
lib="${TMPDIR:-/tmp}/sdvsr-gpu-bundle-lib-$(cksum < "$HERE/lib.tar.xz" | cut -d' ' -f1)"
if [ ! -f "$lib/ld-linux-x86-64.so.2" ]; then
  tmp="$(mktemp -d "$lib.XXXXXX")"
  xz -dc "$HERE/lib.tar.xz" | tar -C "$tmp" -xf -
  if ! mv -T "$tmp/lib" "$lib" 2>/dev/null; then rm -rf "$tmp/lib"; fi
  rmdir "$tmp"
fi
paths="$lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do
  [ -d "$d" ] && paths="$paths:$d"
done
py_nvidia=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]) + "/nvidia")' 2>/dev/null || true)
if [ -n "$py_nvidia" ]; then
  for d in "$py_nvidia"/*/lib "$py_nvidia"/*/lib64; do [ -d "$d" ] && paths="$paths:$d"; done
fi
if [ "${SDVSR_BUNDLE_PRINT_PATHS:-0}" = 1 ]; then echo "$paths"; exit 0; fi
[ -d "$HERE/golden" ] && export SDVSR_GOLDEN_DIR="$HERE/golden"
exec "$lib/ld-linux-x86-64.so.2" --library-path "$paths" "$HERE/bin/$program" "$@"
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT"/* | sed "s|$ROOT/||"
# The limit holds for everything that travels: the bundle and the checkout's
# own files (tracked, and untracked ones git does not ignore).
bundle_bytes=$(du -sb "$OUT" | cut -f1)
tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total=$((bundle_bytes + ${tree_bytes:-0}))
echo "build-gpu-bundle: $((bundle_bytes / 1024 / 1024)) MiB; with the checkout $((total / 1024 / 1024)) MiB of the 64 MiB the device tool carries"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "cuda-bundle: bundle + checkout are $total bytes, over the carry limit of $LIMIT_BYTES" >&2
  exit 1
fi
