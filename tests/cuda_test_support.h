#pragma once
// What the CUDA test files share: the visible skip without a CUDA build or device.
#include <gtest/gtest.h>

#include "runtime/device_backend.h"

#define REQUIRE_CUDA()                                                                    \
  do {                                                                                    \
    if (!::sdvsr::cuda_built())                                                           \
      GTEST_SKIP() << "built without CUDA (no toolkit at configure)";                     \
    if (::sdvsr::cuda_device_count() == 0)                                                \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount)";                              \
  } while (0)
