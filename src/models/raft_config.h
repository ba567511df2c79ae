#pragma once
// The architecture switches of torchvision's RAFT builder (_raft), with the
// values raft_large passes. The checkpoint carries no config; every tensor is
// still checked against the shape these imply.
#include <array>
#include <cstdint>

namespace sdvsr::raft {

struct RaftConfig {
  // Feature and context encoders: (stem, layer1, layer2, layer3, output) widths
  // and the strides of the stem and the first block of each layer.
  std::array<int64_t, 5> feature_layers{64, 64, 96, 128, 256};
  std::array<int64_t, 5> context_layers{64, 64, 96, 128, 256};
  std::array<int, 4> strides{2, 1, 2, 2};
  // Correlation pyramid.
  int corr_levels = 4;
  int corr_radius = 4;
  // Motion encoder.
  std::array<int64_t, 2> motion_corr_layers{256, 192};
  std::array<int64_t, 2> motion_flow_layers{128, 64};
  int64_t motion_out_channels = 128;
  // Recurrent block: ConvGRU cells with (1,5) then (5,1) kernels.
  int64_t hidden_size = 128;
  // Flow head and mask predictor.
  int64_t flow_head_hidden = 256;
  int64_t mask_hidden = 256;
  float mask_multiplier = 0.25f;
  // The encoders downsample by 2^(number of stride-2 stages) = 8; convex upsampling undoes it.
  int downsample = 8;

  int64_t corr_channels() const {
    const int64_t side = 2 * corr_radius + 1;
    return corr_levels * side * side;
  }
  int64_t context_channels() const { return context_layers[4] - hidden_size; }
  int64_t gru_input_channels() const { return motion_out_channels + context_channels(); }
};

}  // namespace sdvsr::raft
