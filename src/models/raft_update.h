#pragma once
// RAFT's per-iteration update: motion encoder, two ConvGRU cells (1x5 then
// 5x1), flow head; and the mask predictor used for convex upsampling.
#include "models/raft_config.h"
#include "models/raft_layers.h"

namespace sdvsr::raft {

class MotionEncoder {
 public:
  MotionEncoder(const WeightScope& s, const RaftConfig& cfg);
  // flow [N,2,h,w], corr [N,324,h,w] -> [N, out_channels, h, w] (features then the flow itself)
  Tensor forward(Backend& be, const Tensor& flow, const Tensor& corr) const;

 private:
  ConvNormAct convcorr1_, convcorr2_, convflow1_, convflow2_, conv_;
};

// h <- (1 - z) h + z q with z, r, q from convs over [h, x].
class ConvGRU {
 public:
  ConvGRU(const WeightScope& s, int64_t hidden, int64_t input, int kh, int kw);
  Tensor forward(Backend& be, const Tensor& h, const Tensor& x) const;

 private:
  Conv convz_, convr_, convq_;
};

class UpdateBlock {
 public:
  UpdateBlock(const WeightScope& s, const RaftConfig& cfg);
  struct Result {
    Tensor hidden;      // [N, hidden, h, w]
    Tensor delta_flow;  // [N, 2, h, w]
  };
  Result forward(Backend& be, const Tensor& hidden, const Tensor& context, const Tensor& corr,
                 const Tensor& flow) const;

 private:
  MotionEncoder motion_;
  ConvGRU gru1_, gru2_;
  Conv head1_, head2_;
};

// m = multiplier * conv1x1(relu(conv3x3(h))) -> [N, 9*8*8, h, w]
class MaskPredictor {
 public:
  MaskPredictor(const WeightScope& s, const RaftConfig& cfg);
  Tensor forward(Backend& be, const Tensor& hidden) const;

 private:
  ConvNormAct convrelu_;
  Conv conv_;
  float multiplier_;
};

}  // namespace sdvsr::raft
