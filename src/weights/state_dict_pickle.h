#pragma once
// The strict unpickler behind load_torch_checkpoint: reads the data.pkl of a
// torch.save(state_dict) zip archive into tensor descriptions, without
// executing or importing anything. Only the opcodes and globals a plain
// state_dict uses are accepted.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "weights/safetensors.h"

namespace sdvsr::torch_pickle {

// A persistent id ('storage', <dtype>Storage, key, location, numel): the bytes
// live in the archive member data/<key>.
struct StorageRef {
  std::string key;
  DType dtype = DType::kF32;
  int64_t numel = 0;
};

// torch._utils._rebuild_tensor_v2's view of a storage (strides in elements).
struct TensorRef {
  StorageRef storage;
  int64_t offset = 0;
  Shape size;
  std::vector<int64_t> stride;
};

// The top-level dict's entries in pickle order; throws "<origin>: <problem>".
// Views are checked against their storage's numel here.
std::vector<std::pair<std::string, TensorRef>> read_state_dict(const uint8_t* data, size_t size,
                                                               const std::string& origin);

}  // namespace sdvsr::torch_pickle
