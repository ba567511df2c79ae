#include "nn/unet_config.h"

#include <algorithm>
#include <stdexcept>

namespace sdvsr::nn {

namespace {

using json = nlohmann::json;

bool is_null_or_absent(const ModelConfig& cfg, const std::string& key) { return !cfg.has(key); }

std::vector<std::string> string_list_or(const ModelConfig& cfg, const std::string& key,
                                        std::vector<std::string> def) {
  return cfg.has(key) ? cfg.get_string_list(key) : def;
}

std::vector<int64_t> int_list_or(const ModelConfig& cfg, const std::string& key,
                                 std::vector<int64_t> def) {
  return cfg.has(key) ? cfg.get_int_list(key) : def;
}

// Switches that select code paths this port does not implement: refuse them by name.
void require_absent(const ModelConfig& cfg, const std::string& key, const std::string& why) {
  if (cfg.has(key)) cfg.fail(key, "is set, but " + why);
}

void require_value(const ModelConfig& cfg, const std::string& key, const std::string& def,
                   const std::string& supported) {
  const std::string v = cfg.get_string(key, def);
  if (v != supported) cfg.fail(key, "= '" + v + "' is not supported (only '" + supported + "')");
}

std::optional<Activation> optional_activation(const ModelConfig& cfg, const std::string& key) {
  auto name = cfg.get_optional_string(key);
  if (!name) return std::nullopt;
  return activation_from_name(*name, cfg.path() + ": key '" + key + "'");
}

// Layer counts beyond this are refused before anything is sized by them (real
// models have a handful per block).
constexpr int64_t kMaxLayers = 1024;

int checked_layer_count(const ModelConfig& cfg, const std::string& key, const json& count) {
  const int64_t v = count.get<int64_t>();
  if (v < 0 || v > kMaxLayers)
    cfg.fail(key, "holds the layer count " + std::to_string(v) + " (0.." + std::to_string(kMaxLayers) + ")");
  return static_cast<int>(v);
}

// One entry of transformer_layers_per_block (an int, or a list with one count
// per ResNet of the stage), expanded to `n` layers.
std::vector<int> expand_layer_counts(const ModelConfig& cfg, const std::string& key,
                                     const json& entry, int n) {
  if (entry.is_number_integer()) return std::vector<int>(n, checked_layer_count(cfg, key, entry));
  if (!entry.is_array()) cfg.fail(key, "entries should be integers or lists of integers");
  if (static_cast<int>(entry.size()) < n)
    cfg.fail(key, "has a per-layer list of " + std::to_string(entry.size()) + " counts for a stage of " +
                      std::to_string(n) + " layers");
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    if (!entry[i].is_number_integer()) cfg.fail(key, "per-layer counts should be integers");
    out.push_back(checked_layer_count(cfg, key, entry[i]));
  }
  return out;
}

// transformer_layers_per_block as one json entry per down block.
std::vector<json> transformer_layer_entries(const ModelConfig& cfg, size_t blocks) {
  const std::string key = "transformer_layers_per_block";
  if (!cfg.has(key)) return std::vector<json>(blocks, json(1));
  const json& v = cfg.json().at(key);
  if (v.is_number_integer()) return std::vector<json>(blocks, v);
  if (!v.is_array() || v.size() != blocks)
    cfg.fail(key, "should be an integer or a list with one entry per down block");
  return std::vector<json>(v.begin(), v.end());
}

void check_block_type(const ModelConfig& cfg, const std::string& key, const std::string& type,
                      const std::string& plain, const std::string& cross) {
  if (type != plain && type != cross)
    cfg.fail(key, "holds '" + type + "'; supported: " + plain + ", " + cross);
}

}  // namespace

