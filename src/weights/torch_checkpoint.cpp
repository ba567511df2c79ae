#include "weights/torch_checkpoint.h"

#include <zip.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

#include "weights/dtype_convert.h"
#include "weights/state_dict_pickle.h"

namespace sdvsr {

namespace {

using torch_pickle::TensorRef;

constexpr uint64_t kMaxPickleBytes = 512ull << 20;

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;

class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    int err = 0;
    zip_.reset(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err));
    if (!zip_) {
      if (err == ZIP_ER_NOZIP && starts_like_pickle(path))
        fail("legacy (non-zip) PyTorch checkpoint format is not supported; re-save with "
             "torch.save(..., _use_new_zipfile_serialization=True)");
      zip_error_t ze;
      zip_error_init_with_code(&ze, err);
      std::string msg = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      fail("not a readable PyTorch zip checkpoint (" + msg + ")");
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw std::runtime_error(path_ + ": " + problem);
  }

  // The one '<name>/data.pkl' member gives the archive's top folder.
  std::string top_folder() const {
    std::string found;
    const zip_int64_t n = zip_get_num_entries(zip_.get(), 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(zip_.get(), static_cast<zip_uint64_t>(i), 0);
      if (!name) continue;
      std::string s(name);
      // Nothing is extracted, but such names only come from crafted archives.
      if (s.empty() || s.front() == '/' || s == ".." || s.rfind("../", 0) == 0 ||
          s.find("/../") != std::string::npos || s.find('\\') != std::string::npos ||
          (s.size() >= 3 && s.compare(s.size() - 3, 3, "/..") == 0))
        fail("archive member name '" + s + "' is not a plain relative path (absolute, '..' or '\\')");
      const size_t slash = s.find('/');
      if (slash == std::string::npos || s.substr(slash + 1) != "data.pkl") continue;
      if (!found.empty()) fail("archive holds more than one data.pkl");
      found = s.substr(0, slash + 1);
    }
    if (found.empty()) fail("archive has no '<name>/data.pkl' member: not a torch.save checkpoint");
    return found;
  }

  bool has(const std::string& member) const {
    return zip_name_locate(zip_.get(), member.c_str(), 0) >= 0;
  }

  uint64_t size_of(const std::string& member) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(zip_.get(), member.c_str(), 0, &st) != 0)
      fail("archive has no member '" + member + "'");
    if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE))
      fail("archive member '" + member + "' has no recorded size");
    // Deflate expands at most ~1032x: a larger claim is a zip bomb or a lie,
    // and is refused before any memory is set aside for it.
    if (st.size > st.comp_size * 1100 + 4096)
      fail("archive member '" + member + "' claims " + std::to_string(st.size) + " bytes from " +
           std::to_string(st.comp_size) + " compressed");
    return st.size;
  }

  // Exactly `size` bytes of `member` into `dst`; reading to the end lets libzip check the CRC.
  void read(const std::string& member, uint8_t* dst, uint64_t size) const {
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> f(zip_fopen(zip_.get(), member.c_str(), 0),
                                                        zip_fclose);
    if (!f) fail("cannot open archive member '" + member + "': " + zip_strerror(zip_.get()));
    uint64_t done = 0;
    while (done < size) {
      const zip_int64_t got = zip_fread(f.get(), dst + done, size - done);
      if (got < 0) fail("cannot read archive member '" + member + "': " + zip_file_strerror(f.get()));
      if (got == 0) fail("archive member '" + member + "' is truncated");
      done += static_cast<uint64_t>(got);
    }
    uint8_t extra;
    const zip_int64_t more = zip_fread(f.get(), &extra, 1);
    if (more < 0) fail("cannot read archive member '" + member + "': " + zip_file_strerror(f.get()));
    if (more > 0) fail("archive member '" + member + "' is longer than its recorded size");
  }

 private:
  static bool starts_like_pickle(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char c = 0;
    return in.get(c) && static_cast<uint8_t>(c) == 0x80;  // pickle PROTO opcode
  }

  std::string path_;
  ZipPtr zip_;
};

