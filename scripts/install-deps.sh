#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the fuzz targets need.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  g++-12 cmake ninja-build pkg-config \
  libdnnl-dev libomp-dev nlohmann-json3-dev libzip-dev zipcmp zipmerge ziptool libpng-dev \
  libcli11-dev libgtest-dev libgmock-dev \
  clang-14 libclang-rt-14-dev >/dev/null  # clang + libFuzzer for scripts/ci-fuzz.sh
