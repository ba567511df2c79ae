#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "runtime/file_backed_memory.h"
#include "weights/dtype_convert.h"

namespace sdvsr {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB, as the reference reader allows

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F64", DType::kF64},
      {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16},   {"I8", DType::kI8},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  for (const auto& [name, d] : kNames)
    if (s == name) {
      *out = d;
      return true;
    }
  return false;
}

bool is_integer(DType d) {
  switch (d) {
    case DType::kI64:
    case DType::kI32:
    case DType::kI16:
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return true;
    default:
      return false;
  }
}

// One entry of the header, checked field by field.
TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e) {
  const std::string where = "tensor '" + name + "'";
  if (!e.is_object()) fail(path, where + " header entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!e.contains(field)) fail(path, where + " has no '" + field + "'");
  TensorInfo info;
  info.name = name;
  if (!e["dtype"].is_string()) fail(path, where + " dtype is not a string");
  if (!parse_dtype(e["dtype"].get<std::string>(), &info.dtype))
    fail(path, where + " has unsupported dtype '" + e["dtype"].get<std::string>() + "'");
  const auto& shape = e["shape"];
  if (!shape.is_array()) fail(path, where + " shape is not a list");
  uint64_t numel = 1;
  for (const auto& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      fail(path, where + " shape has an entry that is not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / v)
      fail(path, where + " shape is too large");
    numel *= v;
    info.shape.push_back(static_cast<int64_t>(v));
  }
  const auto& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    fail(path, where + " data_offsets is not a pair of non-negative integers");
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  if (info.end < info.begin) fail(path, where + " data_offsets end before they begin");
  if (info.end - info.begin != numel * dtype_size(info.dtype))
    fail(path, where + " holds " + std::to_string(info.end - info.begin) + " bytes but " +
                   e["dtype"].get<std::string>() + " " + shape_str(info.shape) + " needs " +
                   std::to_string(numel * dtype_size(info.dtype)));
  return info;
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF64:
    case DType::kI64: return 8;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16: return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool: return 1;
  }
  return 0;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->self_ = f;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(size) + " bytes, too short for a safetensors header");
  }
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) fail(path, std::string("cannot mmap: ") + std::strerror(err));
  f->map_ = static_cast<const uint8_t*>(m);
  f->map_size_ = size;
  register_file_mapping(f->map_, f->map_size_);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | f->map_[i];
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds 100 MiB");
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                   std::to_string(size) + "-byte file");
  const char* hdr = reinterpret_cast<const char*>(f->map_ + 8);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(hdr, hdr + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(path, "header is not a JSON object");

  f->data_ = f->map_ + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail(path, "__metadata__ is not an object");
      for (auto m2 = it.value().begin(); m2 != it.value().end(); ++m2) {
        if (!m2.value().is_string())
          fail(path, "__metadata__ value '" + m2.key() + "' is not a string");
        f->metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    TensorInfo info = parse_entry(path, it.key(), it.value());
    if (info.end > data_size)
      fail(path, "tensor '" + info.name + "' data_offsets [" + std::to_string(info.begin) + ", " +
                     std::to_string(info.end) + ") lie outside the " + std::to_string(data_size) +
                     "-byte data section");
    f->infos_.push_back(std::move(info));
  }

  // As the reference implementation validates: sorted by offsets, each tensor
  // starts where the one before it ended (no overlap, no hole), and together
  // they cover the data section exactly.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& i : f->infos_) by_offset.push_back(&i);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const TensorInfo& t = *by_offset[i];
    if (t.begin < covered)
      fail(path, "tensors '" + by_offset[i - 1]->name + "' and '" + t.name +
                     "' overlap in the data section");
    if (t.begin > covered)
      fail(path, "bytes [" + std::to_string(covered) + ", " + std::to_string(t.begin) +
                     ") of the data section before tensor '" + t.name + "' belong to no tensor");
    covered = t.end;
  }
  if (covered != data_size)
    fail(path, "the data section holds " + std::to_string(data_size) + " bytes but its tensors cover " +
                   std::to_string(covered));

  for (size_t i = 0; i < f->infos_.size(); ++i) f->index_[f->infos_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (!map_) return;
  unregister_file_mapping(map_);
  munmap(const_cast<uint8_t*>(map_), map_size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(path_, "no tensor '" + name + "'");
  return infos_[it->second];
}

const uint8_t* SafetensorsFile::raw(const std::string& name) const {
  return data_ + info(name).begin;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const uint8_t* src = data_ + ti.begin;
  const int64_t n = shape_numel(ti.shape);
  if (ti.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    if (auto owner = self_.lock()) return Tensor::borrow(ti.shape, reinterpret_cast<const float*>(src), owner);
  }
  Tensor out = Tensor::uninitialized(ti.shape);
  convert_to_float(ti.dtype, src, n, out.data());
  if (ti.dtype != DType::kF32) release_pages(name);  // the float32 copy is the only one kept
  return out;
}

std::vector<int64_t> SafetensorsFile::int64_values(const std::string& name) const {
  const TensorInfo& ti = info(name);
  if (!is_integer(ti.dtype))
    fail(path_, "tensor '" + name + "' is " + dtype_name(ti.dtype) + ", not an integer dtype");
  const int64_t n = shape_numel(ti.shape);
  std::vector<int64_t> out(static_cast<size_t>(n));
  convert_to_int64(ti.dtype, data_ + ti.begin, n, out.data());
  return out;
}

void SafetensorsFile::release_pages(const std::string& name) const {
  const TensorInfo& ti = info(name);
  if (ti.end == ti.begin) return;
  // The mapping is private and read-only: dropped pages are re-read from the file on access.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t lo = reinterpret_cast<uintptr_t>(data_ + ti.begin) / page * page;
  uintptr_t hi = (reinterpret_cast<uintptr_t>(data_ + ti.end) + page - 1) / page * page;
  madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "a tensor may not be named '__metadata__'");
    if (!t.defined()) fail(path, "tensor '" + name + "' is undefined");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');

  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, std::string("cannot create: ") + std::strerror(errno));
    uint8_t len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, t] : tensors)
      if (t.numel() > 0)
        out.write(reinterpret_cast<const char*>(t.data()),
                  static_cast<std::streamsize>(t.numel() * sizeof(float)));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      fail(tmp, "write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail(path, std::string("cannot rename the temporary file into place: ") + std::strerror(err));
  }
}

}  // namespace sdvsr
