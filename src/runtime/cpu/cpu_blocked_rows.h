#pragma once
// Writing an [N, C, positions] tensor straight into the layout a oneDNN
// convolution reads (nChw<block>c; block 1: plain NCHW, block C: channels last,
// NHWC), as the ops that make a convolution's input do (a norm, an upsampling):
// tiles of positions times one channel block are contiguous there, so each
// tile is filled channel by channel while it stays in cache.
#include <algorithm>
#include <cstdint>

namespace sdvsr::cpu {

// fill(image, channel, i0, i1, out, stride) writes positions [i0, i1) of that
// channel at out[0], out[stride], ...; finish(tile, count) then runs on each
// tile's `count` contiguous floats (an activation, say). C % block == 0.
template <class Fill, class Finish>
void write_channel_blocks(int64_t n, int64_t c, int64_t positions, int64_t block, float* dst,
                          const Fill& fill, const Finish& finish) {
  // Channels last (block == c) gets fewer positions a tile.
  const int64_t tile = block <= 16 ? 512 : std::max<int64_t>(16, 16384 / block);
  const int64_t blocks = c / block, tiles = (positions + tile - 1) / tile;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t nb = 0; nb < n * blocks; ++nb) {
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t image = nb / blocks, c0 = (nb % blocks) * block;
      const int64_t i0 = t * tile, i1 = std::min(positions, i0 + tile);
      float* out = dst + (nb * positions + i0) * block;
      for (int64_t k = 0; k < block; ++k) fill(image, c0 + k, i0, i1, out + k, block);
      finish(out, (i1 - i0) * block);
    }
  }
}

}  // namespace sdvsr::cpu
