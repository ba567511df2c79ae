#!/usr/bin/env bash
# Packs a CUDA build's sdvsr_cuda_tests with every shared library it loads except
# the GPU ones (driver, cudart, cuBLAS, cuDNN: the GPU machine has its own), the
# C library and its loader included, so it runs on a lent GPU machine that has
# neither oneDNN nor FFmpeg nor this glibc. Optionally adds the golden files
# the CUDA golden test reads. The result goes in build-gpu-bundle/ (ignored by
# git, under the device tool's carry limit of 64 MiB):
#   scripts/cuda-bundle.sh build [--golden]
# and runs there as:
#   build-gpu-bundle/run.sh --gtest_filter='CudaOps.*'
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:?usage: $0 BUILD_DIR [--golden]}"
OUT="$ROOT/build-gpu-bundle"
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
cp "$BUILD/sdvsr_cuda_tests" "$OUT/bin/"
ldd "$BUILD/sdvsr_cuda_tests" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libcuda.so*|libcudart.so*|libcublas*|libcudnn*|libnvrtc*) ;;  # from the GPU machine
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
tar -C "$OUT" -cf - lib | xz -6 > "$OUT/lib.tar.xz"
rm -rf "$OUT/lib"
if [ "${2:-}" = "--golden" ]; then
  # The tiny model and the one sequence CudaGolden reads (not the other cases).
  G="$ROOT/../shared/golden/tiny"
  mkdir -p "$OUT/golden/tiny/cases"
  cp -r "$G/unet" "$G/controlnet" "$G/vae" "$G/scheduler" "$G/raft" "$G/model_index.json" \
    "$G/prompt_embeds.safetensors" "$OUT/golden/tiny/"
  cp "$G/cases/cases_index.json" "$G/cases/e2e_seq_a.safetensors" "$OUT/golden/tiny/cases/"
fi
cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs the bundled sdvsr_cuda_tests with its own loader and libraries plus the GPU
# machine's CUDA libraries (toolkit folders, pip's nvidia-* packages).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
[ -d "$HERE/lib" ] || xz -dc "$HERE/lib.tar.xz" | tar -C "$HERE" -xf -
paths="$HERE/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do
  [ -d "$d" ] && paths="$paths:$d"
done
py_nvidia=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]) + "/nvidia")' 2>/dev/null || true)
if [ -n "$py_nvidia" ]; then
  for d in "$py_nvidia"/*/lib; do paths="$paths:$d"; done
fi
[ -d "$HERE/golden" ] && export SDVSR_GOLDEN_DIR="$HERE/golden"
exec "$HERE/lib/ld-linux-x86-64.so.2" --library-path "$paths" "$HERE/bin/sdvsr_cuda_tests" "$@"
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT"/* | sed "s|$ROOT/||"
