#include "weights/hub_download.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "runtime/warnings.h"
#include "weights/http_client.h"
#include "weights/hub_cache.h"

namespace fs = std::filesystem;

namespace sdvsr::hub {

namespace {

const char* const kComponents[] = {"unet", "controlnet", "vae"};
const char* const kRequiredFolders[] = {"unet", "controlnet", "vae", "scheduler"};

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

std::string local_folder_hint() {
  return "or pass a local model folder: --model_id /path/to/Stream-DiffVSR (a copy of the hub "
         "repository with unet/, controlnet/, vae/, scheduler/)";
}

// Everything one fetch needs to know, resolved once.
struct Session {
  std::string repo_id;
  std::string endpoint;
  std::string token;
  const FetchOptions& opts;
  RepoCache cache;

  void warn(const std::string& line) const {
    if (opts.warn)
      opts.warn(line);
    else
      sdvsr::warn(line);
  }

  http::Options request_options(bool with_auth) const {
    http::Options o;
    o.connect_timeout_s = opts.connect_timeout_s;
    o.stall_timeout_s = opts.stall_timeout_s;
    if (with_auth && !token.empty()) o.headers.push_back("Authorization: Bearer " + token);
    return o;
  }

  std::string resolve_url(const std::string& commit, const std::string& file) const {
    return endpoint + "/" + repo_id + "/resolve/" + http::quote(commit, false) + "/" + http::quote(file, true);
  }
};

struct RepoListing {
  std::string commit;
  std::vector<std::string> files;
};

RepoListing list_repo(const Session& s, const std::string& revision) {
  const std::string url =
      s.endpoint + "/api/models/" + s.repo_id + "/revision/" + http::quote(revision, false);
  const http::Response r = http::request("GET", url, s.request_options(true));
  if (r.status == 401 || r.status == 403 || r.status == 404)
    throw std::runtime_error(url + ": HTTP " + std::to_string(r.status) + ": repository '" + s.repo_id +
                             "' or revision '" + revision +
                             "' not found, or private/gated (set HF_TOKEN to a token with access)");
  if (r.status != 200) throw std::runtime_error(url + ": HTTP " + std::to_string(r.status));
  RepoListing out;
  try {
    const nlohmann::json j = nlohmann::json::parse(r.body);
    out.commit = j.at("sha").get<std::string>();
    for (const auto& sib : j.at("siblings")) out.files.push_back(sib.at("rfilename").get<std::string>());
  } catch (const std::exception& e) {
    throw std::runtime_error(url + ": unexpected repository listing (" + std::string(e.what()) + ")");
  }
  if (!is_commit_hash(out.commit))
    throw std::runtime_error(url + ": listing names commit '" + out.commit + "', not a 40-hex hash");
  for (const std::string& f : out.files)
    if (!is_safe_repo_path(f)) throw std::runtime_error(url + ": listing has unsafe file name '" + f + "'");
  return out;
}

struct FileMetadata {
  std::string commit;
  std::string etag;
  std::optional<uint64_t> size;
  std::string location;  // where to GET the contents
};

std::optional<uint64_t> parse_size(const std::optional<std::string>& v) {
  if (!v || v->empty() || !std::all_of(v->begin(), v->end(), ::isdigit)) return std::nullopt;
  return std::stoull(*v);
}

// HEAD without following redirects, except relative ones (a renamed repository),
// as huggingface_hub's get_hf_file_metadata does.
FileMetadata file_metadata(const Session& s, const std::string& url) {
  http::Options o = s.request_options(true);
  o.headers.push_back("Accept-Encoding: identity");
  std::string current = url;
  http::Response r;
  for (int hop = 0;; ++hop) {
    r = http::request("HEAD", current, o);
    const auto loc = r.header("location");
    if (r.status < 300 || r.status > 399 || !loc || loc->find("://") != std::string::npos) break;
    if (hop >= 10) throw std::runtime_error(url + ": too many redirects");
    current = http::resolve_location(current, *loc);
  }
  if (r.status >= 400) {
    std::string why = "HTTP " + std::to_string(r.status);
    if (r.status == 401 || r.status == 403) why += " (not authorised: set HF_TOKEN)";
    if (r.status == 404) why += " (not found)";
    throw std::runtime_error(url + ": " + why);
  }
  FileMetadata m;
  m.commit = r.header("x-repo-commit").value_or("");
  const auto etag = r.header("x-linked-etag") ? r.header("x-linked-etag") : r.header("etag");
  m.etag = etag ? normalize_etag(*etag) : "";
  m.size = parse_size(r.header("x-linked-size") ? r.header("x-linked-size") : r.header("content-length"));
  const auto loc = r.header("location");
  m.location = loc ? http::resolve_location(current, *loc) : current;
  if (m.commit.empty())
    throw std::runtime_error(url + ": no X-Repo-Commit header; the endpoint does not look like a "
                                   "Hugging Face hub (check HF_ENDPOINT, proxy and firewall)");
  if (m.etag.empty()) throw std::runtime_error(url + ": no ETag header; cannot name the cache blob");
  if (!is_safe_etag(m.etag)) throw std::runtime_error(url + ": ETag '" + m.etag + "' is not a usable blob name");
  return m;
}

const char* hash_name(const std::string& etag) {
  return etag.size() == 64 ? "sha256" : etag.size() == 40 ? "git blob sha1" : "etag";
}

// Makes snapshots/<commit>/<file> point at a blob whose contents are right.
void ensure_file(const Session& s, const std::string& commit, const std::string& file) {
  const RepoCache& cache = s.cache;
  const std::string pointer = cache.pointer_path(commit, file);
  if (const auto etag = cache.pointer_etag(commit, file)) {
    const std::string blob = cache.blob_path(*etag);
    const BlobState st = check_blob(blob, *etag, std::nullopt, s.opts.verify_cached);
    if (st == BlobState::ok) return;
    if (st != BlobState::missing) {
      s.warn(blob + " (" + file + "): cached blob " + blob_state_name(st) + "; fetching it again");
      fs::remove(blob);
    }
  }

  const std::string url = s.resolve_url(commit, file);
  const FileMetadata meta = file_metadata(s, url);
  const std::string blob = cache.blob_path(meta.etag);
  fs::create_directories(fs::path(blob).parent_path());

  FileLock lock(cache.lock_path(meta.etag));
  BlobState st = check_blob(blob, meta.etag, meta.size, s.opts.verify_cached);
  if (st != BlobState::ok) {
    if (st != BlobState::missing) {
      s.warn(blob + " (" + file + "): cached blob " + blob_state_name(st) + "; fetching it again");
      fs::remove(blob);
    }
    // A CDN URL on another host is signed: send the token only to the hub itself.
    http::DownloadOptions dl;
    static_cast<http::Options&>(dl) =
        s.request_options(http::origin_of(meta.location) == http::origin_of(url));
    dl.max_stalled_attempts = s.opts.max_stalled_attempts;
    dl.retry_delay_s = s.opts.retry_delay_s;
    if (s.opts.progress)
      dl.progress = [&](uint64_t done, std::optional<uint64_t> total) {
        s.opts.progress(file, done, total.value_or(0));
      };
    const std::string partial = cache.incomplete_path(meta.etag);
    // A second, fresh attempt when the first (possibly resumed) one hashes wrong.
    for (int attempt = 0;; ++attempt) {
      http::download_resumable(meta.location, partial, meta.size, dl);
      st = check_blob(partial, meta.etag, meta.size, true);
      if (st == BlobState::ok) break;
      fs::remove(partial);
      if (attempt >= 1)
        throw std::runtime_error(meta.location + " (" + file + "): downloaded content does not match its " +
                                 hash_name(meta.etag) + " " + meta.etag + " (" + blob_state_name(st) + ")");
      s.warn(meta.location + " (" + file + "): downloaded content does not match its " +
             hash_name(meta.etag) + "; downloading it again");
    }
    fs::rename(partial, blob);
  }
  cache.link(commit, file, meta.etag);
}

// The snapshot already in the cache for `revision`, checked, when there is one.
std::optional<FetchedModel> cached_snapshot(const Session& s, const std::string& revision,
                                            std::string* problem) {
  const auto commit = s.cache.commit_for(revision);
  if (!commit) {
    *problem = "no ref '" + revision + "' in " + s.cache.storage();
    return std::nullopt;
  }
  const fs::path snap = s.cache.snapshot_dir(*commit);
  std::error_code ec;
  if (!fs::is_directory(snap, ec)) {
    *problem = "no snapshot folder " + snap.string();
    return std::nullopt;
  }
  FetchedModel m;
  m.snapshot_dir = snap.string();
  m.commit = *commit;
  m.from_cache_only = true;
  for (auto it = fs::recursive_directory_iterator(snap, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory()) continue;
    m.files.push_back(it->path().lexically_relative(snap).generic_string());
  }
  std::sort(m.files.begin(), m.files.end());
  for (const char* folder : kRequiredFolders) {
    const bool present = std::any_of(m.files.begin(), m.files.end(), [&](const std::string& f) {
      return f.rfind(std::string(folder) + "/", 0) == 0;
    });
    if (!present) {
      *problem = "snapshot " + snap.string() + " has no " + folder + "/ (an interrupted download?)";
      return std::nullopt;
    }
  }
  const std::vector<std::string> wanted = select_pipeline_files(m.files, true);
  m.text_encoder_skipped = std::none_of(wanted.begin(), wanted.end(), [](const std::string& f) {
    return f.rfind("text_encoder/", 0) == 0;
  });
  for (const std::string& f : wanted) {
    const auto etag = s.cache.pointer_etag(*commit, f);
    if (!etag) continue;  // a plain file or a link elsewhere: used as it is
    const std::string blob = s.cache.blob_path(*etag);
    const BlobState st = check_blob(blob, *etag, std::nullopt, s.opts.verify_cached);
    if (st != BlobState::ok) {
      *problem = blob + " (" + f + "): cached blob " + blob_state_name(st);
      return std::nullopt;
    }
  }
  return m;
}

std::string text_encoder_weights(const std::vector<std::string>& files) {
  for (const char* name : {"text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"})
    if (std::find(files.begin(), files.end(), name) != files.end()) return name;
  return "";
}

}  // namespace

std::string hub_endpoint() {
  std::string e = env_or_empty("HF_ENDPOINT");
  if (e.empty()) e = kDefaultEndpoint;
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

std::string hub_token() {
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    const std::string t = trim(env_or_empty(name));
    if (!t.empty()) return t;
  }
  std::string path = env_or_empty("HF_TOKEN_PATH");
  if (path.empty()) {
    // The token file sits in HF_HOME (the hub cache's parent by default).
    std::string home = env_or_empty("HF_HOME");
    if (home.empty()) {
      const std::string xdg = env_or_empty("XDG_CACHE_HOME");
      const std::string user = env_or_empty("HOME");
      if (!xdg.empty())
        home = xdg + "/huggingface";
      else if (!user.empty())
        home = user + "/.cache/huggingface";
    }
    if (!home.empty()) path = home + "/token";
  }
  if (path.empty()) return "";
  std::ifstream in(path);
  std::string token;
  if (in) std::getline(in, token);
  return trim(token);
}

bool looks_like_repo_id(const std::string& model_id) {
  std::error_code ec;
  if (fs::exists(model_id, ec)) return false;
  return model_id.find('/') != std::string::npos && is_repo_id(model_id);
}

std::vector<std::string> select_pipeline_files(const std::vector<std::string>& repo_files,
                                               bool with_text_encoder) {
  const std::set<std::string> all(repo_files.begin(), repo_files.end());
  const bool shipped_embeds = all.count("prompt_embeds.safetensors") > 0;
  with_text_encoder = with_text_encoder && !shipped_embeds;

  std::vector<std::string> out;
  auto take = [&](const std::string& f) {
    if (all.count(f)) out.push_back(f);
  };
  auto take_first = [&](std::initializer_list<std::string> candidates) {
    for (const std::string& f : candidates)
      if (all.count(f)) {
        out.push_back(f);
        return;
      }
  };
  take("model_index.json");
  take("prompt_embeds.safetensors");
  for (const char* c : kComponents) {
    const std::string dir = std::string(c) + "/";
    take(dir + "config.json");
    take_first({dir + "diffusion_pytorch_model.safetensors", dir + "diffusion_pytorch_model.bin"});
  }
  // Folders taken whole (flat): the scheduler's config, the tokenizer's vocabulary.
  auto take_folder = [&](const std::string& dir) {
    for (const std::string& f : repo_files)
      if (f.rfind(dir, 0) == 0 && f.find('/', dir.size()) == std::string::npos) out.push_back(f);
  };
  take_folder("scheduler/");
  if (with_text_encoder) {
    take("text_encoder/config.json");
    take_first({"text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"});
    take_folder("tokenizer/");
  }
  return out;
}

FetchedModel fetch_model_files(const std::string& repo_id, const FetchOptions& opts) {
  if (!is_repo_id(repo_id))
    throw std::runtime_error(repo_id + ": neither a local model folder nor a hub repository id (ORG/NAME)");
  Session s{repo_id,
            opts.endpoint.empty() ? hub_endpoint() : opts.endpoint,
            opts.token.empty() ? hub_token() : opts.token,
            opts,
            RepoCache(opts.cache_dir.empty() ? hub_cache_dir() : opts.cache_dir, repo_id)};
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();

  if (opts.offline || offline_from_env()) {
    std::string problem;
    if (auto m = cached_snapshot(s, opts.revision, &problem)) return *m;
    throw std::runtime_error(repo_id + ": not usable from the hub cache in offline mode (" + problem +
                             "); run once without --offline/HF_HUB_OFFLINE to download it, " +
                             local_folder_hint());
  }

  RepoListing listing;
  try {
    listing = list_repo(s, opts.revision);
  } catch (const http::NetworkError& e) {
    std::string problem;
    if (auto m = cached_snapshot(s, opts.revision, &problem)) {
      s.warn(std::string("cannot reach the hub at ") + s.endpoint + " (" + e.what() +
             "); using the cached snapshot " + m->snapshot_dir);
      return *m;
    }
    throw std::runtime_error(repo_id + ": cannot reach the hub at " + s.endpoint + " (" + e.what() +
                             "); check the network or HF_ENDPOINT, " + local_folder_hint());
  }

  FetchedModel m;
  m.commit = listing.commit;
  m.snapshot_dir = s.cache.snapshot_dir(listing.commit);
  s.cache.write_ref(opts.revision, listing.commit);

  const bool shipped_embeds = std::find(listing.files.begin(), listing.files.end(),
                                        "prompt_embeds.safetensors") != listing.files.end();
  bool with_text_encoder = !shipped_embeds;
  if (with_text_encoder) {
    const std::string weights = text_encoder_weights(listing.files);
    if (!weights.empty()) {
      const FileMetadata meta = file_metadata(s, s.resolve_url(listing.commit, weights));
      if (meta.etag.size() == 64) m.text_encoder_sha256 = meta.etag;
    }
    if (opts.prompt_embeds_cached && opts.prompt_embeds_cached(m.text_encoder_sha256))
      with_text_encoder = false;
  }
  m.text_encoder_skipped = !with_text_encoder;

  m.files = select_pipeline_files(listing.files, with_text_encoder);
  for (const std::string& f : m.files) {
    try {
      ensure_file(s, listing.commit, f);
    } catch (const http::NetworkError& e) {
      throw std::runtime_error(repo_id + ": cannot reach the hub while fetching " + f + " (" + e.what() +
                               "); run again to resume, " + local_folder_hint());
    }
  }
  return m;
}

std::string fetch_model(const std::string& repo_id, const FetchOptions& opts) {
  return fetch_model_files(repo_id, opts).snapshot_dir;
}

}  // namespace sdvsr::hub
