// PyTorch zip checkpoint reader: load_torch_checkpoint on the input as a file.
#include "fuzz_input.h"
#include "weights/torch_checkpoint.h"

using namespace sdvsr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_temp_file(data, size, ".pth");
  fuzz::expect_only_runtime_errors([&] {
    const auto state_dict = load_torch_checkpoint(path);
    for (const auto& [key, t] : state_dict) {
      volatile float sink = 0;
      for (int64_t i = 0; i < t.numel(); ++i) sink = sink + t[i];
    }
  });
  return 0;
}
