#include "models/unet2d_condition.h"

#include <algorithm>
#include <stdexcept>

#include "nn/diffusers_weights.h"

namespace sdvsr {

namespace {

// down_block_res_samples[i] + down_block_additional_residuals[i]; a global-pooled
// ControlNet residual [N, C, 1, 1] broadcasts over H, W as in PyTorch.
Tensor add_residual(Backend& be, const Tensor& x, const Tensor& r, const std::string& what) {
  if (x.shape() == r.shape()) return be.add(x, r);
  if (r.dim() == 4 && r.size(0) == x.size(0) && r.size(1) == x.size(1) && r.size(2) == 1 &&
      r.size(3) == 1)
    return be.add_channel_bias(x, r.reshape({r.size(0), r.size(1)}));
  throw std::runtime_error("UNet2DConditionModel: " + what + " has shape " + shape_str(r.shape()) +
                           " but the U-Net tensor it is added to is " + shape_str(x.shape()));
}

}  // namespace

std::unique_ptr<UNet2DConditionModel> UNet2DConditionModel::load(const std::string& folder,
                                                                 Backend& be) {
  ModelConfig cfg = ModelConfig::load(folder + "/config.json");
  auto store = nn::open_diffusers_weights(folder);
  auto model = std::make_unique<UNet2DConditionModel>(cfg, WeightScope(store), be);
  store->finish();
  return model;
}

UNet2DConditionModel::UNet2DConditionModel(const ModelConfig& cfg, WeightScope weights, Backend& be)
    : UNet2DConditionModel(cfg, nn::parse_encoder_spec(cfg, nn::ModelKind::kUNet), weights, be) {}

UNet2DConditionModel::UNet2DConditionModel(const ModelConfig& cfg, const nn::UNetEncoderSpec& enc,
                                           WeightScope weights, Backend& be)
    : be_(&be), encoder_(enc, weights, be), decoder_(nn::parse_decoder_spec(cfg, enc)) {
  // Channel bookkeeping of diffusers' up path: stage i works at reversed
  // channels[i], takes the previous stage's output and, in its last ResNet, the
  // skip of level i+1 (clamped to the deepest level).
  std::vector<int64_t> rev(enc.channels.rbegin(), enc.channels.rend());
  const size_t n = rev.size();
  int64_t prev_out = rev[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = rev[i];
    const int64_t in = rev[std::min(i + 1, n - 1)];
    up_.emplace_back(weights.sub("up_blocks").sub(static_cast<int64_t>(i)), be, in, prev_out, out,
                     decoder_.up[i], i + 1 != n);
    prev_out = out;
  }
  conv_norm_out_ = nn::GroupNorm(weights.sub("conv_norm_out"), be, enc.groups, enc.channels[0], enc.eps);
  const int k = decoder_.conv_out_kernel;
  conv_out_ = nn::Conv2d(weights.sub("conv_out"), be, enc.channels[0], decoder_.out_channels, k, 1,
                         (k - 1) / 2);
}

Tensor UNet2DConditionModel::time_embedding(float timestep, int64_t batch,
                                            std::optional<int64_t> class_label) const {
  return encoder_.time_embedding(timestep, batch, class_label);
}

Tensor UNet2DConditionModel::forward(const Tensor& sample, float timestep,
                                     const Tensor& encoder_hidden_states,
                                     const ControlNetResiduals* residuals,
                                     std::optional<int64_t> class_label) {
  encoder_.check_inputs(sample, encoder_hidden_states);
  return forward_impl(sample, time_embedding(timestep, sample.size(0), class_label),
                      encoder_hidden_states, residuals, nullptr);
}

Tensor UNet2DConditionModel::forward(const Tensor& sample, float timestep,
                                     const Tensor& encoder_hidden_states,
                                     ControlNetResiduals&& residuals) {
  encoder_.check_inputs(sample, encoder_hidden_states);
  return forward_timed(sample, time_embedding(timestep, sample.size(0)), encoder_hidden_states,
                       std::move(residuals));
}

Tensor UNet2DConditionModel::forward_timed(const Tensor& sample, const Tensor& emb,
                                           const Tensor& encoder_hidden_states,
                                           const ControlNetResiduals* residuals) {
  return forward_impl(sample, emb, encoder_hidden_states, residuals, nullptr);
}

Tensor UNet2DConditionModel::forward_timed(const Tensor& sample, const Tensor& emb,
                                           const Tensor& encoder_hidden_states,
                                           ControlNetResiduals&& residuals) {
  ControlNetResiduals owned = std::move(residuals);
  return forward_impl(sample, emb, encoder_hidden_states, &owned, &owned);
}

Tensor UNet2DConditionModel::forward_impl(const Tensor& sample, const Tensor& emb,
                                          const Tensor& encoder_hidden_states,
                                          const ControlNetResiduals* residuals,
                                          ControlNetResiduals* consumed) {
  Backend& be = *be_;
  encoder_.check_inputs(sample, encoder_hidden_states);
  const int64_t batch = sample.size(0);

  // Sides not divisible by 2^upsamplers: every upsampler takes its output size
  // from the skip connection the next stage consumes (diffusers' upsample_size).
  const int64_t factor = int64_t{1} << encoder_.num_downsamplers();
  const bool forward_upsample_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;

  if (emb.dim() != 2 || emb.size(0) != batch)
    throw std::runtime_error("UNet2DConditionModel: the time embedding is " +
                             shape_str(emb.shape()) + ", not one row per sample of " +
                             shape_str(sample.shape()));
  std::vector<Tensor> skips;
  Tensor x = encoder_.down(encoder_.conv_in(sample), emb, encoder_hidden_states, skips);

  if (residuals) {
    if (residuals->down.size() != skips.size() || !residuals->mid.defined())
      throw std::runtime_error("UNet2DConditionModel: ControlNet residuals need " +
                               std::to_string(skips.size()) + " down residuals and a mid residual, got " +
                               std::to_string(residuals->down.size()) +
                               (residuals->mid.defined() ? " and a mid" : " and no mid"));
    for (size_t i = 0; i < skips.size(); ++i)
      skips[i] = add_residual(be, skips[i], residuals->down[i],
                              "down residual " + std::to_string(i));
    if (consumed) consumed->down.clear();
  }
  x = encoder_.mid(x, emb, encoder_hidden_states);
  if (residuals) x = add_residual(be, x, residuals->mid, "mid residual");
  if (consumed) consumed->mid = Tensor();

  for (size_t i = 0; i < up_.size(); ++i) {
    const nn::UpStage& stage = up_[i];
    if (static_cast<int>(skips.size()) < stage.num_resnets())
      throw std::runtime_error("UNet2DConditionModel: up block " + std::to_string(i) +
                               " needs more skip connections than the down path produced");
    int64_t up_h = 2 * x.size(2), up_w = 2 * x.size(3);
    const size_t remaining = skips.size() - stage.num_resnets();
    if (stage.has_upsampler() && forward_upsample_size && remaining > 0) {
      up_h = skips[remaining - 1].size(2);
      up_w = skips[remaining - 1].size(3);
    }
    x = stage.forward(x, skips, emb, encoder_hidden_states, up_h, up_w);
  }

  return conv_out_.forward_normed(conv_norm_out_.with_act(encoder_.spec().act), x);
}

}  // namespace sdvsr
