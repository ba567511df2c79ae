#pragma once
// A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) for the download tests,
// and a fake Hugging Face hub built on it. One connection at a time, each closed
// after its response; the accept loop wakes every 50 ms to notice stop().
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sdvsr::test {

struct HttpRequest {
  std::string method;
  std::string target;                          // path and query as sent
  std::map<std::string, std::string> headers;  // lowercase names

  std::string header(const std::string& lowercase_name) const;
};

struct HttpReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Fault injection: send the headers (with the full Content-Length) and only
  // this many body bytes, then close the connection.
  std::optional<size_t> drop_after;
};

class HttpTestServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  explicit HttpTestServer(Handler handler);
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  std::string url() const;  // http://127.0.0.1:<port>
  int port() const { return port_; }
  void stop();

  std::vector<HttpRequest> requests() const;  // every request seen, in order
  void clear_requests();

 private:
  void serve();
  void handle(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<HttpRequest> log_;
  std::thread thread_;
};

// The byte ranges "bytes=N-" / "bytes=N-M" of a Range header (nullopt when absent
// or not of that form): (first, last inclusive, clamped).
std::optional<std::pair<size_t, size_t>> parse_range(const std::string& header, size_t size);
// A reply for `content` that honours the request's Range (206 + Content-Range, 416).
HttpReply content_reply(const HttpRequest& req, const std::string& content);

// Content hashes computed independently of the code under test (OpenSSL one-shots).
std::string sha256_hex_of(const std::string& bytes);
std::string git_blob_sha1_of(const std::string& bytes);

// A hub serving one repository at one commit:
//   GET  /api/models/<repo>/revision/<rev>        listing (sha, siblings)
//   HEAD/GET /<repo>/resolve/<rev>/<file>         regular files: 200 + ETag (git sha1) + X-Repo-Commit;
//                                                 LFS files: 302 to /cdn/<sha256> + X-Linked-Etag/-Size
//   GET  /cdn/<sha256>                            LFS contents, with Range
//   GET  /files/<name>                            plain files (torch hub checkpoints)
class FakeHub {
 public:
  struct File {
    std::string content;
    bool lfs = false;
  };
  FakeHub(std::string repo_id, std::string commit);

  void add(const std::string& path, const std::string& content, bool lfs);
  void add_plain(const std::string& name, const std::string& content);

  // Faults, consumed one per GET of the file's contents.
  void drop_next_gets(const std::string& path, size_t after_bytes, int times = 1);
  void corrupt_next_gets(const std::string& path, int times);  // same size, other bytes
  void lie_about_size(const std::string& path, uint64_t size);  // X-Linked-Size / Content-Length on HEAD
  void require_token(const std::string& token) { token_ = token; }
  void rename_repo(const std::string& old_id) { old_repo_id_ = old_id; }

  HttpReply handle(const HttpRequest& req);

  const std::string& commit() const { return commit_; }
  std::string etag_of(const std::string& path) const;

 private:
  HttpReply contents(const std::string& key, const HttpRequest& req, const std::string& content);

  std::string repo_id_, commit_, token_, old_repo_id_;
  std::map<std::string, File> files_;
  std::map<std::string, std::string> plain_;
  std::map<std::string, std::pair<size_t, int>> drops_;
  std::map<std::string, int> corrupt_;
  std::map<std::string, uint64_t> size_lies_;
  std::mutex mu_;
};

}  // namespace sdvsr::test
