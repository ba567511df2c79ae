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
//   is ignored and rewritten;
// - else, when the folder has no text encoder because the download skipped it
//   (a hub model whose embedding was cached), the cache entry of
//   `text_encoder_sha256`.
Tensor prompt_embeds_for(const std::string& model_folder, Backend& be,
                         const std::string& text_encoder_sha256 = "");

// <cache>/prompt_embeds/<sha256>.safetensors, or empty without a cache folder.
std::string prompt_embeds_cache_path(const std::string& text_encoder_sha256);
// True when that file holds a readable [1, L, D] `prompt_embeds` tensor: the
// hub download then leaves text_encoder/ and tokenizer/ out.
bool prompt_embeds_cached(const std::string& text_encoder_sha256);

// The text encoder's weight sha256 of a hub snapshot, remembered in the cache
// folder so an offline run of a snapshot downloaded without its text encoder
// still finds the cached embedding. Empty when unknown.
void remember_text_encoder_sha256(const std::string& snapshot_commit,
                                  const std::string& text_encoder_sha256);
std::string remembered_text_encoder_sha256(const std::string& snapshot_commit);

}  // namespace sdvsr
