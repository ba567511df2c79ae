#pragma once
// The default initial latent noise: a counter-based generator, so the noise of
// any element can be computed on its own (no stream state, no dependence on the
// thread count or on the order in which elements are produced).
//
// Generator: Philox4x32-10 (Salmon et al., SC'11; the Random123 constants and
// round function). One call maps a 128-bit counter and a 64-bit key to four
// 32-bit words.
//
// Element i (row-major index into `shape`) of gaussian_noise(shape, seed, stream):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (b & 0xffffffff, b >> 32, stream & 0xffffffff, stream >> 32), b = i / 4
//   (w0, w1, w2, w3) = philox4x32_10(counter, key)
//   the pair (w0, w1) gives elements 4b and 4b+1, the pair (w2, w3) elements 4b+2 and 4b+3,
//   by Box-Muller in double precision:
//     u1 = (wa + 0.5) / 2^32   (in (0, 1): the logarithm is finite)
//     u2 = wb / 2^32           (in [0, 1))
//     r = sqrt(-2 ln u1), a = 2 pi u2;  first = r cos a, second = r sin a;
//   each rounded to float32.
// So an element's value depends only on (seed, stream, i): a tensor's leading
// elements do not change when the shape grows. The pipeline uses stream = frame index.
#include <array>
#include <cstdint>

#include "runtime/tensor.h"

namespace sdvsr {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// Ten rounds of Philox4x32 (the Random123 reference's philox4x32 with R = 10).
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// N(0, 1) float32 noise of the given shape, element values as documented above.
Tensor gaussian_noise(const Shape& shape, uint64_t seed, uint64_t stream);

// The same sequence written piecewise: out[j] = element (first + j) of the
// stream, for j < count (for filling tensors too large to hold twice).
void gaussian_fill(float* out, int64_t count, uint64_t first, uint64_t seed, uint64_t stream);

}  // namespace sdvsr
