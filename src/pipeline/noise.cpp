#include "pipeline/noise.h"

#include <cmath>

namespace sdvsr {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;    // round multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule increments

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

inline PhiloxCounter philox_round(const PhiloxCounter& c, const PhiloxKey& k) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kMul0, c[0], hi0, lo0);
  mulhilo(kMul1, c[2], hi1, lo1);
  return {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
}

// Box-Muller of two words: the (cos, sin) pair, rounded to float.
inline void box_muller(uint32_t wa, uint32_t wb, float& first, float& second) {
  constexpr double kTwoPow32Inv = 1.0 / 4294967296.0;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double u1 = (static_cast<double>(wa) + 0.5) * kTwoPow32Inv;
  const double u2 = static_cast<double>(wb) * kTwoPow32Inv;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = kTwoPi * u2;
  first = static_cast<float>(r * std::cos(a));
  second = static_cast<float>(r * std::sin(a));
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  counter = philox_round(counter, key);
  for (int r = 1; r < 10; ++r) {
    key[0] += kWeyl0;
    key[1] += kWeyl1;
    counter = philox_round(counter, key);
  }
  return counter;
}

void gaussian_fill(float* out, int64_t count, uint64_t first, uint64_t seed, uint64_t stream) {
  if (count <= 0) return;
  const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const uint32_t s_lo = static_cast<uint32_t>(stream), s_hi = static_cast<uint32_t>(stream >> 32);
  const uint64_t end = first + static_cast<uint64_t>(count);
  const int64_t first_block = static_cast<int64_t>(first / 4);
  const int64_t last_block = static_cast<int64_t>((end - 1) / 4);
#pragma omp parallel for schedule(static) if (last_block - first_block > 4096)
  for (int64_t b = first_block; b <= last_block; ++b) {
    const uint64_t ub = static_cast<uint64_t>(b);
    const PhiloxCounter w =
        philox4x32_10({static_cast<uint32_t>(ub), static_cast<uint32_t>(ub >> 32), s_lo, s_hi}, key);
    float z[4];
    box_muller(w[0], w[1], z[0], z[1]);
    box_muller(w[2], w[3], z[2], z[3]);
    for (uint64_t j = 0; j < 4; ++j) {
      const uint64_t e = ub * 4 + j;  // element index within the stream
      if (e >= first && e < end) out[e - first] = z[j];
    }
  }
}

Tensor gaussian_noise(const Shape& shape, uint64_t seed, uint64_t stream) {
  Tensor t = Tensor::uninitialized(shape);
  gaussian_fill(t.data(), t.numel(), 0, seed, stream);
  return t;
}

}  // namespace sdvsr
