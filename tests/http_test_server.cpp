#include "http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace sdvsr::test {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 416: return "Range Not Satisfiable";
    default: return "Status";
  }
}

bool send_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string digest_hex(const EVP_MD* md, const std::string& bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &len, md, nullptr);
  std::string hex;
  static const char* digits = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex += digits[out[i] >> 4];
    hex += digits[out[i] & 15];
  }
  return hex;
}

HttpReply not_found() {
  HttpReply r;
  r.status = 404;
  r.body = "Entry not found";
  return r;
}

}  // namespace

std::string HttpRequest::header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? std::string() : it->second;
}

HttpTestServer::HttpTestServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("test server: socket failed");
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0)
    throw std::runtime_error("test server: bind/listen on 127.0.0.1 failed");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

HttpTestServer::~HttpTestServer() { stop(); }

void HttpTestServer::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

std::string HttpTestServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<HttpRequest> HttpTestServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

void HttpTestServer::clear_requests() {
  std::lock_guard<std::mutex> lock(mu_);
  log_.clear();
}

void HttpTestServer::serve() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    handle(fd);
    ::close(fd);
  }
}

void HttpTestServer::handle(int fd) {
  // Read the request head (no request bodies here).
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > 65536) return;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  HttpRequest req;
  std::istringstream lines(head.substr(0, head.find("\r\n\r\n")));
  std::string line;
  std::getline(lines, line);
  std::istringstream first(line);
  first >> req.method >> req.target;
  while (std::getline(lines, line)) {
    const size_t colon = line.find(':');
    if (colon != std::string::npos) req.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(req);
  }
  HttpReply reply = handler_(req);
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) + "\r\n";
  bool has_length = false;
  for (const auto& [k, v] : reply.headers) {
    out += k + ": " + v + "\r\n";
    if (lower(k) == "content-length") has_length = true;
  }
  if (!has_length) out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (!send_all(fd, out.data(), out.size())) return;
  if (req.method == "HEAD") return;
  const size_t n = reply.drop_after ? std::min(*reply.drop_after, reply.body.size()) : reply.body.size();
  send_all(fd, reply.body.data(), n);
  if (reply.drop_after) ::shutdown(fd, SHUT_RDWR);
}

std::optional<std::pair<size_t, size_t>> parse_range(const std::string& header, size_t size) {
  unsigned long long first = 0, last = 0;
  if (header.rfind("bytes=", 0) != 0) return std::nullopt;
  const std::string spec = header.substr(6);
  const size_t dash = spec.find('-');
  if (dash == std::string::npos || dash == 0) return std::nullopt;
  first = std::stoull(spec.substr(0, dash));
  last = dash + 1 < spec.size() ? std::stoull(spec.substr(dash + 1)) : (size == 0 ? 0 : size - 1);
  if (size > 0) last = std::min<unsigned long long>(last, size - 1);
  return std::make_pair(static_cast<size_t>(first), static_cast<size_t>(last));
}

HttpReply content_reply(const HttpRequest& req, const std::string& content) {
  HttpReply r;
  const std::string range = req.header("range");
  if (range.empty()) {
    r.body = content;
    return r;
  }
  const auto rng = parse_range(range, content.size());
  if (!rng || rng->first >= content.size() || rng->first > rng->second) {
    r.status = 416;
    r.headers.push_back({"Content-Range", "bytes */" + std::to_string(content.size())});
    return r;
  }
  r.status = 206;
  r.body = content.substr(rng->first, rng->second - rng->first + 1);
  r.headers.push_back({"Content-Range", "bytes " + std::to_string(rng->first) + "-" +
                                            std::to_string(rng->second) + "/" + std::to_string(content.size())});
  return r;
}

std::string sha256_hex_of(const std::string& bytes) { return digest_hex(EVP_sha256(), bytes); }

std::string git_blob_sha1_of(const std::string& bytes) {
  std::string framed = "blob " + std::to_string(bytes.size());
  framed.push_back('\0');
  return digest_hex(EVP_sha1(), framed + bytes);
}

FakeHub::FakeHub(std::string repo_id, std::string commit) : repo_id_(std::move(repo_id)), commit_(std::move(commit)) {}

void FakeHub::add(const std::string& path, const std::string& content, bool lfs) {
  std::lock_guard<std::mutex> lock(mu_);
  files_[path] = File{content, lfs};
}

void FakeHub::add_plain(const std::string& name, const std::string& content) {
  std::lock_guard<std::mutex> lock(mu_);
  plain_[name] = content;
}

void FakeHub::drop_next_gets(const std::string& path, size_t after_bytes, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  drops_[path] = {after_bytes, times};
}

void FakeHub::corrupt_next_gets(const std::string& path, int times) {
  std::lock_guard<std::mutex> lock(mu_);
  corrupt_[path] = times;
}