bool is_contiguous(const TensorRef& t) {
  int64_t expected = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expected) return false;
    expected *= t.size[d];
  }
  return true;
}

// Gathers a (possibly strided) view of a storage into a new float32 tensor.
Tensor gather(const TensorRef& t, const uint8_t* storage) {
  Tensor out = Tensor::uninitialized(t.size);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const size_t es = dtype_size(t.storage.dtype);
  float* dst = out.data();
  if (is_contiguous(t)) {
    convert_to_float(t.storage.dtype, storage + static_cast<size_t>(t.offset) * es, n, dst);
    return out;
  }
  const size_t dims = t.size.size();
  std::vector<int64_t> index(dims, 0);
  int64_t src = t.offset;
  for (int64_t i = 0; i < n; ++i) {
    convert_to_float(t.storage.dtype, storage + static_cast<size_t>(src) * es, 1, dst + i);
    for (size_t d = dims; d-- > 0;) {  // odometer step, last dimension fastest
      if (++index[d] < t.size[d]) {
        src += t.stride[d];
        break;
      }
      src -= (t.size[d] - 1) * t.stride[d];
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

std::map<std::string, Tensor> load_torch_checkpoint(const std::string& path) {
  Archive zip(path);
  const std::string top = zip.top_folder();

  if (zip.has(top + "byteorder")) {
    const uint64_t n = zip.size_of(top + "byteorder");
    if (n > 16) zip.fail("byteorder member is not 'little' or 'big'");
    std::string order(n, '\0');
    zip.read(top + "byteorder", reinterpret_cast<uint8_t*>(order.data()), n);
    if (order != "little") zip.fail("byteorder '" + order + "' is not supported (only little-endian)");
  }

  const uint64_t pkl_size = zip.size_of(top + "data.pkl");
  if (pkl_size > kMaxPickleBytes) zip.fail("data.pkl is larger than 512 MiB");
  std::vector<uint8_t> pkl(pkl_size);
  zip.read(top + "data.pkl", pkl.data(), pkl_size);
  const auto entries = torch_pickle::read_state_dict(pkl.data(), pkl.size(), path);
  pkl = {};

  // Tensors grouped by storage so each storage is read once and dropped after use.
  std::map<std::string, std::vector<size_t>> by_storage;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& s = entries[i].second.storage;
    auto& group = by_storage[s.key];
    if (!group.empty()) {
      const auto& first = entries[group.front()].second.storage;
      if (first.dtype != s.dtype || first.numel != s.numel)
        zip.fail("storage '" + s.key + "' is described with two different dtypes or sizes");
    }
    group.push_back(i);
  }

  std::vector<Tensor> tensors(entries.size());
  std::vector<uint8_t> bytes;
  for (const auto& [key, group] : by_storage) {
    const auto& s = entries[group.front()].second.storage;
    const std::string member = top + "data/" + key;
    const uint64_t need = static_cast<uint64_t>(s.numel) * dtype_size(s.dtype);
    const uint64_t have = zip.size_of(member);
    if (have != need)
      zip.fail("storage '" + key + "' holds " + std::to_string(have) + " bytes but " +
               std::to_string(s.numel) + " " + dtype_name(s.dtype) + " elements need " +
               std::to_string(need));
    const TensorRef& first = entries[group.front()].second;
    if (group.size() == 1 && s.dtype == DType::kF32 && first.offset == 0 &&
        shape_numel(first.size) == s.numel && is_contiguous(first)) {
      // The usual case: one float32 tensor owns its whole storage; read it in place.
      Tensor t = Tensor::uninitialized(first.size);
      if (need) zip.read(member, reinterpret_cast<uint8_t*>(t.data()), need);
      tensors[group.front()] = std::move(t);
      continue;
    }
    bytes.resize(need);
    if (need) zip.read(member, bytes.data(), need);
    for (size_t i : group) tensors[i] = gather(entries[i].second, bytes.data());
    bytes = {};
  }

  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < entries.size(); ++i) out[entries[i].first] = std::move(tensors[i]);
  return out;
}

}  // namespace sdvsr
