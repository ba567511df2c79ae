#include "nn/diffusers_weights.h"

#include <filesystem>
#include <stdexcept>

#include "weights/torch_checkpoint.h"

namespace sdvsr::nn {

std::shared_ptr<WeightStore> open_diffusers_weights(const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path st = fs::path(folder) / "diffusion_pytorch_model.safetensors";
  if (fs::exists(st)) return WeightStore::from_safetensors(st.string());
  const fs::path bin = fs::path(folder) / "diffusion_pytorch_model.bin";
  if (fs::exists(bin)) return WeightStore::from_tensors(load_torch_checkpoint(bin.string()), bin.string());
  throw std::runtime_error(folder + ": neither diffusion_pytorch_model.safetensors nor "
                                    "diffusion_pytorch_model.bin found");
}

}  // namespace sdvsr::nn
