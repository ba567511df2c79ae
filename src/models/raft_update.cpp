#include "models/raft_update.h"

namespace sdvsr::raft {

MotionEncoder::MotionEncoder(const WeightScope& s, const RaftConfig& cfg)
    : convcorr1_(ConvNormAct::load(s.sub("convcorr1"), NormKind::kNone, cfg.corr_channels(),
                                   cfg.motion_corr_layers[0], 1, 1, true)),
      convcorr2_(ConvNormAct::load(s.sub("convcorr2"), NormKind::kNone, cfg.motion_corr_layers[0],
                                   cfg.motion_corr_layers[1], 3, 1, true)),
      convflow1_(ConvNormAct::load(s.sub("convflow1"), NormKind::kNone, 2,
                                   cfg.motion_flow_layers[0], 7, 1, true)),
      convflow2_(ConvNormAct::load(s.sub("convflow2"), NormKind::kNone, cfg.motion_flow_layers[0],
                                   cfg.motion_flow_layers[1], 3, 1, true)),
      // Two channels fewer: the raw flow is appended to its output.
      conv_(ConvNormAct::load(s.sub("conv"), NormKind::kNone,
                              cfg.motion_corr_layers[1] + cfg.motion_flow_layers[1],
                              cfg.motion_out_channels - 2, 3, 1, true)) {}

Tensor MotionEncoder::forward(Backend& be, const Tensor& flow, const Tensor& corr) const {
  // Each pair of convolutions as one stack (the backend's layout kept between them).
  Tensor c = be.conv2d_stack(corr, {convcorr1_.stage(), convcorr2_.stage()}, nullptr);
  Tensor f = be.conv2d_stack(flow, {convflow1_.stage(), convflow2_.stage()}, nullptr);
  Tensor cf = conv_(be, be.concat({c, f}, 1));
  return be.concat({cf, flow}, 1);
}

ConvGRU::ConvGRU(const WeightScope& s, int64_t hidden, int64_t input, int kh, int kw)
    : convz_(Conv::load(s.sub("convz"), hidden + input, hidden, kh, kw, 1, kh / 2, kw / 2)),
      convr_(Conv::load(s.sub("convr"), hidden + input, hidden, kh, kw, 1, kh / 2, kw / 2)),
      convq_(Conv::load(s.sub("convq"), hidden + input, hidden, kh, kw, 1, kh / 2, kw / 2)) {}

Tensor ConvGRU::forward(Backend& be, const Tensor& h, const Tensor& x) const {
  Tensor hx = be.concat({h, x}, 1);
  Tensor z = be.activation(convz_(be, hx), Activation::kSigmoid);
  Tensor r = be.activation(convr_(be, hx), Activation::kSigmoid);
  Tensor q = be.activation(convq_(be, be.concat({be.mul(r, h), x}, 1)), Activation::kTanh);
  // (1 - z) as -z + 1: the same correctly rounded value.
  Tensor one_minus_z = be.add_scalar(be.scale(z, -1.0f), 1.0f);
  return be.add(be.mul(one_minus_z, h), be.mul(z, q));
}

UpdateBlock::UpdateBlock(const WeightScope& s, const RaftConfig& cfg)
    : motion_(s.sub("motion_encoder"), cfg),
      gru1_(s.sub("recurrent_block").sub("convgru1"), cfg.hidden_size, cfg.gru_input_channels(),
            1, 5),
      gru2_(s.sub("recurrent_block").sub("convgru2"), cfg.hidden_size, cfg.gru_input_channels(),
            5, 1),
      head1_(Conv::load_same(s.sub("flow_head").sub("conv1"), cfg.hidden_size,
                             cfg.flow_head_hidden, 3)),
      head2_(Conv::load_same(s.sub("flow_head").sub("conv2"), cfg.flow_head_hidden, 2, 3)) {}

UpdateBlock::Result UpdateBlock::forward(Backend& be, const Tensor& hidden, const Tensor& context,
                                         const Tensor& corr, const Tensor& flow) const {
  Tensor motion = motion_.forward(be, flow, corr);
  Tensor x = be.concat({context, motion}, 1);  // context first
  Tensor h = gru2_.forward(be, gru1_.forward(be, hidden, x), x);
  Tensor delta = be.conv2d_stack(h, {head1_.stage(Activation::kReLU), head2_.stage()}, nullptr);
  return {h, delta};
}

MaskPredictor::MaskPredictor(const WeightScope& s, const RaftConfig& cfg)
    : convrelu_(ConvNormAct::load(s.sub("convrelu"), NormKind::kNone, cfg.hidden_size,
                                  cfg.mask_hidden, 3, 1, true)),
      conv_(Conv::load_same(s.sub("conv"), cfg.mask_hidden,
                            9 * int64_t{cfg.downsample} * cfg.downsample, 1)),
      multiplier_(cfg.mask_multiplier) {}

Tensor MaskPredictor::forward(Backend& be, const Tensor& hidden) const {
  // The multiplier applies after the conv, bias included.
  return be.scale(be.conv2d_stack(hidden, {convrelu_.stage(), conv_.stage()}, nullptr),
                  multiplier_);
}

}  // namespace sdvsr::raft
