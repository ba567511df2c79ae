#include "models/controlnet.h"

#include <cmath>
#include <stdexcept>

#include "nn/diffusers_weights.h"

namespace sdvsr {

std::unique_ptr<ControlNetModel> ControlNetModel::load(const std::string& folder, Backend& be) {
  ModelConfig cfg = ModelConfig::load(folder + "/config.json");
  auto store = nn::open_diffusers_weights(folder);
  auto model = std::make_unique<ControlNetModel>(cfg, WeightScope(store), be);
  store->finish();
  return model;
}

ControlNetModel::ControlNetModel(const ModelConfig& cfg, WeightScope weights, Backend& be)
    : be_(&be),
      origin_(cfg.path()),
      encoder_(nn::parse_encoder_spec(cfg, nn::ModelKind::kControlNet), weights, be) {
  const auto& spec = encoder_.spec();
  const std::string order = cfg.get_string("controlnet_conditioning_channel_order", "rgb");
  if (order != "rgb" && order != "bgr")
    cfg.fail("controlnet_conditioning_channel_order", "= '" + order + "' (expected rgb or bgr)");
  bgr_ = order == "bgr";
  global_pool_ = cfg.get_bool("global_pool_conditions", false);
  cond_channels_ = cfg.get_int("conditioning_channels", 3);

  std::vector<int64_t> cond_ch = cfg.has("conditioning_embedding_out_channels")
                                     ? cfg.get_int_list("conditioning_embedding_out_channels")
                                     : std::vector<int64_t>{16, 32, 96, 256};
  if (cond_ch.empty()) cfg.fail("conditioning_embedding_out_channels", "is empty");
  WeightScope ce = weights.sub("controlnet_cond_embedding");
  cond_in_ = nn::Conv2d(ce.sub("conv_in"), be, cond_channels_, cond_ch[0], 3, 1, 1);
  for (size_t i = 0; i + 1 < cond_ch.size(); ++i) {
    cond_blocks_.emplace_back(ce.sub("blocks").sub(static_cast<int64_t>(2 * i)), be, cond_ch[i],
                              cond_ch[i], 3, 1, 1);
    cond_blocks_.emplace_back(ce.sub("blocks").sub(static_cast<int64_t>(2 * i + 1)), be, cond_ch[i],
                              cond_ch[i + 1], 3, 2, 1);
  }
  cond_out_ = nn::Conv2d(ce.sub("conv_out"), be, cond_ch.back(), spec.channels[0], 3, 1, 1);

  // One zero conv per U-Net skip: conv_in output, then each stage's ResNet
  // outputs and its downsampler output.
  WeightScope zc = weights.sub("controlnet_down_blocks");
  auto add_zero_conv = [&](int64_t ch) {
    zero_convs_.emplace_back(zc.sub(static_cast<int64_t>(zero_convs_.size())), be, ch, ch, 1);
  };
  add_zero_conv(spec.channels[0]);
  for (size_t i = 0; i < spec.channels.size(); ++i) {
    for (int l = 0; l < spec.down[i].num_layers; ++l) add_zero_conv(spec.channels[i]);
    if (i + 1 < spec.channels.size()) add_zero_conv(spec.channels[i]);
  }
  zero_conv_mid_ = nn::Conv2d(weights.sub("controlnet_mid_block"), be, spec.channels.back(),
                              spec.channels.back(), 1);
}

Tensor ControlNetModel::condition_embedding(const Tensor& controlnet_cond) const {
  Backend& be = *be_;
  if (controlnet_cond.dim() != 4 || controlnet_cond.size(1) != cond_channels_)
    throw std::runtime_error(origin_ + ": controlnet_cond should be [N, " +
                             std::to_string(cond_channels_) + ", H, W], got " +
                             shape_str(controlnet_cond.shape()));
  Tensor c = controlnet_cond;
  if (bgr_) {  // torch.flip(cond, dims=[1])
    std::vector<Tensor> channels;
    for (int64_t i = c.size(1) - 1; i >= 0; --i) channels.push_back(be.slice(c, 1, i, i + 1));
    c = be.concat(channels, 1);
  }
  Tensor e = be.activation_in_place(cond_in_(c), Activation::kSiLU);
  for (const auto& conv : cond_blocks_) e = be.activation_in_place(conv(e), Activation::kSiLU);
  return cond_out_(e);
}

ControlNetResiduals ControlNetModel::forward(const Tensor& sample, float timestep,
                                             const Tensor& encoder_hidden_states,
                                             const Tensor& controlnet_cond,
                                             float conditioning_scale, bool guess_mode,
                                             std::optional<int64_t> class_label) {
  return forward_embedded(sample, timestep, encoder_hidden_states,
                          condition_embedding(controlnet_cond), conditioning_scale, guess_mode,
                          class_label);
}

ControlNetResiduals ControlNetModel::forward_embedded(const Tensor& sample, float timestep,
                                                      const Tensor& encoder_hidden_states,
                                                      const Tensor& cond_embedding,
                                                      float conditioning_scale, bool guess_mode,
                                                      std::optional<int64_t> class_label) {
  encoder_.check_inputs(sample, encoder_hidden_states);
  return forward_timed(sample, time_embedding(timestep, sample.size(0), class_label),
                       encoder_hidden_states, cond_embedding, conditioning_scale, guess_mode);
}

Tensor ControlNetModel::time_embedding(float timestep, int64_t batch,
                                       std::optional<int64_t> class_label) const {
  return encoder_.time_embedding(timestep, batch, class_label);
}

ControlNetResiduals ControlNetModel::forward_timed(const Tensor& sample, const Tensor& emb,
                                                   const Tensor& encoder_hidden_states,
                                                   const Tensor& cond_embedding,
                                                   float conditioning_scale, bool guess_mode) {
  Backend& be = *be_;
  encoder_.check_inputs(sample, encoder_hidden_states);
  if (emb.dim() != 2 || emb.size(0) != sample.size(0))
    throw std::runtime_error(origin_ + ": the time embedding is " + shape_str(emb.shape()) +
                             ", not one row per sample of " + shape_str(sample.shape()));
  const Shape conv_in_shape = encoder_.conv_in_shape(sample.shape());
  if (conv_in_shape != cond_embedding.shape())
    throw std::runtime_error(origin_ + ": the conditioning embedding is " +
                             shape_str(cond_embedding.shape()) + " but conv_in(sample) is " +
                             shape_str(conv_in_shape) +
                             " (controlnet_cond must reduce to the latent size)");
  // conv_in(sample) + embedding in one op (the same bits as the separate add).
  Tensor x = encoder_.conv_in_add(sample, cond_embedding);

  std::vector<Tensor> skips;
  x = encoder_.down(x, emb, encoder_hidden_states, skips);
  x = encoder_.mid(x, emb, encoder_hidden_states);

  ControlNetResiduals out;
  for (size_t i = 0; i < skips.size(); ++i) out.down.push_back(zero_convs_[i](skips[i]));
  out.mid = zero_conv_mid_(x);

  const size_t count = out.down.size();
  if (guess_mode && !global_pool_) {
    // torch.logspace(-1, 0, count + 1) * conditioning_scale: 0.1 ... 1.0.
    for (size_t i = 0; i <= count; ++i) {
      const double p = -1.0 + static_cast<double>(i) / static_cast<double>(count);
      const float s = static_cast<float>(std::pow(10.0, p)) * conditioning_scale;
      Tensor& r = i < count ? out.down[i] : out.mid;
      r = be.scale(r, s);
    }
  } else {
    for (auto& r : out.down) r = be.scale(r, conditioning_scale);
    out.mid = be.scale(out.mid, conditioning_scale);
  }

  if (global_pool_) {
    // torch.mean(r, dim=(2, 3), keepdim=True): a ones-row product over the H*W tokens.
    auto pool = [&](const Tensor& r) {
      const int64_t n = r.size(0), c = r.size(1), hw = r.size(2) * r.size(3);
      Tensor ones = Tensor::full({n, 1, hw}, 1.0f);
      Tensor sum = be.matmul(ones, be.nchw_to_tokens(r), false);  // [N, 1, C]
      return be.scale(sum, 1.0f / static_cast<float>(hw)).reshape({n, c, 1, 1});
    };
    for (auto& r : out.down) r = pool(r);
    out.mid = pool(out.mid);
  }
  return out;
}

}  // namespace sdvsr