UNetEncoderSpec parse_encoder_spec(const ModelConfig& cfg, ModelKind kind) {
  const bool unet = kind == ModelKind::kUNet;
  UNetEncoderSpec s;
  s.origin = cfg.path();

  // ---- switches outside the supported family ----
  require_value(cfg, "resnet_time_scale_shift", "default", "default");
  require_absent(cfg, "addition_embed_type", "addition embeddings are not implemented");
  require_absent(cfg, "encoder_hid_dim", "encoder_hid_proj is not implemented");
  require_absent(cfg, "encoder_hid_dim_type", "encoder_hid_proj is not implemented");
  if (unet) {
    // diffusers 0.27.2 itself refuses num_attention_heads in the U-Net (naming issue #2011).
    require_absent(cfg, "num_attention_heads",
                   "diffusers 0.27.2 UNet2DConditionModel refuses it; use attention_head_dim");
    require_value(cfg, "time_embedding_type", "positional", "positional");
    require_value(cfg, "attention_type", "default", "default");
    require_absent(cfg, "time_cond_proj_dim", "timestep_cond is not implemented");
    if (cfg.get_bool("dual_cross_attention", false))
      cfg.fail("dual_cross_attention", "= true is not supported");
    if (cfg.get_bool("class_embeddings_concat", false))
      cfg.fail("class_embeddings_concat", "= true is not supported");
  }
  if (is_null_or_absent(cfg, "norm_num_groups") && cfg.json().contains("norm_num_groups"))
    cfg.fail("norm_num_groups", "is null; the ResNet blocks need a group count");

  // ---- stages, per level ----
  s.channels = int_list_or(cfg, "block_out_channels", {320, 640, 1280, 1280});
  s.down_types = string_list_or(cfg, "down_block_types",
                                {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                 "CrossAttnDownBlock2D", "DownBlock2D"});
  const size_t n = s.down_types.size();
  if (s.channels.size() != n)
    cfg.fail("block_out_channels", "needs one entry per down block (" + std::to_string(n) + ")");
  if (n == 0) cfg.fail("down_block_types", "is empty");

  s.in_channels = cfg.get_int("in_channels", 4);
  s.groups = cfg.get_int("norm_num_groups", 32);
  s.eps = static_cast<float>(cfg.get_float("norm_eps", 1e-5));
  s.downsample_padding = static_cast<int>(cfg.get_int("downsample_padding", 1));
  s.act = activation_from_name(cfg.get_string("act_fn", "silu"), cfg.path() + ": key 'act_fn'");
  s.flip_sin_to_cos = cfg.get_bool("flip_sin_to_cos", true);
  s.freq_shift = static_cast<float>(cfg.get_float("freq_shift", 0));
  s.time_proj_dim = s.channels[0];
  if (unet) {
    s.conv_in_kernel = static_cast<int>(cfg.get_int("conv_in_kernel", 3));
    s.center_input_sample = cfg.get_bool("center_input_sample", false);
    s.time_embed_dim = cfg.get_int("time_embedding_dim", s.channels[0] * 4);
    s.timestep_post_act = optional_activation(cfg, "timestep_post_act");
    s.time_embed_act = optional_activation(cfg, "time_embedding_act_fn");
  } else {
    s.time_embed_dim = s.channels[0] * 4;
  }

  // Class embedding: an nn.Embedding table (num_class_embeds) or a second
  // TimestepEmbedding ("timestep"); the other diffusers kinds are not implemented.
  if (auto type = cfg.get_optional_string("class_embed_type")) {
    if (*type != "timestep")
      cfg.fail("class_embed_type", "= '" + *type + "' is not supported (null or 'timestep')");
    s.class_kind = ClassEmbedKind::kTimestep;
    // The U-Net builds it with act_fn, the ControlNet with TimestepEmbedding's default (silu).
    s.class_act = unet ? s.act : Activation::kSiLU;
  } else if (cfg.has("num_class_embeds")) {
    s.class_kind = ClassEmbedKind::kTable;
    s.num_class_embeds = cfg.get_int("num_class_embeds");
  }

  // diffusers' naming quirk: attention_head_dim is the number of heads.
  std::vector<int64_t> heads;
  if (!unet && cfg.has("num_attention_heads"))
    heads = cfg.get_int_or_list("num_attention_heads", n, 8);
  else
    heads = cfg.get_int_or_list("attention_head_dim", n, 8);
  std::vector<int64_t> cross_dims;
  std::vector<int64_t> layers;
  if (unet) {
    cross_dims = cfg.get_int_or_list("cross_attention_dim", n, 1280);
    layers = cfg.get_int_or_list("layers_per_block", n, 2);
  } else {
    // ControlNetModel 0.27.2 takes single ints here.
    cross_dims.assign(n, cfg.get_int("cross_attention_dim", 1280));
    layers.assign(n, cfg.get_int("layers_per_block", 2));
  }
  const std::vector<bool> only_cross = cfg.get_bool_or_list("only_cross_attention", n, false);
  const std::vector<json> tl = transformer_layer_entries(cfg, n);
  if (unet && !cfg.has("reverse_transformer_layers_per_block"))
    for (const auto& e : tl)
      if (e.is_array())
        cfg.fail("transformer_layers_per_block",
                 "has per-layer lists; diffusers then needs reverse_transformer_layers_per_block");
  const bool linear = cfg.get_bool("use_linear_projection", false);

  auto stage = [&](size_t level, int num_layers, const json& tl_entry, bool cross,
                   bool only_cross_attention, float scale) {
    StageSettings st;
    st.num_layers = num_layers;
    st.resnet.temb_channels = s.time_embed_dim;
    st.resnet.groups = s.groups;
    st.resnet.eps = s.eps;
    st.resnet.act = s.act;
    st.resnet.output_scale_factor = scale;
    if (cross) {
      const int64_t h = heads[level];
      if (h <= 0) cfg.fail("attention_head_dim", "must be positive");
      TransformerSettings t;
      t.heads = static_cast<int>(h);
      t.head_dim = s.channels[level] / h;  // out_channels // num_attention_heads
      t.cross_attention_dim = cross_dims[level];
      t.groups = s.groups;
      t.use_linear_projection = linear;
      t.only_cross_attention = only_cross_attention;
      st.attn = t;
      st.transformer_layers =
          expand_layer_counts(cfg, "transformer_layers_per_block", tl_entry, num_layers);
    }
    return st;
  };

  for (size_t i = 0; i < n; ++i) {
    const std::string& type = s.down_types[i];
    check_block_type(cfg, "down_block_types", type, "DownBlock2D", "CrossAttnDownBlock2D");
    if (layers[i] < 1) cfg.fail("layers_per_block", "must be at least 1");
    if (layers[i] > kMaxLayers)
      cfg.fail("layers_per_block", "is " + std::to_string(layers[i]) + " (at most " + std::to_string(kMaxLayers) + ")");
    s.down.push_back(stage(i, static_cast<int>(layers[i]), tl[i], type == "CrossAttnDownBlock2D",
                           only_cross[i], 1.0f));
  }

  // Mid block: the last level's heads / cross dim / transformer layers; always
  // self-attention in attn1 (UNetMidBlock2DCrossAttn ignores only_cross_attention).
  const json& mid_type_json = cfg.json().contains("mid_block_type") ? cfg.json().at("mid_block_type")
                                                                    : json("UNetMidBlock2DCrossAttn");
  const float mid_scale = static_cast<float>(cfg.get_float("mid_block_scale_factor", 1.0));
  if (mid_type_json.is_null()) {
    if (!unet) cfg.fail("mid_block_type", "is null; ControlNetModel needs a mid block");
  } else {
    const std::string mid_type = cfg.get_string("mid_block_type", "UNetMidBlock2DCrossAttn");
    if (mid_type == "UNetMidBlock2DCrossAttn") {
      s.mid = stage(n - 1, 1, tl[n - 1], true, false, mid_scale);
    } else if (mid_type == "UNetMidBlock2D") {
      s.mid = stage(n - 1, 0, json(1), false, false, mid_scale);
    } else {
      cfg.fail("mid_block_type", "= '" + mid_type +
                                     "' is not supported (UNetMidBlock2DCrossAttn, UNetMidBlock2D, null)");
    }
  }
  return s;
}

