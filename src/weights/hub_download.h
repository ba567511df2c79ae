#pragma once
// Downloads the files of a hub model repository that the pipeline needs into the
// huggingface_hub cache (see hub_cache.h), the way huggingface_hub 0.22.2's
// snapshot_download does it:
//   GET  {endpoint}/api/models/{repo}/revision/{rev}  -> sha, siblings[].rfilename
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}    -> X-Repo-Commit, ETag / X-Linked-Etag,
//        (redirects not followed: an LFS file's 302      Content-Length / X-Linked-Size,
//         carries its metadata and the CDN URL)          Location
//   GET  the Location (or the resolve URL) into blobs/<etag>.incomplete, resuming with Range.
// Every file's size is checked, and its contents against its etag when the etag
// is a content hash (sha256 for LFS files, git blob sha1 for regular files); so is
// every cached blob before it is used, and a damaged one is fetched again.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sdvsr::hub {

inline constexpr const char* kDefaultEndpoint = "https://huggingface.co";
inline constexpr const char* kDefaultModelId = "Jamichsu/Stream-DiffVSR";

struct FetchOptions {
  std::string revision = "main";  // branch, tag or commit hash
  std::string endpoint;           // empty: $HF_ENDPOINT, else kDefaultEndpoint
  std::string cache_dir;          // empty: hub_cache_dir()
  std::string token;              // empty: $HF_TOKEN, else the huggingface_hub token file
  bool offline = false;           // cache only (also when HF_HUB_OFFLINE=1)
  bool verify_cached = true;      // hash cached blobs before trusting them

  // Asked only when the repository ships no prompt_embeds.safetensors, with the
  // sha256 of the text encoder's weight file (empty when unknown): return true when
  // the prompt embedding for it is cached, so text_encoder/ and tokenizer/ are skipped.
  std::function<bool(const std::string& text_encoder_sha256)> prompt_embeds_cached;

  // Download progress per file: (repository file, bytes so far, total or 0).
  std::function<void(const std::string&, uint64_t, uint64_t)> progress;
  // Warnings (a damaged cache blob fetched again, a cache used because the hub
  // was unreachable). Default: the process-wide sink (runtime/warnings.h).
  std::function<void(const std::string&)> warn;

  long connect_timeout_s = 10;
  long stall_timeout_s = 30;
  int max_stalled_attempts = 5;  // resumes in a row that bring no new byte
  double retry_delay_s = 1.0;
};

struct FetchedModel {
  std::string snapshot_dir;            // <cache>/models--ORG--NAME/snapshots/<commit>
  std::string commit;
  std::vector<std::string> files;      // repository paths present in snapshot_dir
  std::string text_encoder_sha256;     // when known (online, LFS weights)
  bool text_encoder_skipped = false;   // prompt embeddings shipped or cached
  bool from_cache_only = false;        // offline, or the hub could not be reached
};

// The local snapshot folder holding the pipeline's files (unet/, controlnet/, vae/,
// scheduler/, model_index.json, prompt_embeds.safetensors if present, text_encoder/
// and tokenizer/ unless skipped). Throws std::runtime_error with one line.
FetchedModel fetch_model_files(const std::string& repo_id, const FetchOptions& opts);
std::string fetch_model(const std::string& repo_id, const FetchOptions& opts);

// The files of a repository listing that the pipeline needs. Components take their
// config.json and one weight file (safetensors before .bin; no variants or shards).
std::vector<std::string> select_pipeline_files(const std::vector<std::string>& repo_files,
                                               bool with_text_encoder);

// True for ORG/NAME ids (not an existing local path): the CLI's test for "download".
bool looks_like_repo_id(const std::string& model_id);

// $HF_ENDPOINT or kDefaultEndpoint, without a trailing '/'.
std::string hub_endpoint();
// $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the token file ($HF_TOKEN_PATH, else
// $HF_HOME/token); empty when none.
std::string hub_token();

}  // namespace sdvsr::hub
