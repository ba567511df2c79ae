#pragma once
// Everything a stream needs from a model folder in the original's layout
// (unet/, controlnet/, vae/, scheduler/, prompt embeddings or text_encoder/,
// RAFT weights), loaded once and shared by every stream.
#include <memory>
#include <string>

#include "models/controlnet.h"
#include "models/raft.h"
#include "models/temporal_autoencoder_tiny.h"
#include "models/unet2d_condition.h"
#include "pipeline/ddim_scheduler.h"
#include "runtime/backend.h"

namespace sdvsr {

struct ModelPaths {
  std::string model_dir;       // the --model_id folder
  std::string unet_dir;        // --unet_pretrained_weight, else <model_dir>/unet
  std::string controlnet_dir;  // --controlnet_pretrained_weight, else <model_dir>/controlnet
  std::string vae_dir;         // --temporal_vae_pretrained_weight, else <model_dir>/vae
  std::string raft_path;       // --raft, else the first .pth/.safetensors in <model_dir>/raft/
  // A hub download that skipped text_encoder/ because its embedding is cached:
  // the sha256 of the text encoder's weights, which keys that cache entry.
  std::string text_encoder_sha256;
};

// Fills the defaults the way inference.py's load_component does; throws naming
// the folder when something required is missing.
ModelPaths resolve_model_paths(ModelPaths given);

struct ModelBundle {
  std::unique_ptr<UNet2DConditionModel> unet;
  std::unique_ptr<ControlNetModel> controlnet;
  std::unique_ptr<TemporalAutoencoderTiny> vae;
  std::unique_ptr<Raft> raft;
  std::string raft_path;  // its weights, for a second RAFT (FlowAhead)
  std::unique_ptr<DdimScheduler> scheduler;
  Tensor prompt_embeds;  // [1, 77, cross_attention_dim]
  int vae_scale_factor = 4;
};

std::unique_ptr<ModelBundle> load_model_bundle(const ModelPaths& paths, Backend& be);

}  // namespace sdvsr
