#include "weights/hub_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace sdvsr::hub {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// os.path.expanduser for the "~/" prefix.
std::string expand_user(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) {
    const std::string home = env_or_empty("HOME");
    if (home.empty()) throw std::runtime_error(p + ": cannot expand '~', HOME is not set");
    return home + p.substr(1);
  }
  return p;
}

fs::path abs_normal(const fs::path& p) { return fs::absolute(p).lexically_normal(); }

bool all_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isdigit(c) || (c >= 'a' && c <= 'f');
  });
}

// Feeds a file through an OpenSSL digest, optionally after a prefix.
std::string digest_file_hex(const std::string& path, const EVP_MD* md, const std::string& prefix,
                            uint64_t* size_out = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for hashing");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1)
    throw std::runtime_error(path + ": cannot start a digest (OpenSSL)");
  if (!prefix.empty()) EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size());
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) {
      EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
    }
  }
  if (in.bad()) throw std::runtime_error(path + ": read error while hashing");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), out, &len);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += digits[out[i] >> 4];
    hex += digits[out[i] & 15];
  }
  if (size_out) *size_out = total;
  return hex;
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp.string() + ": cannot write");
    out << text;
    if (!out) throw std::runtime_error(tmp.string() + ": write failed");
  }
  fs::rename(tmp, path);
}

}  // namespace

std::string hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    const std::string v = env_or_empty(name);
    if (!v.empty()) return expand_user(v);
  }
  std::string home = env_or_empty("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env_or_empty("XDG_CACHE_HOME");
    const std::string base = xdg.empty() ? std::string("~/.cache") : xdg;
    home = (fs::path(base) / "huggingface").string();
  }
  return (fs::path(expand_user(home)) / "hub").string();
}

bool env_true(const char* name) {
  std::string v = env_or_empty(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

bool offline_from_env() {
  // huggingface_hub reads HF_HUB_OFFLINE, falling back to TRANSFORMERS_OFFLINE.
  if (std::getenv("HF_HUB_OFFLINE") && *std::getenv("HF_HUB_OFFLINE")) return env_true("HF_HUB_OFFLINE");
  return env_true("TRANSFORMERS_OFFLINE");
}

bool is_repo_id(const std::string& s) {
  if (s.empty() || s.size() > 96 * 2 + 1) return false;
  const size_t slash = s.find('/');
  if (slash != std::string::npos && s.find('/', slash + 1) != std::string::npos) return false;
  auto part_ok = [](const std::string& p) {
    if (p.empty() || p.size() > 96) return false;
    if (p.find("..") != std::string::npos || p.find("--") != std::string::npos) return false;
    if (p.front() == '-' || p.front() == '.' || p.back() == '-' || p.back() == '.') return false;
    return std::all_of(p.begin(), p.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '_' || c == '.';
    });
  };
  if (slash == std::string::npos) return part_ok(s);
  return part_ok(s.substr(0, slash)) && part_ok(s.substr(slash + 1));
}

std::string repo_folder_name(const std::string& repo_id) {
  if (!is_repo_id(repo_id))
    throw std::runtime_error(repo_id + ": not a hub repository id (expected ORG/NAME)");
  std::string name = "models";
  size_t start = 0;
  while (true) {
    const size_t slash = repo_id.find('/', start);
    name += "--" + repo_id.substr(start, slash - start);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return name;
}

bool is_commit_hash(const std::string& s) { return s.size() == 40 && all_hex(s); }

bool is_safe_etag(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '+' || c == '=';
  });
}

