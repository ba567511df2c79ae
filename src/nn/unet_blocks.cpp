#include "nn/unet_blocks.h"

#include <stdexcept>

namespace sdvsr::nn {

namespace {

TransformerSettings layer_attention(const StageSettings& s, int layer) {
  TransformerSettings t = *s.attn;
  t.num_layers = s.transformer_layers.at(layer);
  return t;
}

}  // namespace

DownStage::DownStage(const WeightScope& w, Backend& be, int64_t in, int64_t out,
                     const StageSettings& s, bool add_downsample, int downsample_padding) {
  resnets_.reserve(s.num_layers);
  for (int i = 0; i < s.num_layers; ++i) {
    resnets_.emplace_back(w.sub("resnets").sub(i), be, i == 0 ? in : out, out, s.resnet);
    if (s.attn) attentions_.emplace_back(w.sub("attentions").sub(i), be, out, layer_attention(s, i));
  }
  if (add_downsample) downsampler_.emplace(w.sub("downsamplers").sub(0), be, out, downsample_padding);
}

Tensor DownStage::forward(const Tensor& x, const Tensor& emb, const Tensor& context,
                          std::vector<Tensor>& skips) const {
  Tensor h = x;
  for (size_t i = 0; i < resnets_.size(); ++i) {
    h = resnets_[i].forward(h, emb);
    if (!attentions_.empty()) h = attentions_[i].forward(h, context);
    skips.push_back(h);
  }
  if (downsampler_) {
    h = downsampler_->forward(h);
    skips.push_back(h);
  }
  return h;
}

MidStage::MidStage(const WeightScope& w, Backend& be, int64_t channels, const StageSettings& s) {
  resnets_.emplace_back(w.sub("resnets").sub(0), be, channels, channels, s.resnet);
  if (!s.attn) return;
  for (int i = 0; i < s.num_layers; ++i) {
    attentions_.emplace_back(w.sub("attentions").sub(i), be, channels, layer_attention(s, i));
    resnets_.emplace_back(w.sub("resnets").sub(i + 1), be, channels, channels, s.resnet);
  }
}

Tensor MidStage::forward(const Tensor& x, const Tensor& emb, const Tensor& context) const {
  Tensor h = resnets_[0].forward(x, emb);
  for (size_t i = 0; i < attentions_.size(); ++i) {
    h = attentions_[i].forward(h, context);
    h = resnets_[i + 1].forward(h, emb);
  }
  return h;
}

UpStage::UpStage(const WeightScope& w, Backend& be, int64_t in, int64_t prev_out, int64_t out,
                 const StageSettings& s, bool add_upsample)
    : be_(&be) {
  resnets_.reserve(s.num_layers);
  for (int i = 0; i < s.num_layers; ++i) {
    const int64_t skip_ch = (i == s.num_layers - 1) ? in : out;
    const int64_t hidden_ch = (i == 0) ? prev_out : out;
    resnets_.emplace_back(w.sub("resnets").sub(i), be, hidden_ch + skip_ch, out, s.resnet);
    if (s.attn) attentions_.emplace_back(w.sub("attentions").sub(i), be, out, layer_attention(s, i));
  }
  if (add_upsample) upsampler_.emplace(w.sub("upsamplers").sub(0), be, out);
}

Tensor UpStage::forward(const Tensor& x, std::vector<Tensor>& skips, const Tensor& emb,
                        const Tensor& context, int64_t up_h, int64_t up_w) const {
  Tensor h = x;
  for (size_t i = 0; i < resnets_.size(); ++i) {
    if (skips.empty()) throw std::runtime_error("UpStage: ran out of skip connections");
    Tensor skip = std::move(skips.back());
    skips.pop_back();
    h = resnets_[i].forward(be_->concat({h, skip}, 1), emb);
    if (!attentions_.empty()) h = attentions_[i].forward(h, context);
  }
  if (upsampler_) h = upsampler_->forward(h, up_h, up_w);
  return h;
}

}  // namespace sdvsr::nn
