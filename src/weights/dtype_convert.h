#pragma once
// Element conversions shared by the safetensors and PyTorch checkpoint readers.
// Inputs are little-endian and may be unaligned.
#include <cstdint>

#include "weights/safetensors.h"

namespace sdvsr {

// IEEE half / bfloat16 bit patterns to float32 (exact).
float half_to_float(uint16_t h);
float bfloat16_to_float(uint16_t b);

// `n` elements of `dtype` at `src` to float32 / int64 (floats to int64 throw).
void convert_to_float(DType dtype, const uint8_t* src, int64_t n, float* dst);
void convert_to_int64(DType dtype, const uint8_t* src, int64_t n, int64_t* dst);

}  // namespace sdvsr
