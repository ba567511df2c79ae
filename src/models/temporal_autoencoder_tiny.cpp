#include "models/temporal_autoencoder_tiny.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "nn/diffusers_weights.h"

namespace sdvsr {

namespace {
namespace fs = std::filesystem;

// Tensors every block owns but only the decoder's blocks use.
bool is_temporal_param(const std::string& key) {
  return key.find(".alpha") != std::string::npos ||
         key.find(".temporal_processor.") != std::string::npos;
}
}  // namespace

std::unique_ptr<TemporalAutoencoderTiny> TemporalAutoencoderTiny::load(const std::string& folder,
                                                                       Backend& be) {
  const fs::path dir(folder);
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path))
    throw std::runtime_error(config_path.string() + ": temporal VAE config not found");
  ModelConfig cfg = ModelConfig::load(config_path.string());

  std::shared_ptr<WeightStore> store = nn::open_diffusers_weights(folder);

  auto model = std::make_unique<TemporalAutoencoderTiny>(cfg, WeightScope(store), be);
  store->finish();
  return model;
}

TemporalAutoencoderTiny::TemporalAutoencoderTiny(const ModelConfig& cfg, WeightScope weights,
                                                 Backend& be)
    : config_(TemporalVaeConfig::from(cfg)), be_(be) {
  build_encoder(weights.sub("encoder").sub("layers"));
  build_decoder(weights.sub("decoder").sub("layers"));
  // The encoder's alpha / temporal_processor tensors are never used (the
  // pipeline sets no temporal state on encoder blocks); they may be present or not.
  for (const std::string& key : weights.store().keys_with_prefix(weights.key("encoder.layers.")))
    if (is_temporal_param(key)) weights.store().ignore(key);
}

TemporalAutoencoderTiny::Layer TemporalAutoencoderTiny::conv_layer(const WeightScope& w,
                                                                   int64_t index, int64_t in,
                                                                   int64_t out, int stride,
                                                                   bool bias) {
  Layer l{Layer::Kind::kConv, {}, {}, stride, nullptr};
  const WeightScope s = w.sub(index);
  l.weight = s.get("weight", {out, in, 3, 3});
  if (bias) l.bias = s.get("bias", {out});
  return l;
}

// EncoderTiny: per stage a 3x3 conv (stage 0: in -> C with bias; later stages:
// stride 2, no bias) and its blocks; a final 3x3 conv to the latent channels.
void TemporalAutoencoderTiny::build_encoder(const WeightScope& w) {
  const auto& ch = config_.encoder_block_out_channels;
  int64_t index = 0;
  for (size_t i = 0; i < ch.size(); ++i) {
    if (i == 0)
      encoder_layers_.push_back(conv_layer(w, index++, config_.in_channels, ch[i], 1, true));
    else
      encoder_layers_.push_back(conv_layer(w, index++, ch[i], ch[i], 2, false));
    for (int64_t b = 0; b < config_.num_encoder_blocks[i]; ++b) {
      Layer l{Layer::Kind::kBlock, {}, {}, 1, nullptr};
      l.block = std::make_unique<TemporalAutoencoderTinyBlock>(ch[i], ch[i], config_.activation,
                                                               w.sub(index++), false);
      encoder_layers_.push_back(std::move(l));
    }
  }
  encoder_layers_.push_back(conv_layer(w, index++, ch.back(), config_.latent_channels, 1, true));
}

// TemporalDecoderTiny: conv latent -> C[0] and act_fn; per stage its blocks,
// then (not last) upsample + bias-free 3x3 conv, (last) 3x3 conv to RGB with bias.
void TemporalAutoencoderTiny::build_decoder(const WeightScope& w) {
  const auto& ch = config_.decoder_block_out_channels;
  int64_t index = 0;
  decoder_layers_.push_back(conv_layer(w, index++, config_.latent_channels, ch[0], 1, true));
  decoder_layers_.push_back(Layer{Layer::Kind::kActivation, {}, {}, 1, nullptr});
  ++index;
  for (size_t i = 0; i < ch.size(); ++i) {
    const bool last = i + 1 == ch.size();
    for (int64_t b = 0; b < config_.num_decoder_blocks[i]; ++b) {
      Layer l{Layer::Kind::kBlock, {}, {}, 1, nullptr};
      l.block = std::make_unique<TemporalAutoencoderTinyBlock>(ch[i], ch[i], config_.activation,
                                                               w.sub(index++), true);
      decoder_layers_.push_back(std::move(l));
    }
    if (!last) {
      decoder_layers_.push_back(Layer{Layer::Kind::kUpsample, {}, {}, 1, nullptr});
      ++index;
    }
    decoder_layers_.push_back(
        conv_layer(w, index++, ch[i], last ? config_.out_channels : ch[i], 1, last));
  }
}

size_t TemporalAutoencoderTiny::num_temporal_blocks() const {
  return static_cast<size_t>(
      std::count_if(decoder_layers_.begin(), decoder_layers_.end(),
                    [](const Layer& l) { return l.kind == Layer::Kind::kBlock; }));
}

