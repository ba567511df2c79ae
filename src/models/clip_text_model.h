#pragma once
// transformers 4.37.2 CLIPTextModel (the text encoder of the pipeline's empty
// prompt): token + position embeddings, pre-LN encoder layers with causal
// self-attention, final layer norm. Built from the folder's config.json; the
// text projection is not part of CLIPTextModel and is not used.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace sdvsr {

class ModelConfig;
class WeightStore;

// CLIPTextConfig fields the forward pass needs (transformers' defaults).
struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  Activation hidden_act = Activation::kQuickGELU;
  float layer_norm_eps = 1e-5f;

  // A CLIPTextConfig, or the text_config of a full CLIPConfig.
  static ClipTextConfig from_config(const ModelConfig& config);
};

class ClipTextModel {
 public:
  // <folder>/config.json and <folder>/model.safetensors (else pytorch_model.bin).
  static ClipTextModel load(const std::string& folder);
  // The weight file load() reads; throws naming the folder when there is none.
  static std::string weights_path(const std::string& folder);

  // Fetches every parameter (transformers' text_model.* keys) and checks none is left.
  ClipTextModel(ClipTextConfig config, WeightStore& weights);

  const ClipTextConfig& config() const { return config_; }

  // One token sequence (length <= max_position_embeddings) -> last_hidden_state
  // [1, L, hidden]. `hidden_states`, if given, receives the embeddings and the
  // output of every encoder layer (before the final layer norm), like
  // transformers' output_hidden_states.
  Tensor forward(const std::vector<int64_t>& input_ids, Backend& be,
                 std::vector<Tensor>* hidden_states = nullptr) const;

 private:
  struct Linear {
    Tensor weight, bias;
  };
  struct Norm {
    Tensor weight, bias;
  };
  struct Layer {
    Norm layer_norm1, layer_norm2;
    Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  };

  ClipTextConfig config_;
  Tensor token_embedding_, position_embedding_;
  std::vector<Layer> layers_;
  Norm final_layer_norm_;
};

}  // namespace sdvsr
