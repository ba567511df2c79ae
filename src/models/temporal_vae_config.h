#pragma once
// The TemporalAutoencoderTiny config.json, read with the upstream constructor's
// defaults and checked for the structure the temporal pairing needs
// (spec/temporal-vae.md section 1.1).
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "weights/model_config.h"

namespace sdvsr {

struct TemporalVaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<int64_t> encoder_block_out_channels{64, 64, 64, 64};
  std::vector<int64_t> decoder_block_out_channels{64, 64, 64, 64};
  std::vector<int64_t> num_encoder_blocks{1, 3, 3, 3};
  std::vector<int64_t> num_decoder_blocks{3, 3, 3, 1};
  std::string act_fn = "relu";
  std::string upsample_fn = "nearest";
  int64_t latent_channels = 4;
  int64_t upsampling_scaling_factor = 2;
  // Only the uint8 latent-quantisation helpers use these; kept for completeness.
  double latent_magnitude = 3.0;
  double latent_shift = 0.5;
  double scaling_factor = 1.0;
  double shift_factor = 0.0;

  Activation activation = Activation::kReLU;  // act_fn resolved
  bool upsample_bilinear = false;             // upsample_fn resolved

  // Reads every field (upstream defaults for absent keys) and validates; throws
  // naming the file and key. Informational disagreements go to stderr.
  static TemporalVaeConfig from(const ModelConfig& cfg);

  size_t num_stages() const { return decoder_block_out_channels.size(); }
  // diffusers: 2 ** (len(vae.config.block_out_channels) - 1), block_out_channels
  // being the decoder list the model re-registers.
  int vae_scale_factor() const { return 1 << (num_stages() - 1); }
};

}  // namespace sdvsr