Tensor TemporalAutoencoderTiny::run_layer(const Layer& layer, Tensor x,
                                          const Tensor* prev) const {
  switch (layer.kind) {
    case Layer::Kind::kConv: {
      const ConvStage st = conv_stage(layer);
      return be_.conv2d(x, *st.weight, st.bias, st.params);
    }
    case Layer::Kind::kActivation:
      return be_.activation_in_place(std::move(x), config_.activation);
    case Layer::Kind::kUpsample: {
      const int64_t f = config_.upsampling_scaling_factor;
      if (config_.upsample_bilinear)
        return be_.upsample_bilinear(x, x.size(2) * f, x.size(3) * f, /*align_corners=*/false);
      return be_.upsample_nearest(x, x.size(2) * f, x.size(3) * f);
    }
    case Layer::Kind::kBlock:
      return layer.block->forward(be_, x, prev);
  }
  throw std::logic_error("TemporalAutoencoderTiny: unknown layer kind");
}

ConvStage TemporalAutoencoderTiny::conv_stage(const Layer& conv) {
  ConvStage st;
  st.weight = &conv.weight;
  st.bias = conv.bias.defined() ? &conv.bias : nullptr;
  st.params.stride_h = st.params.stride_w = conv.stride;
  st.params.pad_h = st.params.pad_w = 1;
  return st;
}

size_t TemporalAutoencoderTiny::run_decoder_layer(size_t i, Tensor& x, const Tensor* prev) const {
  const Layer& l = decoder_layers_[i];
  const bool conv_next =
      i + 1 < decoder_layers_.size() && decoder_layers_[i + 1].kind == Layer::Kind::kConv;
  if (l.kind == Layer::Kind::kUpsample && !config_.upsample_bilinear && conv_next) {
    const int64_t f = config_.upsampling_scaling_factor;
    x = be_.upsample_nearest_conv2d(x, x.size(2) * f, x.size(3) * f,
                                    conv_stage(decoder_layers_[i + 1]));
    return 2;
  }
  x = run_layer(l, std::move(x), prev);
  return 1;
}

void TemporalAutoencoderTiny::check_image(const Tensor& image, const char* what) const {
  if (image.dim() != 4 || image.size(1) != config_.in_channels)
    throw std::runtime_error(std::string("TemporalAutoencoderTiny::") + what +
                                ": expected an image [N, " + std::to_string(config_.in_channels) +
                                ", H, W], got " + shape_str(image.shape()));
}

Tensor TemporalAutoencoderTiny::encode(const Tensor& image) {
  check_image(image, "encode");
  // TAESD works on [0, 1] images.
  Tensor x = be_.scale(be_.add_scalar(image, 1.0f), 0.5f);
  for (const Layer& l : encoder_layers_) x = run_layer(l, std::move(x), nullptr);
  return x;
}

void TemporalAutoencoderTiny::run_encoder_blocks(
    const Tensor& image, const std::function<void(const Tensor&)>& each_block) {
  Tensor x = image;  // raw [-1, 1]: upstream's feature path skips the remap
  // The final conv to latents only feeds the discarded latent: stop after the last block.
  size_t end = encoder_layers_.size();
  while (end > 0 && encoder_layers_[end - 1].kind != Layer::Kind::kBlock) --end;
  for (size_t i = 0; i < end; ++i) {
    x = run_layer(encoder_layers_[i], std::move(x), nullptr);
    if (encoder_layers_[i].kind == Layer::Kind::kBlock) each_block(x);
  }
}

std::vector<Tensor> TemporalAutoencoderTiny::encoder_block_features(const Tensor& image) {
  check_image(image, "encoder_block_features");
  std::vector<Tensor> features;
  run_encoder_blocks(image, [&](const Tensor& f) { features.push_back(f); });
  return features;
}

std::vector<Tensor> TemporalAutoencoderTiny::temporal_features(const Tensor& image) {
  check_image(image, "temporal_features");
  std::vector<Tensor> pooled;
  run_encoder_blocks(image, [&](const Tensor& f) {
    pooled.push_back(TemporalAutoencoderTinyBlock::pool_feature(be_, f));
  });
  std::reverse(pooled.begin(), pooled.end());
  return pooled;
}

std::vector<Tensor> TemporalAutoencoderTiny::pool_temporal_features(
    const std::vector<Tensor>& encoder_features) {
  std::vector<Tensor> pooled;
  for (auto it = encoder_features.rbegin(); it != encoder_features.rend(); ++it)
    pooled.push_back(TemporalAutoencoderTinyBlock::pool_feature(be_, *it));
  return pooled;
}

Tensor TemporalAutoencoderTiny::decode(const Tensor& latent,
                                       const std::vector<Tensor>* temporal_features) {
  if (latent.dim() != 4 || latent.size(1) != config_.latent_channels)
    throw std::runtime_error("TemporalAutoencoderTiny::decode: expected latents [N, " +
                                std::to_string(config_.latent_channels) + ", h, w], got " +
                                shape_str(latent.shape()));
  if (temporal_features && temporal_features->size() != num_temporal_blocks())
    throw std::runtime_error("TemporalAutoencoderTiny::decode: " +
                                std::to_string(temporal_features->size()) +
                                " temporal features for " +
                                std::to_string(num_temporal_blocks()) + " decoder blocks");
  // Soft clamp to (-3, 3): 3 * tanh(z / 3).
  Tensor x = be_.scale(be_.activation(be_.scale(latent, 1.0f / 3.0f), Activation::kTanh), 3.0f);
  size_t block = 0;
  for (size_t i = 0; i < decoder_layers_.size();) {
    const Tensor* prev = nullptr;
    if (decoder_layers_[i].kind == Layer::Kind::kBlock && temporal_features)
      prev = &(*temporal_features)[block++];
    i += run_decoder_layer(i, x, prev);
  }
  // [0, 1] -> [-1, 1], unclamped.
  return be_.add_scalar(be_.scale(x, 2.0f), -1.0f);
}

}  // namespace sdvsr
