#pragma once
// RAFT's feature / context encoder: a stride-2 7x7 stem, three layers of two
// residual blocks, and a 1x1 output conv; the input is downsampled by 8.
#include <array>
#include <vector>

#include "models/raft_layers.h"

namespace sdvsr::raft {

// torchvision ResidualBlock: relu(skip(x) + convnormrelu2(convnormrelu1(x))),
// skip = 1x1 conv + norm (no ReLU) when strided, identity otherwise.
class ResidualBlock {
 public:
  ResidualBlock(const WeightScope& s, NormKind norm, int64_t in, int64_t out, int stride);
  Tensor forward(Backend& be, const Tensor& x) const;

 private:
  ConvNormAct conv1_, conv2_;
  std::optional<ConvNormAct> downsample_;
};

class FeatureEncoder {
 public:
  FeatureEncoder(const WeightScope& s, NormKind norm, const std::array<int64_t, 5>& layers,
                 const std::array<int, 4>& strides);
  // image [N, 3, H, W] -> [N, layers[4], H/8, W/8]
  Tensor forward(Backend& be, const Tensor& image) const;

 private:
  ConvNormAct stem_;
  std::vector<ResidualBlock> blocks_;  // layer1.0, layer1.1, layer2.0, ...
  Conv out_;
};

}  // namespace sdvsr::raft
