#pragma once
// Attention on tensor cores for the float16 / bfloat16 backends
// (cuda_attention_mma.cu); the float32 backend and causal masks keep the
// scalar kernel of cuda_attention.cu.
#include <cstdint>

#include "runtime/cuda/cuda_context.h"

namespace sdvsr::cuda {

// Heads of up to this many channels run on tensor cores; keys are taken in
// tiles of kMmaKeyTile, each tile's probabilities relative to the running
// maximum of the keys so far (which the 16-bit rounding of P depends on).
constexpr int kMmaMaxHeadSize = 128;
constexpr int kMmaKeyTile = 64;

// Whether attention_mma takes this attention: a device with mma.sync (sm_80
// or later), no causal mask, and heads of at most 128 channels.
bool attention_mma_fits(const Context& c, int64_t head_size, bool causal);

// out [batch, lq, width] (float32) = softmax(scale * q k^T) v per head, from
// q [batch, lq, width], k and v [batch, lk, width] in the context's 16-bit
// dtype on the device, width = heads * head_size, lk >= 1.
void attention_mma(Context& c, const void* q, const void* k, const void* v, float* out,
                   int64_t batch, int64_t lq, int64_t lk, int64_t width, int64_t heads,
                   int64_t head_size, float scale);

// Launches of the tensor-core kernel so far, in this process (for tests).
int64_t attention_mma_launches();

}  // namespace sdvsr::cuda
