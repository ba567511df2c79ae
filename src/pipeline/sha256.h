#pragma once
// SHA-256 (FIPS 180-4): keys the prompt-embedding cache by the text-encoder file.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdvsr {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // The digest of everything passed to update(); the object is spent afterwards.
  std::array<uint8_t, 32> finish();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string to_hex(const std::array<uint8_t, 32>& digest);
std::string sha256_hex(const std::string& bytes);
// Streams the file; throws std::runtime_error naming it when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace sdvsr
