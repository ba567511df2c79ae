// safetensors reader: open the input as a file and read every tensor.
// Accepted files must describe tensors that lie inside the data section,
// since the mapping is not guarded by AddressSanitizer.
#include <cmath>
#include <cstring>

#include "fuzz_input.h"
#include "weights/safetensors.h"

using namespace sdvsr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_temp_file(data, size, ".safetensors");
  fuzz::expect_only_runtime_errors([&] {
    auto file = SafetensorsFile::open(path);
    FUZZ_CHECK(size >= 8);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
    const uint64_t data_size = size - 8 - header_len;
    // Accepted tensors cover the data section exactly (no hole, no overlap).
    uint64_t covered = 0;
    for (const TensorInfo& info : file->tensors()) covered += info.end - info.begin;
    FUZZ_CHECK(covered == data_size);
    for (const TensorInfo& info : file->tensors()) {
      FUZZ_CHECK(info.begin <= info.end && info.end <= data_size);
      FUZZ_CHECK(info.end - info.begin ==
                 static_cast<uint64_t>(shape_numel(info.shape)) * dtype_size(info.dtype));
      FUZZ_CHECK(file->raw(info.name) == file->raw(info.name));
      const Tensor t = file->tensor(info.name);
      FUZZ_CHECK(t.shape() == info.shape);
      // Touch every element so a bad view would fault.
      volatile float sink = 0;
      for (int64_t i = 0; i < t.numel(); ++i) sink = sink + t[i];
      if (info.dtype == DType::kF32) {
        // A float32 tensor reads the file's bytes unchanged.
        const uint8_t* src = data + 8 + header_len + info.begin;
        for (int64_t i = 0; i < t.numel(); ++i) FUZZ_CHECK(std::memcmp(&t.data()[i], src + 4 * i, 4) == 0);
      }
      try {
        auto ints = file->int64_values(info.name);
        FUZZ_CHECK(static_cast<int64_t>(ints.size()) == t.numel());
      } catch (const std::runtime_error&) {  // float dtypes are refused here
      }
      file->release_pages(info.name);
    }
    for (const auto& [key, value] : file->metadata()) FUZZ_CHECK(!key.empty() || value.size() < size);
    (void)file->has("missing");
    file->info("no such tensor");  // must throw runtime_error
  });
  return 0;
}
