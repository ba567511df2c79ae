#pragma once
// Injected initial latents (--noise FILE): a safetensors file whose tensor
// "<sequence>/frame{k}.init_latents", or else "frame{k}.init_latents", is the
// initial latent of frame k (0-based) of that sequence - the format of the
// golden end-to-end files (tiny/cases/e2e_seq_a.safetensors).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "runtime/tensor.h"

namespace sdvsr {

class SafetensorsFile;

class NoiseFile {
 public:
  // Opens and validates the file: it must hold at least one "*.init_latents" tensor.
  // Throws std::runtime_error naming the file otherwise.
  static NoiseFile open(const std::string& path);

  // The latent for frame k of `sequence` (a copy the caller may modify), or
  // nullopt when the file has neither key.
  std::optional<Tensor> latent_for(const std::string& sequence, int64_t k) const;

  const std::string& path() const;

 private:
  explicit NoiseFile(std::shared_ptr<SafetensorsFile> file) : file_(std::move(file)) {}
  std::shared_ptr<SafetensorsFile> file_;
};

}  // namespace sdvsr
