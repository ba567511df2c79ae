#include "weights/safetensors_writer_stream.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace sdvsr {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {
uint64_t byte_size(const StreamTensorSpec& t) {
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) throw std::runtime_error("negative dimension in " + t.name + " " + shape_str(t.shape));
    n *= static_cast<uint64_t>(d);
  }
  return n;
}
}  // namespace

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path, std::vector<StreamTensorSpec> tensors,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tensors_(std::move(tensors)) {
  // Header: offsets follow the declaration order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const StreamTensorSpec& t : tensors_) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      throw std::runtime_error(path_ + ": invalid or duplicate tensor name '" + t.name + "'");
    const uint64_t size = byte_size(t);
    sizes_.push_back(size);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned

  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw std::runtime_error(path_ + ": cannot create (" + std::strerror(errno) + ")");
  std::setvbuf(file_, nullptr, _IOFBF, size_t{1} << 20);
  uint8_t len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  if (std::fwrite(len, 1, 8, file_) != 8 || std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    fail(std::string("write failed (") + std::strerror(errno) + ")");
  next_ = 0;
  remaining_ = sizes_.empty() ? 0 : sizes_[0];
  if (remaining_ == 0) advance();
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (file_) std::fclose(file_);
  if (!finished_ && !tmp_path_.empty()) std::remove(tmp_path_.c_str());
}

void SafetensorsStreamWriter::fail(const std::string& problem) {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::remove(tmp_path_.c_str());
  throw std::runtime_error(path_ + ": " + problem);
}

const StreamTensorSpec& SafetensorsStreamWriter::current() const {
  if (done()) throw std::runtime_error(path_ + ": every tensor has been written already");
  return tensors_[next_];
}

void SafetensorsStreamWriter::advance() {
  while (remaining_ == 0 && next_ < tensors_.size()) {
    ++next_;
    remaining_ = next_ < tensors_.size() ? sizes_[next_] : 0;
  }
}

void SafetensorsStreamWriter::append(const void* bytes, size_t n) {
  if (!file_) throw std::runtime_error(path_ + ": writer is closed");
  if (n == 0) return;
  if (done()) fail("more data than the declared tensors hold");
  if (n > remaining_)
    fail("piece of " + std::to_string(n) + " bytes runs past the end of tensor '" + tensors_[next_].name +
         "' (" + std::to_string(remaining_) + " bytes left)");
  if (std::fwrite(bytes, 1, n, file_) != n) fail(std::string("write failed (") + std::strerror(errno) + ")");
  remaining_ -= n;
  if (remaining_ == 0) advance();
}

void SafetensorsStreamWriter::finish() {
  if (!file_) throw std::runtime_error(path_ + ": writer is closed");
  if (!done()) fail("tensor '" + tensors_[next_].name + "' is incomplete (" + std::to_string(remaining_) +
                    " bytes missing)");
  const bool ok = std::fflush(file_) == 0 && !std::ferror(file_);
  const int e = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) {
    std::remove(tmp_path_.c_str());
    throw std::runtime_error(path_ + ": write failed (" + std::strerror(e) + ")");
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int re = errno;
    std::remove(tmp_path_.c_str());
    throw std::runtime_error(path_ + ": cannot rename the temporary file into place (" + std::strerror(re) + ")");
  }
  finished_ = true;
}

}  // namespace sdvsr
