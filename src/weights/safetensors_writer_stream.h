#pragma once
// A safetensors writer for files too large to assemble in memory: the header
// (names, dtypes, shapes, offsets) is written first from the declared tensor
// list, then each tensor's bytes are appended in declaration order, in as many
// pieces as the caller likes. The file appears under its name only when
// finish() succeeds (temporary "<path>.tmp-<pid>", then rename).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "weights/safetensors.h"

namespace sdvsr {

struct StreamTensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

class SafetensorsStreamWriter {
 public:
  // Creates the temporary file and writes the header. Throws naming `path`.
  SafetensorsStreamWriter(std::string path, std::vector<StreamTensorSpec> tensors,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();  // an unfinished file is removed
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // The tensor whose bytes come next, and how many of its bytes are still due.
  // (Tensors with no bytes are skipped automatically.)
  bool done() const { return next_ >= tensors_.size(); }
  const StreamTensorSpec& current() const;
  uint64_t remaining_bytes() const { return remaining_; }

  // Appends `n` bytes (little-endian element data) to the current tensor;
  // a piece may not run past the current tensor's end.
  void append(const void* bytes, size_t n);

  // Checks every tensor was written completely, closes and renames into place.
  void finish();

 private:
  void advance();  // moves to the next tensor that still needs bytes
  [[noreturn]] void fail(const std::string& problem);

  std::string path_, tmp_path_;
  std::vector<StreamTensorSpec> tensors_;
  std::vector<uint64_t> sizes_;
  size_t next_ = 0;
  uint64_t remaining_ = 0;
  FILE* file_ = nullptr;
  bool finished_ = false;
};

}  // namespace sdvsr
