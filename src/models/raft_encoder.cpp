#include "models/raft_encoder.h"

namespace sdvsr::raft {

ResidualBlock::ResidualBlock(const WeightScope& s, NormKind norm, int64_t in, int64_t out,
                             int stride)
    : conv1_(ConvNormAct::load(s.sub("convnormrelu1"), norm, in, out, 3, stride, true)),
      conv2_(ConvNormAct::load(s.sub("convnormrelu2"), norm, out, out, 3, 1, true)) {
  if (stride != 1)
    downsample_ = ConvNormAct::load(s.sub("downsample"), norm, in, out, 1, stride, false);
}

Tensor ResidualBlock::forward(Backend& be, const Tensor& x) const {
  Tensor y = conv2_(be, conv1_(be, x));
  Tensor skip = downsample_ ? (*downsample_)(be, x) : x;
  return be.activation(be.add(skip, y), Activation::kReLU);
}

FeatureEncoder::FeatureEncoder(const WeightScope& s, NormKind norm,
                               const std::array<int64_t, 5>& layers,
                               const std::array<int, 4>& strides)
    : stem_(ConvNormAct::load(s.sub("convnormrelu"), norm, 3, layers[0], 7, strides[0], true)) {
  for (int layer = 1; layer <= 3; ++layer) {
    const WeightScope ls = s.sub("layer" + std::to_string(layer));
    blocks_.emplace_back(ls.sub(0), norm, layers[layer - 1], layers[layer], strides[layer]);
    blocks_.emplace_back(ls.sub(1), norm, layers[layer], layers[layer], 1);
  }
  out_ = Conv::load_same(s.sub("conv"), layers[3], layers[4], 1);
}

Tensor FeatureEncoder::forward(Backend& be, const Tensor& image) const {
  Tensor x = stem_(be, image);
  for (const ResidualBlock& block : blocks_) x = block.forward(be, x);
  return out_(be, x);
}

}  // namespace sdvsr::raft