bool is_safe_repo_path(const std::string& s) {
  if (s.empty() || s.size() > 1024 || s.front() == '/' || s.back() == '/') return false;
  if (s.find('\\') != std::string::npos || s.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t slash = s.find('/', start);
    const std::string part = s.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

std::string normalize_etag(const std::string& header) {
  // Python's etag.lstrip("W/").strip('"'): strips leading 'W' and '/' characters.
  size_t b = 0;
  while (b < header.size() && (header[b] == 'W' || header[b] == '/')) ++b;
  size_t e = header.size();
  while (b < e && header[b] == '"') ++b;
  while (e > b && header[e - 1] == '"') --e;
  return header.substr(b, e - b);
}

std::string file_sha256_hex(const std::string& path) { return digest_file_hex(path, EVP_sha256(), ""); }

std::string file_git_sha1_hex(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot read size (" + ec.message() + ")");
  std::string prefix = "blob " + std::to_string(size);
  prefix.push_back('\0');
  uint64_t hashed = 0;
  const std::string hex = digest_file_hex(path, EVP_sha1(), prefix, &hashed);
  if (hashed != size) throw std::runtime_error(path + ": changed while hashing");
  return hex;
}

BlobState check_blob(const std::string& path, const std::string& etag,
                     std::optional<uint64_t> expected_size, bool check_hash) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return BlobState::missing;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return BlobState::missing;
  if (expected_size && size != *expected_size) return BlobState::wrong_size;
  if (!check_hash) return BlobState::ok;
  if (etag.size() == 64 && all_hex(etag))
    return file_sha256_hex(path) == etag ? BlobState::ok : BlobState::wrong_hash;
  if (etag.size() == 40 && all_hex(etag))
    return file_git_sha1_hex(path) == etag ? BlobState::ok : BlobState::wrong_hash;
  return BlobState::ok;  // an etag that is not a content hash: nothing more to compare
}

const char* blob_state_name(BlobState s) {
  switch (s) {
    case BlobState::ok: return "ok";
    case BlobState::missing: return "missing";
    case BlobState::wrong_size: return "wrong size";
    case BlobState::wrong_hash: return "content does not match its hash";
  }
  return "?";
}

RepoCache::RepoCache(std::string cache_dir, const std::string& repo_id)
    : cache_dir_(std::move(cache_dir)),
      storage_((fs::path(cache_dir_) / repo_folder_name(repo_id)).string()) {}

std::string RepoCache::blob_path(const std::string& etag) const {
  if (!is_safe_etag(etag)) throw std::runtime_error("hub ETag '" + etag + "' is not a usable blob name");
  return (fs::path(storage_) / "blobs" / etag).string();
}

std::string RepoCache::lock_path(const std::string& etag) const {
  return (fs::path(cache_dir_) / ".locks" / fs::path(storage_).filename() / (etag + ".lock")).string();
}

std::string RepoCache::snapshot_dir(const std::string& commit) const {
  if (!is_commit_hash(commit)) throw std::runtime_error("hub commit '" + commit + "' is not a commit hash");
  return (fs::path(storage_) / "snapshots" / commit).string();
}

std::string RepoCache::pointer_path(const std::string& commit, const std::string& file) const {
  if (!is_safe_repo_path(file))
    throw std::runtime_error("hub file name '" + file + "' would leave the snapshot folder");
  return (fs::path(snapshot_dir(commit)) / file).string();
}

std::optional<std::string> RepoCache::commit_for(const std::string& revision) const {
  if (is_commit_hash(revision)) return revision;
  if (!is_safe_repo_path(revision)) return std::nullopt;
  std::ifstream in(fs::path(storage_) / "refs" / revision, std::ios::binary);
  if (!in) return std::nullopt;
  std::string commit((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;
  return commit;
}

void RepoCache::write_ref(const std::string& revision, const std::string& commit) const {
  if (revision == commit) return;
  if (!is_safe_repo_path(revision)) throw std::runtime_error("revision '" + revision + "' is not a usable ref name");
  const fs::path ref = fs::path(storage_) / "refs" / revision;
  if (commit_for(revision) == commit) return;  // unchanged: leave a read-only cache alone
  fs::create_directories(ref.parent_path());
  write_text_atomically(ref, commit);
}

std::optional<std::string> RepoCache::pointer_etag(const std::string& commit, const std::string& file) const {
  const fs::path pointer = pointer_path(commit, file);
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(pointer, ec))) return std::nullopt;
  const fs::path target = fs::read_symlink(pointer, ec);
  if (ec) return std::nullopt;
  const fs::path resolved = abs_normal(target.is_absolute() ? target : pointer.parent_path() / target);
  if (resolved.parent_path() != abs_normal(fs::path(storage_) / "blobs")) return std::nullopt;
  const std::string etag = resolved.filename().string();
  if (!is_safe_etag(etag)) return std::nullopt;
  return etag;
}

void RepoCache::link(const std::string& commit, const std::string& file, const std::string& etag) const {
  const fs::path pointer = abs_normal(pointer_path(commit, file));
  const fs::path blob = abs_normal(blob_path(etag));
  fs::create_directories(pointer.parent_path());
  std::error_code ec;
  fs::remove(pointer, ec);
  // Relative, like huggingface_hub, so the cache folder can be moved as a whole.
  fs::create_symlink(blob.lexically_relative(pointer.parent_path()), pointer, ec);
  if (ec) throw std::runtime_error(pointer.string() + ": cannot create the snapshot link (" + ec.message() + ")");
}

FileLock::FileLock(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(path + ": cannot open lock file (" + std::strerror(errno) + ")");
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      const int err = errno;
      ::close(fd_);
      throw std::runtime_error(path + ": cannot lock (" + std::strerror(err) + ")");
    }
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace sdvsr::hub
