#include "models/clip_text_model.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "weights/model_config.h"
#include "weights/torch_checkpoint.h"
#include "weights/weight_store.h"

namespace sdvsr {

namespace {

// transformers' ACT2FN names this model can run.
Activation activation_named(const ModelConfig& config, const std::string& name) {
  if (name == "gelu" || name == "gelu_python") return Activation::kGELU;  // exact erf
  if (name == "quick_gelu") return Activation::kQuickGELU;                // x * sigmoid(1.702 x)
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return Activation::kGELUTanh;
  if (name == "relu") return Activation::kReLU;
  if (name == "silu" || name == "swish") return Activation::kSiLU;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "tanh") return Activation::kTanh;
  if (name == "linear") return Activation::kNone;
  config.fail("hidden_act", "'" + name + "' is not supported");
}

}  // namespace

ClipTextConfig ClipTextConfig::from_config(const ModelConfig& config) {
  // CLIPTextConfig.from_pretrained on a full CLIPConfig reads its text_config.
  if (config.get_string("model_type", "") == "clip" && config.has("text_config"))
    return from_config(
        ModelConfig::from_json(config.json().at("text_config"), config.path() + " text_config"));
  ClipTextConfig c;
  c.vocab_size = config.get_int("vocab_size", c.vocab_size);
  c.hidden_size = config.get_int("hidden_size", c.hidden_size);
  c.intermediate_size = config.get_int("intermediate_size", c.intermediate_size);
  c.num_hidden_layers = config.get_int("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.max_position_embeddings = config.get_int("max_position_embeddings", c.max_position_embeddings);
  c.hidden_act = activation_named(config, config.get_string("hidden_act", "quick_gelu"));
  c.layer_norm_eps = static_cast<float>(config.get_float("layer_norm_eps", 1e-5));
  if (c.vocab_size < 1) config.fail("vocab_size", "must be positive");
  if (c.hidden_size < 1) config.fail("hidden_size", "must be positive");
  if (c.intermediate_size < 1) config.fail("intermediate_size", "must be positive");
  if (c.num_hidden_layers < 0) config.fail("num_hidden_layers", "must not be negative");
  if (c.max_position_embeddings < 1) config.fail("max_position_embeddings", "must be positive");
  if (c.num_attention_heads < 1 || c.hidden_size % c.num_attention_heads != 0)
    config.fail("num_attention_heads", "must divide hidden_size " + std::to_string(c.hidden_size));
  return c;
}

std::string ClipTextModel::weights_path(const std::string& folder) {
  namespace fs = std::filesystem;
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    fs::path p = fs::path(folder) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  throw std::runtime_error(folder + ": no model.safetensors or pytorch_model.bin");
}

ClipTextModel ClipTextModel::load(const std::string& folder) {
  ClipTextConfig config =
      ClipTextConfig::from_config(ModelConfig::load(folder + "/config.json"));
  const std::string path = weights_path(folder);
  std::shared_ptr<WeightStore> store =
      path.ends_with(".safetensors")
          ? WeightStore::from_safetensors(path)
          : WeightStore::from_tensors(load_torch_checkpoint(path), path);
  return ClipTextModel(config, *store);
}

ClipTextModel::ClipTextModel(ClipTextConfig config, WeightStore& weights)
    : config_(config) {
  const int64_t D = config_.hidden_size, F = config_.intermediate_size;
  auto linear = [&](const std::string& prefix, int64_t out, int64_t in) {
    return Linear{weights.get(prefix + ".weight", {out, in}), weights.get(prefix + ".bias", {out})};
  };
  auto norm = [&](const std::string& prefix) {
    return Norm{weights.get(prefix + ".weight", {D}), weights.get(prefix + ".bias", {D})};
  };
  token_embedding_ =
      weights.get("text_model.embeddings.token_embedding.weight", {config_.vocab_size, D});
  position_embedding_ = weights.get("text_model.embeddings.position_embedding.weight",
                                    {config_.max_position_embeddings, D});
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.layer_norm1 = norm(p + "layer_norm1");
    layer.q_proj = linear(p + "self_attn.q_proj", D, D);
    layer.k_proj = linear(p + "self_attn.k_proj", D, D);
    layer.v_proj = linear(p + "self_attn.v_proj", D, D);
    layer.out_proj = linear(p + "self_attn.out_proj", D, D);
    layer.layer_norm2 = norm(p + "layer_norm2");
    layer.fc1 = linear(p + "mlp.fc1", F, D);
    layer.fc2 = linear(p + "mlp.fc2", D, F);
    layers_.push_back(std::move(layer));
  }
  final_layer_norm_ = norm("text_model.final_layer_norm");
  // A buffer older transformers saved (0..L-1) and the projection of
  // CLIPTextModelWithProjection checkpoints: transformers' CLIPTextModel skips both.
  for (const char* skipped : {"text_model.embeddings.position_ids", "text_projection.weight"})
    if (weights.has(skipped)) weights.ignore(skipped);
  weights.finish();
}

Tensor ClipTextModel::forward(const std::vector<int64_t>& input_ids, Backend& be,
                              std::vector<Tensor>* hidden_states) const {
  const int64_t L = static_cast<int64_t>(input_ids.size());
  const int64_t D = config_.hidden_size;
  if (L < 1 || L > config_.max_position_embeddings)
    throw std::invalid_argument("CLIP text model: " + std::to_string(L) +
                                " tokens, expected 1.." +
                                std::to_string(config_.max_position_embeddings));

  // Embeddings: token row + position row.
  Tensor x = Tensor::uninitialized({1, L, D});
  for (int64_t l = 0; l < L; ++l) {
    const int64_t id = input_ids[l];
    if (id < 0 || id >= config_.vocab_size)
      throw std::invalid_argument("CLIP text model: token id " + std::to_string(id) +
                                  " outside the vocabulary of " +
                                  std::to_string(config_.vocab_size));
    const float* tok = token_embedding_.data() + id * D;
    const float* pos = position_embedding_.data() + l * D;
    float* row = x.data() + l * D;
    for (int64_t c = 0; c < D; ++c) row[c] = tok[c] + pos[c];
  }
  if (hidden_states) hidden_states->assign(1, x);

  const int heads = static_cast<int>(config_.num_attention_heads);
  // transformers scales q after its projection (head_dim ** -0.5), then q k^T.
  const float q_scale =
      static_cast<float>(std::pow(static_cast<double>(D / heads), -0.5));
  const float eps = config_.layer_norm_eps;
  for (const Layer& layer : layers_) {
    Tensor h = be.layer_norm(x, &layer.layer_norm1.weight, &layer.layer_norm1.bias, eps);
    Tensor q = be.scale(be.linear(h, layer.q_proj.weight, &layer.q_proj.bias), q_scale);
    Tensor k = be.linear(h, layer.k_proj.weight, &layer.k_proj.bias);
    Tensor v = be.linear(h, layer.v_proj.weight, &layer.v_proj.bias);
    Tensor attn = be.attention(q, k, v, heads, 1.0f, /*causal=*/true);
    x = be.add(x, be.linear(attn, layer.out_proj.weight, &layer.out_proj.bias));

    h = be.layer_norm(x, &layer.layer_norm2.weight, &layer.layer_norm2.bias, eps);
    h = be.activation(be.linear(h, layer.fc1.weight, &layer.fc1.bias), config_.hidden_act);
    x = be.add(x, be.linear(h, layer.fc2.weight, &layer.fc2.bias));
    if (hidden_states) hidden_states->push_back(x);
  }
  return be.layer_norm(x, &final_layer_norm_.weight, &final_layer_norm_.bias, eps);
}

}  // namespace sdvsr
