#include "weights/dtype_convert.h"

#include <cstring>
#include <stdexcept>

namespace sdvsr {

namespace {
template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // unaligned-safe; the host is little-endian like the files
  return v;
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T, typename Out>
void widen(const uint8_t* src, int64_t n, Out* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Out>(load<T>(src + i * sizeof(T)));
}
}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    // Subnormal: normalise the mantissa.
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    man &= 0x3ffu;
    return bits_to_float(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (man << 13));
  }
  return bits_to_float(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float bfloat16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

void convert_to_float(DType dtype, const uint8_t* src, int64_t n, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load<uint16_t>(src + 2 * i));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bfloat16_to_float(load<uint16_t>(src + 2 * i));
      return;
    case DType::kF64: widen<double>(src, n, dst); return;
    case DType::kI64: widen<int64_t>(src, n, dst); return;
    case DType::kI32: widen<int32_t>(src, n, dst); return;
    case DType::kI16: widen<int16_t>(src, n, dst); return;
    case DType::kI8: widen<int8_t>(src, n, dst); return;
    case DType::kU8: widen<uint8_t>(src, n, dst); return;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return;
  }
}

void convert_to_int64(DType dtype, const uint8_t* src, int64_t n, int64_t* dst) {
  switch (dtype) {
    case DType::kI64: widen<int64_t>(src, n, dst); return;
    case DType::kI32: widen<int32_t>(src, n, dst); return;
    case DType::kI16: widen<int16_t>(src, n, dst); return;
    case DType::kI8: widen<int8_t>(src, n, dst); return;
    case DType::kU8: widen<uint8_t>(src, n, dst); return;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1 : 0;
      return;
    default:
      throw std::invalid_argument(std::string("convert_to_int64: ") + dtype_name(dtype) +
                                  " is not an integer dtype");
  }
}

}  // namespace sdvsr