UNetDecoderSpec parse_decoder_spec(const ModelConfig& cfg, const UNetEncoderSpec& enc) {
  UNetDecoderSpec d;
  const size_t n = enc.down_types.size();
  d.up_types = string_list_or(cfg, "up_block_types",
                              {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                               "CrossAttnUpBlock2D"});
  if (d.up_types.size() != n)
    cfg.fail("up_block_types", "needs as many entries as down_block_types (" + std::to_string(n) + ")");
  d.out_channels = cfg.get_int("out_channels", 4);
  d.conv_out_kernel = static_cast<int>(cfg.get_int("conv_out_kernel", 3));

  // Up block i uses the reversed per-level lists; ResNets = layers_per_block + 1.
  std::vector<int64_t> heads = cfg.get_int_or_list("attention_head_dim", n, 8);
  std::vector<int64_t> cross_dims = cfg.get_int_or_list("cross_attention_dim", n, 1280);
  std::vector<int64_t> layers = cfg.get_int_or_list("layers_per_block", n, 2);
  std::vector<bool> only_cross = cfg.get_bool_or_list("only_cross_attention", n, false);
  std::vector<int64_t> channels = enc.channels;
  std::reverse(heads.begin(), heads.end());
  std::reverse(cross_dims.begin(), cross_dims.end());
  std::reverse(layers.begin(), layers.end());
  std::reverse(only_cross.begin(), only_cross.end());
  std::reverse(channels.begin(), channels.end());

  std::vector<json> tl;
  const std::string rkey = "reverse_transformer_layers_per_block";
  if (cfg.has(rkey)) {
    const json& v = cfg.json().at(rkey);
    if (!v.is_array() || v.size() != n) cfg.fail(rkey, "should be a list with one entry per up block");
    tl.assign(v.begin(), v.end());
  } else {
    tl = transformer_layer_entries(cfg, n);
    std::reverse(tl.begin(), tl.end());
  }
  const std::string tl_key = cfg.has(rkey) ? rkey : "transformer_layers_per_block";
  const bool linear = cfg.get_bool("use_linear_projection", false);

  for (size_t i = 0; i < n; ++i) {
    const std::string& type = d.up_types[i];
    check_block_type(cfg, "up_block_types", type, "UpBlock2D", "CrossAttnUpBlock2D");
    StageSettings st;
    st.num_layers = static_cast<int>(layers[i]) + 1;
    st.resnet.temb_channels = enc.time_embed_dim;
    st.resnet.groups = enc.groups;
    st.resnet.eps = enc.eps;
    st.resnet.act = enc.act;
    if (type == "CrossAttnUpBlock2D") {
      if (heads[i] <= 0) cfg.fail("attention_head_dim", "must be positive");
      TransformerSettings t;
      t.heads = static_cast<int>(heads[i]);
      t.head_dim = channels[i] / heads[i];
      t.cross_attention_dim = cross_dims[i];
      t.groups = enc.groups;
      t.use_linear_projection = linear;
      t.only_cross_attention = only_cross[i];
      st.attn = t;
      st.transformer_layers = expand_layer_counts(cfg, tl_key, tl[i], st.num_layers);
    }
    d.up.push_back(st);
  }
  return d;
}

}  // namespace sdvsr::nn
