#pragma once
// The huggingface_hub cache layout (as huggingface_hub 0.22.2 writes it), so a
// model downloaded by Python is found here and the other way round:
//
//   <cache>/models--ORG--NAME/
//     blobs/<etag>                       file contents; etag = git blob sha1 for
//     blobs/<etag>.incomplete            regular files, sha256 for LFS files
//     refs/<revision>                    the commit hash a branch/tag pointed to
//     snapshots/<commit>/<file>          relative symlink to ../../blobs/<etag>
//   <cache>/.locks/models--ORG--NAME/<etag>.lock
#include <cstdint>
#include <optional>
#include <string>

namespace sdvsr::hub {

// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
std::string hub_cache_dir();

// The truth test huggingface_hub applies to its boolean variables (1/ON/YES/TRUE).
bool env_true(const char* name);
// HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value.
bool offline_from_env();

// "ORG/NAME" -> "models--ORG--NAME". Throws for ids that are not hub repository ids.
std::string repo_folder_name(const std::string& repo_id);
// ORG/NAME or NAME made of letters, digits, '-', '_', '.' (no "..", no "--" edges).
bool is_repo_id(const std::string& s);
// A full 40-hex commit hash.
bool is_commit_hash(const std::string& s);
// An etag usable as a blob file name (hex or base64-ish, no path characters).
bool is_safe_etag(const std::string& s);
// A repository file name that stays inside its snapshot folder.
bool is_safe_repo_path(const std::string& s);

// `W/"abc"` / `"abc"` -> `abc`, as huggingface_hub normalises ETag headers.
std::string normalize_etag(const std::string& header);

// SHA-256 of a file, lowercase hex (OpenSSL); throws naming the file.
std::string file_sha256_hex(const std::string& path);
// Git's blob id of a file: sha1("blob <size>\0" + content), lowercase hex.
std::string file_git_sha1_hex(const std::string& path);

// What is wrong with a blob, if anything: its size (when known) and, when the etag
// is a content hash (64 hex: sha256, 40 hex: git blob sha1), its contents.
enum class BlobState { ok, missing, wrong_size, wrong_hash };
BlobState check_blob(const std::string& path, const std::string& etag,
                     std::optional<uint64_t> expected_size, bool check_hash = true);
const char* blob_state_name(BlobState s);

// One repository's folder in the cache.
class RepoCache {
 public:
  RepoCache(std::string cache_dir, const std::string& repo_id);

  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& storage() const { return storage_; }
  std::string blob_path(const std::string& etag) const;
  std::string incomplete_path(const std::string& etag) const { return blob_path(etag) + ".incomplete"; }
  std::string lock_path(const std::string& etag) const;
  std::string snapshot_dir(const std::string& commit) const;
  std::string pointer_path(const std::string& commit, const std::string& file) const;

  // The commit a revision names: itself when it is a commit hash, else refs/<revision>.
  std::optional<std::string> commit_for(const std::string& revision) const;
  // Writes refs/<revision> = commit (no newline), unless revision is the commit.
  void write_ref(const std::string& revision, const std::string& commit) const;

  // The etag the snapshot pointer links to (the blob's file name), if it is a link
  // into blobs/; nullopt when absent or not such a link.
  std::optional<std::string> pointer_etag(const std::string& commit, const std::string& file) const;
  // (Re)creates snapshots/<commit>/<file> as a relative symlink to blobs/<etag>.
  void link(const std::string& commit, const std::string& file, const std::string& etag) const;

 private:
  std::string cache_dir_;
  std::string storage_;
};

// Holds an exclusive flock on a lock file (the one huggingface_hub's filelock uses).
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace sdvsr::hub
