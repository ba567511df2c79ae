#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the fuzz targets need.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# ocl-icd-opencl-dev: only recommended by libdnnl-dev, yet its CMake config requires OpenCL.
$SUDO apt-get install -y -qq --no-install-recommends \
  g++-12 cmake ninja-build pkg-config \
  libdnnl-dev ocl-icd-opencl-dev libomp-dev nlohmann-json3-dev libzip-dev zipcmp zipmerge ziptool libpng-dev \
  libjpeg62-turbo-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev \
  libcli11-dev libgtest-dev libgmock-dev \
  libcurl4-openssl-dev libssl-dev \
  clang-14 libclang-rt-14-dev >/dev/null  # clang + libFuzzer for scripts/ci-fuzz.sh