void FakeHub::lie_about_size(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  size_lies_[path] = size;
}

std::string FakeHub::etag_of(const std::string& path) const {
  const File& f = files_.at(path);
  return f.lfs ? sha256_hex_of(f.content) : git_blob_sha1_of(f.content);
}

HttpReply FakeHub::contents(const std::string& key, const HttpRequest& req, const std::string& content) {
  std::string body = content;
  if (req.method == "GET") {
    if (auto it = corrupt_.find(key); it != corrupt_.end() && it->second > 0) {
      --it->second;
      for (char& c : body) c = static_cast<char>(c ^ 0x5a);
    }
  }
  HttpReply r = content_reply(req, body);
  if (req.method == "GET") {
    if (auto it = drops_.find(key); it != drops_.end() && it->second.second > 0) {
      --it->second.second;
      r.drop_after = it->second.first;
    }
  }
  return r;
}

HttpReply FakeHub::handle(const HttpRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string& t = req.target;
  const bool authorised = token_.empty() || req.header("authorization") == "Bearer " + token_;

  const std::string api = "/api/models/" + repo_id_ + "/revision/";
  const std::string old_api = "/api/models/" + old_repo_id_ + "/revision/";
  if (req.method == "GET" && (t.rfind(api, 0) == 0 || (!old_repo_id_.empty() && t.rfind(old_api, 0) == 0))) {
    if (!authorised) return HttpReply{401, {}, "Invalid credentials", {}};
    nlohmann::json j;
    j["id"] = repo_id_;
    j["sha"] = commit_;
    j["private"] = false;  // the fields huggingface_hub's ModelInfo requires
    j["downloads"] = 0;
    j["likes"] = 0;
    j["tags"] = nlohmann::json::array();
    j["siblings"] = nlohmann::json::array();
    for (const auto& [path, f] : files_) j["siblings"].push_back({{"rfilename", path}});
    return HttpReply{200, {{"Content-Type", "application/json"}}, j.dump(), {}};
  }

  if (!old_repo_id_.empty() && t.rfind("/" + old_repo_id_ + "/resolve/", 0) == 0) {
    // A renamed repository: a relative redirect to the new name.
    HttpReply r;
    r.status = 307;
    r.headers.push_back({"Location", "/" + repo_id_ + t.substr(old_repo_id_.size() + 1)});
    return r;
  }

  const std::string resolve = "/" + repo_id_ + "/resolve/";
  if (t.rfind(resolve, 0) == 0 && (req.method == "GET" || req.method == "HEAD")) {
    if (!authorised) return HttpReply{401, {}, "Invalid credentials", {}};
    const std::string rest = t.substr(resolve.size());
    const size_t slash = rest.find('/');
    if (slash == std::string::npos) return not_found();
    const std::string rev = rest.substr(0, slash);
    const std::string path = rest.substr(slash + 1);
    if (rev != commit_ && rev != "main") return not_found();
    auto it = files_.find(path);
    if (it == files_.end()) return not_found();
    const File& f = it->second;
    const auto lie = size_lies_.find(path);
    if (f.lfs) {
      const std::string sha = sha256_hex_of(f.content);
      HttpReply r;
      r.status = 302;
      r.headers = {{"Location", "http://127.0.0.1:" + std::string(req.header("host").substr(
                                                           req.header("host").find(':') + 1)) +
                                    "/cdn/" + sha},
                   {"X-Repo-Commit", commit_},
                   {"X-Linked-Etag", "\"" + sha + "\""},
                   {"X-Linked-Size", std::to_string(lie != size_lies_.end() ? lie->second : f.content.size())},
                   {"ETag", "\"" + git_blob_sha1_of("version https://git-lfs.github.com/spec/v1\n") + "\""}};
      return r;
    }
    HttpReply r = contents(path, req, f.content);
    r.headers.push_back({"X-Repo-Commit", commit_});
    r.headers.push_back({"ETag", "\"" + git_blob_sha1_of(f.content) + "\""});
    if (req.method == "HEAD" && lie != size_lies_.end())
      r.headers.push_back({"Content-Length", std::to_string(lie->second)});
    return r;
  }

  if (req.method == "GET" && t.rfind("/cdn/", 0) == 0) {
    const std::string sha = t.substr(5);
    for (const auto& [path, f] : files_)
      if (f.lfs && sha256_hex_of(f.content) == sha) return contents(path, req, f.content);
    return not_found();
  }

  if (req.method == "GET" && t.rfind("/files/", 0) == 0) {
    auto it = plain_.find(t.substr(7));
    if (it == plain_.end()) return not_found();
    return contents(it->first, req, it->second);
  }
  return not_found();
}

}  // namespace sdvsr::test
