#include "weights/torch_hub.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "weights/http_client.h"
#include "weights/hub_cache.h"

namespace fs = std::filesystem;

namespace sdvsr::hub {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string url_file_name(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = path.find("://");
  const size_t start = scheme == std::string::npos ? 0 : path.find('/', scheme + 3);
  if (start == std::string::npos) return "";
  path = path.substr(start);
  const std::string name = path.substr(path.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..") return "";
  return name;
}

bool hash_ok(const std::string& path, const std::string& prefix) {
  return file_sha256_hex(path).compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::string torch_home() {
  std::string home = env_or_empty("TORCH_HOME");
  if (home.empty()) {
    const std::string xdg = env_or_empty("XDG_CACHE_HOME");
    home = (xdg.empty() ? std::string("~/.cache") : xdg) + "/torch";
  }
  if (home == "~" || home.rfind("~/", 0) == 0) {
    const std::string user = env_or_empty("HOME");
    if (user.empty()) throw std::runtime_error(home + ": cannot expand '~', HOME is not set");
    home = user + home.substr(1);
  }
  return home;
}

std::string torch_hash_prefix(const std::string& file_name) {
  // torch.hub's HASH_REGEX, r'-([a-f0-9]*)\.', first match.
  for (size_t dash = file_name.find('-'); dash != std::string::npos; dash = file_name.find('-', dash + 1)) {
    size_t end = dash + 1;
    while (end < file_name.size() && std::isxdigit(static_cast<unsigned char>(file_name[end])) &&
           !std::isupper(static_cast<unsigned char>(file_name[end])))
      ++end;
    if (end < file_name.size() && file_name[end] == '.') return file_name.substr(dash + 1, end - dash - 1);
  }
  return "";
}

std::string fetch_torch_checkpoint(const TorchHubOptions& opts) {
  std::string url = opts.url;
  if (url.empty()) url = env_or_empty("SDVSR_RAFT_URL");
  if (url.empty()) url = kRaftUrl;
  const std::string name = url_file_name(url);
  if (name.empty()) throw std::runtime_error(url + ": URL names no checkpoint file");
  const std::string prefix = torch_hash_prefix(name);
  const fs::path dir = fs::path(opts.torch_home.empty() ? torch_home() : opts.torch_home) / "hub" / "checkpoints";
  const fs::path file = dir / name;

  std::error_code ec;
  if (fs::is_regular_file(file, ec)) {
    if (hash_ok(file.string(), prefix)) return file.string();
    if (opts.offline || offline_from_env())
      throw std::runtime_error(file.string() + ": sha256 does not start with " + prefix +
                               " (damaged) and offline mode forbids fetching it again");
    fs::remove(file);
  }
  if (opts.offline || offline_from_env())
    throw std::runtime_error(file.string() + ": RAFT weights not in the torch hub cache (offline mode); run once "
                             "online to download them from " + url + ", or pass --raft FILE");

  fs::create_directories(dir);
  const std::string partial = file.string() + ".partial";
  http::DownloadOptions dl;
  dl.connect_timeout_s = opts.connect_timeout_s;
  dl.stall_timeout_s = opts.stall_timeout_s;
  dl.max_stalled_attempts = opts.max_stalled_attempts;
  dl.retry_delay_s = opts.retry_delay_s;
  if (opts.progress)
    dl.progress = [&](uint64_t done, std::optional<uint64_t> total) { opts.progress(done, total.value_or(0)); };
  // A second, fresh attempt when the first (possibly resumed) one hashes wrong.
  for (int attempt = 0;; ++attempt) {
    try {
      http::download_resumable(url, partial, std::nullopt, dl);
    } catch (const http::NetworkError& e) {
      throw std::runtime_error(std::string("cannot download the RAFT weights: ") + e.what() +
                               "; check the network or SDVSR_RAFT_URL, or pass --raft FILE");
    }
    const std::string digest = file_sha256_hex(partial);
    if (digest.compare(0, prefix.size(), prefix) == 0) break;
    fs::remove(partial);
    if (attempt >= 1)
      throw std::runtime_error(url + ": invalid hash value (sha256 " + digest + " does not start with " + prefix +
                               ")");
  }
  fs::rename(partial, file);
  return file.string();
}

std::string fetch_raft(const TorchHubOptions& opts) { return fetch_torch_checkpoint(opts); }

}  // namespace sdvsr::hub
