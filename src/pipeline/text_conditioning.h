#pragma once
// The pipeline's prompt embeddings: upstream encodes the empty prompt "" with the
// CLIP text encoder (guidance_scale 0, no negative prompt). A model folder may
// ship them precomputed; otherwise they are computed once and cached on disk.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace sdvsr {

// The CLIPTokenizer ids of "" padded to max_length: [BOS, EOS, PAD, ...].
// Special tokens come from <tokenizer_folder>/special_tokens_map.json, else
// tokenizer_config.json, else CLIPTokenizer's defaults; ids from vocab.json
// (or the added tokens). The length is tokenizer_config's model_max_length,
// else `max_positions`.
std::vector<int64_t> empty_prompt_ids(const std::string& tokenizer_folder, int64_t max_positions);

// Where computed embeddings are cached: $SDVSR_CACHE, else $XDG_CACHE_HOME/sdvsr,
// else $HOME/.cache/sdvsr; empty when none of them is set.
std::string sdvsr_cache_dir();

// prompt_embeds [1, L, D] for <model_folder>:
// - <model_folder>/prompt_embeds.safetensors (tensor `prompt_embeds`) when present;
// - else <model_folder>/text_encoder run on empty_prompt_ids(<model_folder>/tokenizer),
//   cached as <cache>/prompt_embeds/<sha256 of the text-encoder weight file>.safetensors.
//   A cache file that is unreadable or was made from another config or other ids
//   is ignored and rewritten.
Tensor prompt_embeds_for(const std::string& model_folder, Backend& be);

}  // namespace sdvsr
