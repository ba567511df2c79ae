#pragma once
// Reads a diffusers 0.27.2 UNet2DConditionModel / ControlNetModel config.json
// into the per-stage settings the blocks are built from, with diffusers'
// constructor defaults, its list broadcasting and reversal rules, and clear
// errors for switches this port does not implement.
#include <optional>
#include <string>
#include <vector>

#include "nn/unet_blocks.h"
#include "weights/model_config.h"

namespace sdvsr::nn {

enum class ModelKind { kUNet, kControlNet };

// Class-label embedding added to the time embedding (x4 upscaler's noise_level).
enum class ClassEmbedKind { kNone, kTable, kTimestep };

struct UNetEncoderSpec {
  std::string origin;  // config path, for messages
  int64_t in_channels = 4;
  int conv_in_kernel = 3;
  bool center_input_sample = false;

  // Time embedding: sinusoid of width time_proj_dim, then the MLP to time_embed_dim.
  int64_t time_proj_dim = 320;
  int64_t time_embed_dim = 1280;
  bool flip_sin_to_cos = true;
  float freq_shift = 0;
  Activation act = Activation::kSiLU;  // act_fn: MLP, ResNets, conv_out
  std::optional<Activation> timestep_post_act;
  std::optional<Activation> time_embed_act;  // time_embedding_act_fn (applied after class emb)
  ClassEmbedKind class_kind = ClassEmbedKind::kNone;
  int64_t num_class_embeds = 0;
  Activation class_act = Activation::kSiLU;  // MLP activation of a "timestep" class embedding

  std::vector<int64_t> channels;          // block_out_channels
  std::vector<std::string> down_types;    // down_block_types
  std::vector<StageSettings> down;        // one per down block
  int downsample_padding = 1;
  std::optional<StageSettings> mid;       // absent when mid_block_type is null
  int64_t groups = 32;
  float eps = 1e-5f;
};

struct UNetDecoderSpec {
  std::vector<std::string> up_types;
  std::vector<StageSettings> up;  // one per up block (lists already reversed)
  int conv_out_kernel = 3;
  int64_t out_channels = 4;
};

UNetEncoderSpec parse_encoder_spec(const ModelConfig& cfg, ModelKind kind);
UNetDecoderSpec parse_decoder_spec(const ModelConfig& cfg, const UNetEncoderSpec& enc);

}  // namespace sdvsr::nn
