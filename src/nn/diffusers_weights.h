#pragma once
// Opens the weights of a diffusers model folder the way from_pretrained does
// for these models: diffusion_pytorch_model.safetensors, else the PyTorch
// checkpoint diffusion_pytorch_model.bin.
#include <memory>
#include <string>

#include "weights/weight_store.h"

namespace sdvsr::nn {

std::shared_ptr<WeightStore> open_diffusers_weights(const std::string& folder);

}  // namespace sdvsr::nn
