#include "nn/unet_encoder.h"

#include <stdexcept>

namespace sdvsr::nn {

UNetEncoder::UNetEncoder(const UNetEncoderSpec& spec, const WeightScope& w, Backend& be)
    : spec_(spec), be_(&be) {
  const int k = spec.conv_in_kernel;
  conv_in_ = Conv2d(w.sub("conv_in"), be, spec.in_channels, spec.channels[0], k, 1, (k - 1) / 2);
  time_embedding_ = TimestepEmbedding(w.sub("time_embedding"), be, spec.time_proj_dim,
                                      spec.time_embed_dim, spec.act, spec.timestep_post_act);
  if (spec.class_kind == ClassEmbedKind::kTimestep)
    class_mlp_ = TimestepEmbedding(w.sub("class_embedding"), be, spec.time_proj_dim,
                                   spec.time_embed_dim, spec.class_act);
  else if (spec.class_kind == ClassEmbedKind::kTable)
    class_table_ = w.get("class_embedding.weight", {spec.num_class_embeds, spec.time_embed_dim});

  const size_t n = spec.channels.size();
  int64_t in = spec.channels[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = spec.channels[i];
    const bool last = i + 1 == n;
    down_.emplace_back(w.sub("down_blocks").sub(static_cast<int64_t>(i)), be, in, out, spec.down[i],
                       !last, spec.downsample_padding);
    in = out;
  }
  if (spec.mid) mid_.emplace(w.sub("mid_block"), be, spec.channels.back(), *spec.mid);
}

Tensor UNetEncoder::time_embedding(float timestep, int64_t batch,
                                   std::optional<int64_t> class_label) const {
  const TimeKey key{timestep, batch, class_label};
  std::lock_guard<std::mutex> lock(time_embeddings_->mutex);
  auto it = time_embeddings_->by_key.find(key);
  if (it != time_embeddings_->by_key.end()) return it->second;
  // A handful of entries per stream (one per timestep); bounded all the same.
  if (time_embeddings_->by_key.size() >= 64) time_embeddings_->by_key.clear();
  Tensor emb = compute_time_embedding(timestep, batch, class_label);
  time_embeddings_->by_key.emplace(key, emb);
  return emb;
}

Tensor UNetEncoder::compute_time_embedding(float timestep, int64_t batch,
                                           std::optional<int64_t> class_label) const {
  auto sinusoid = [&](float value) {
    return sinusoidal_timestep_embedding(std::vector<float>(batch, value), spec_.time_proj_dim,
                                         spec_.flip_sin_to_cos, spec_.freq_shift);
  };
  Tensor emb = time_embedding_.forward(sinusoid(timestep));
  if (spec_.class_kind != ClassEmbedKind::kNone) {
    if (!class_label)
      throw std::runtime_error(spec_.origin +
                               ": the model has a class embedding; class_labels (noise_level) "
                               "must be given, as diffusers requires");
    Tensor class_emb;
    if (spec_.class_kind == ClassEmbedKind::kTimestep) {
      class_emb = class_mlp_.forward(sinusoid(static_cast<float>(*class_label)));
    } else {
      if (*class_label < 0 || *class_label >= spec_.num_class_embeds)
        throw std::runtime_error(spec_.origin + ": class label " + std::to_string(*class_label) +
                                 " outside num_class_embeds " +
                                 std::to_string(spec_.num_class_embeds));
      Tensor row = be_->slice(class_table_, 0, *class_label, *class_label + 1);
      class_emb = be_->concat(std::vector<Tensor>(batch, row), 0);
    }
    emb = be_->add(emb, class_emb);
  }
  if (spec_.time_embed_act) emb = be_->activation(emb, *spec_.time_embed_act);
  return emb;
}

Tensor UNetEncoder::conv_in(const Tensor& sample) const {
  if (spec_.center_input_sample) return conv_in_(be_->add_scalar(be_->scale(sample, 2.0f), -1.0f));
  return conv_in_(sample);
}

Tensor UNetEncoder::conv_in_add(const Tensor& sample, const Tensor& residual) const {
  if (spec_.center_input_sample)
    return conv_in_.forward_add(be_->add_scalar(be_->scale(sample, 2.0f), -1.0f), residual);
  return conv_in_.forward_add(sample, residual);
}

Shape UNetEncoder::conv_in_shape(const Shape& sample) const {
  // Stride 1, padding (k - 1) / 2.
  const int64_t k = spec_.conv_in_kernel, grow = 2 * ((k - 1) / 2) - k + 1;
  return {sample.at(0), spec_.channels[0], sample.at(2) + grow, sample.at(3) + grow};
}

Tensor UNetEncoder::down(const Tensor& x, const Tensor& emb, const Tensor& context,
                         std::vector<Tensor>& skips) const {
  skips.push_back(x);
  Tensor h = x;
  for (const auto& stage : down_) h = stage.forward(h, emb, context, skips);
  return h;
}

Tensor UNetEncoder::mid(const Tensor& x, const Tensor& emb, const Tensor& context) const {
  return mid_ ? mid_->forward(x, emb, context) : x;
}

int UNetEncoder::num_downsamplers() const {
  int count = 0;
  for (const auto& stage : down_) count += stage.has_downsampler() ? 1 : 0;
  return count;
}

void UNetEncoder::check_inputs(const Tensor& sample, const Tensor& context) const {
  if (sample.dim() != 4 || sample.size(1) != spec_.in_channels)
    throw std::runtime_error(spec_.origin + ": sample should be [N, " +
                             std::to_string(spec_.in_channels) + ", H, W], got " +
                             shape_str(sample.shape()));
  if (context.dim() != 3 || context.size(0) != sample.size(0))
    throw std::runtime_error(spec_.origin + ": encoder_hidden_states should be [N, L, D] with N = " +
                             std::to_string(sample.size(0)) + ", got " + shape_str(context.shape()));
  auto check_dim = [&](const StageSettings& st) {
    if (st.attn && context.size(2) != st.attn->cross_attention_dim)
      throw std::runtime_error(spec_.origin + ": encoder_hidden_states width " +
                               std::to_string(context.size(2)) + " != cross_attention_dim " +
                               std::to_string(st.attn->cross_attention_dim));
  };
  for (const auto& st : spec_.down) check_dim(st);
  if (spec_.mid) check_dim(*spec_.mid);
}

}  // namespace sdvsr::nn
