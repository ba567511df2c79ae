#include "pipeline/model_bundle.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "pipeline/text_conditioning.h"
#include "weights/model_config.h"

namespace fs = std::filesystem;

namespace sdvsr {

namespace {

std::string first_raft_weights(const std::string& model_dir) {
  const fs::path dir = fs::path(model_dir) / "raft";
  std::vector<std::string> found;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".pth" || ext == ".safetensors"))
        found.push_back(e.path().string());
    }
  }
  if (found.empty())
    throw std::runtime_error(dir.string() +
                             ": no RAFT weights (.pth or .safetensors); pass --raft FILE");
  std::sort(found.begin(), found.end());
  // Prefer the original's .pth when both are present.
  auto pth = std::find_if(found.begin(), found.end(),
                          [](const std::string& p) { return fs::path(p).extension() == ".pth"; });
  return pth != found.end() ? *pth : found.front();
}

void require_folder(const std::string& dir, const std::string& what) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir + ": " + what + " folder not found");
}

}  // namespace

ModelPaths resolve_model_paths(ModelPaths p) {
  if (p.model_dir.empty()) throw std::runtime_error("no model folder given");
  require_folder(p.model_dir, "model");
  const fs::path root(p.model_dir);
  if (p.unet_dir.empty()) p.unet_dir = (root / "unet").string();
  if (p.controlnet_dir.empty()) p.controlnet_dir = (root / "controlnet").string();
  if (p.vae_dir.empty()) p.vae_dir = (root / "vae").string();
  require_folder(p.unet_dir, "unet");
  require_folder(p.controlnet_dir, "controlnet");
  require_folder(p.vae_dir, "vae");
  if (p.raft_path.empty()) p.raft_path = first_raft_weights(p.model_dir);
  if (!fs::is_regular_file(p.raft_path))
    throw std::runtime_error(p.raft_path + ": RAFT weight file not found");
  return p;
}

std::unique_ptr<ModelBundle> load_model_bundle(const ModelPaths& given, Backend& be) {
  const ModelPaths p = resolve_model_paths(given);
  auto m = std::make_unique<ModelBundle>();

  // vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1), as the pipeline computes it.
  const ModelConfig vae_cfg = ModelConfig::load((fs::path(p.vae_dir) / "config.json").string());
  const size_t stages = vae_cfg.has("block_out_channels")
                            ? vae_cfg.get_int_list("block_out_channels").size()
                            : vae_cfg.get_int_list("decoder_block_out_channels").size();
  if (stages != 3)
    vae_cfg.fail("block_out_channels", "has " + std::to_string(stages) +
                                           " stages, a VAE scale factor of 2^(stages-1); the "
                                           "pipeline's fixed bicubic x4 needs 4 (3 stages)");
  m->vae_scale_factor = 1 << (stages - 1);
  // The decoder upsamples by this per stage; only 2 gives back the x4 frame size.
  if (vae_cfg.get_float("upsampling_scaling_factor", 2.0) != 2.0)
    vae_cfg.fail("upsampling_scaling_factor", "must be 2 for the pipeline's x4 output");

  m->scheduler = std::make_unique<DdimScheduler>(DdimScheduler::from_config(ModelConfig::load(
      (fs::path(p.model_dir) / "scheduler" / "scheduler_config.json").string())));
  m->unet = UNet2DConditionModel::load(p.unet_dir, be);
  m->controlnet = ControlNetModel::load(p.controlnet_dir, be);
  m->vae = TemporalAutoencoderTiny::load(p.vae_dir, be);
  m->raft = Raft::load(p.raft_path, be);
  m->raft_path = p.raft_path;
  m->prompt_embeds = prompt_embeds_for(p.model_dir, be, p.text_encoder_sha256);
  return m;
}

}  // namespace sdvsr
