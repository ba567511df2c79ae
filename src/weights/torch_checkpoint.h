#pragma once
// PyTorch zip checkpoints (.pth, diffusers/transformers .bin) read through libzip
// with a strict unpickler: only the opcodes and globals a plain state_dict
// needs; anything else is refused naming the file and the global. Nothing is
// ever executed or imported. Legacy (non-zip) checkpoints are refused.
#include <map>
#include <string>

#include "runtime/tensor.h"

namespace sdvsr {

// The state_dict as float32 tensors (F16/BF16/F64 and integer storages converted).
// Throws std::runtime_error("<path>: <problem>") on anything unexpected.
std::map<std::string, Tensor> load_torch_checkpoint(const std::string& path);

}  // namespace sdvsr
