#include "weights/http_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace sdvsr::http {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

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

// Errors where no usable answer came from the server at all.
bool is_unreachable(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return true;
    default:
      return false;
  }
}

// Headers of the last response seen (a new status line starts a new response).
struct HeaderSink {
  long status = 0;
  std::map<std::string, std::string> headers;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<HeaderSink*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    sink->headers.clear();
    const size_t sp = line.find(' ');
    sink->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
  } else if (const size_t colon = line.find(':'); colon != std::string::npos) {
    sink->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * n;
}

using CurlPtr = std::unique_ptr<CURL, void (*)(CURL*)>;
using SlistPtr = std::unique_ptr<curl_slist, void (*)(curl_slist*)>;

CurlPtr new_handle(const std::string& url, const Options& opts, SlistPtr& list, HeaderSink& hs,
                   char* errbuf) {
  global_init();
  CurlPtr h(curl_easy_init(), curl_easy_cleanup);
  if (!h) throw std::runtime_error(url + ": cannot create a libcurl handle");
  for (const std::string& line : opts.headers) list.reset(curl_slist_append(list.release(), line.c_str()));
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, opts.connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, opts.stall_timeout_s);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "stream-diffvsr.cpp");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  errbuf[0] = '\0';
  return h;
}

std::string curl_message(CURLcode rc, const char* errbuf) {
  return errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
}

struct BodySink {
  std::string* body;
  size_t max;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  const size_t len = size * n;
  if (sink->body->size() < sink->max)
    sink->body->append(data, std::min(len, sink->max - sink->body->size()));
  return len;
}

uint64_t file_size_or_zero(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Where one GET attempt writes: appends for a 206 that starts where the file ends,
// restarts the file for a 200, keeps anything else (an error page) in memory.
struct PartialFileSink {
  int fd = -1;
  uint64_t start = 0;       // bytes in the file when the request was made
  uint64_t written = 0;     // bytes added by this attempt
  const HeaderSink* hs = nullptr;
  bool decided = false;
  bool to_file = false;
  std::string error_body;
  std::string failure;      // why the write callback stopped the transfer
  const std::function<void(uint64_t, std::optional<uint64_t>)>* progress = nullptr;
  std::optional<uint64_t> total;
};

size_t on_partial_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<PartialFileSink*>(user);
  const size_t len = size * n;
  if (!s->decided) {
    s->decided = true;
    if (s->hs->status == 206) {
      // "bytes <first>-<last>/<total>": it must continue exactly where the file ends.
      auto it = s->hs->headers.find("content-range");
      unsigned long long first = 0;
      if (it == s->hs->headers.end() || std::sscanf(it->second.c_str(), "bytes %llu-", &first) != 1 ||
          first != s->start) {
        s->failure = "206 answer does not continue at byte " + std::to_string(s->start);
        return 0;
      }
      s->to_file = true;
    } else if (s->hs->status == 200) {
      // The server ignored the Range: start over.
      if (::ftruncate(s->fd, 0) != 0 || ::lseek(s->fd, 0, SEEK_SET) < 0) {
        s->failure = std::string("cannot truncate the partial file (") + std::strerror(errno) + ")";
        return 0;
      }
      s->start = 0;
      s->to_file = true;
    }
  }
  if (!s->to_file) {
    if (s->error_body.size() < 4096) s->error_body.append(data, std::min<size_t>(len, 4096));
    return len;
  }
  size_t done = 0;
  while (done < len) {
    const ssize_t w = ::write(s->fd, data + done, len - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      s->failure = std::string("cannot write the partial file (") + std::strerror(errno) + ")";
      return 0;
    }
    done += static_cast<size_t>(w);
  }
  s->written += len;
  if (s->progress && *s->progress) (*s->progress)(s->start + s->written, s->total);
  return len;
}

std::string status_problem(long status, const std::string& body) {
  std::string msg = "HTTP " + std::to_string(status);
  if (status == 401 || status == 403)
    msg += " (not authorised: private or gated repository? set HF_TOKEN)";
  else if (status == 404)
    msg += " (not found)";
  const std::string first_line = trim(body.substr(0, std::min<size_t>(body.find('\n'), 200)));
  if (!first_line.empty() && first_line.find_first_of("<") != 0) msg += ": " + first_line;
  return msg;
}

}  // namespace

std::optional<std::string> Response::header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

Response request(const std::string& method, const std::string& url, const Options& opts, size_t max_body) {
  SlistPtr list(nullptr, curl_slist_free_all);
  HeaderSink hs;
  char errbuf[CURL_ERROR_SIZE];
  CurlPtr h = new_handle(url, opts, list, hs, errbuf);
  Response r;
  BodySink body{&r.body, max_body};
  CURL* c = h.get();
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    if (is_unreachable(rc) || hs.status == 0) throw NetworkError(url + ": " + curl_message(rc, errbuf));
    throw std::runtime_error(url + ": " + curl_message(rc, errbuf));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  r.headers = std::move(hs.headers);
  r.url = url;
  return r;
}

uint64_t download_resumable(const std::string& url, const std::string& partial_path,
                            std::optional<uint64_t> expected_size, const DownloadOptions& opts) {
  int stalled = 0;
  std::string last_problem;
  while (true) {
    uint64_t have = file_size_or_zero(partial_path);
    if (expected_size && have > *expected_size) {
      // Longer than the file can be: the partial data is not this file.
      if (::truncate(partial_path.c_str(), 0) != 0 && errno != ENOENT)
        throw std::runtime_error(partial_path + ": cannot truncate (" + std::strerror(errno) + ")");
      have = 0;
    }
    if (expected_size && have == *expected_size && have > 0) return have;

    const int fd = ::open(partial_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(partial_path + ": cannot open for writing (" + std::strerror(errno) + ")");
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};

    Options req = opts;
    if (have > 0) req.headers.push_back("Range: bytes=" + std::to_string(have) + "-");
    SlistPtr list(nullptr, curl_slist_free_all);
    HeaderSink hs;
    char errbuf[CURL_ERROR_SIZE];
    CurlPtr h = new_handle(url, req, list, hs, errbuf);
    PartialFileSink sink;
    sink.fd = fd;
    sink.start = have;
    sink.hs = &hs;
    sink.progress = &opts.progress;
    sink.total = expected_size;
    CURL* c = h.get();
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_partial_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    const CURLcode rc = curl_easy_perform(c);

    if (!sink.failure.empty()) throw std::runtime_error(url + ": " + sink.failure);
    if (rc == CURLE_OK && !sink.to_file) {
      if (hs.status == 416 && have > 0) {
        // Range past the end: what we hold is not a prefix of this file; start over.
        if (::ftruncate(fd, 0) != 0) throw std::runtime_error(partial_path + ": cannot truncate");
        if (++stalled > opts.max_stalled_attempts) throw std::runtime_error(url + ": HTTP 416 after restarting");
        continue;
      }
      if (hs.status == 200 || hs.status == 206) {
        // An empty body: the decision was never made.
        if (hs.status == 200 && ::ftruncate(fd, 0) != 0) throw std::runtime_error(partial_path + ": cannot truncate");
      } else {
        throw std::runtime_error(url + ": " + status_problem(hs.status, sink.error_body));
      }
    }
    if (rc == CURLE_OK) {
      const uint64_t size = file_size_or_zero(partial_path);
      if (expected_size && size != *expected_size)
        throw std::runtime_error(url + ": downloaded " + std::to_string(size) + " bytes, expected " +
                                 std::to_string(*expected_size));
      return size;
    }
    // A transfer that broke off (dropped connection, stall): resume from what arrived.
    last_problem = curl_message(rc, errbuf);
    if (hs.status != 0 && hs.status != 200 && hs.status != 206)
      throw std::runtime_error(url + ": " + status_problem(hs.status, sink.error_body));
    if (sink.written > 0) {
      stalled = 0;
    } else if (++stalled > opts.max_stalled_attempts) {
      if (is_unreachable(rc) && hs.status == 0) throw NetworkError(url + ": " + last_problem);
      throw std::runtime_error(url + ": " + last_problem + " (gave up after " +
                               std::to_string(opts.max_stalled_attempts) + " retries)");
    }
    if (opts.retry_delay_s > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(opts.retry_delay_s));
  }
}

std::string origin_of(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const size_t path = url.find('/', scheme + 3);
  return lower(url.substr(0, path));
}

std::string resolve_location(const std::string& base_url, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  if (!location.empty() && location[0] == '/') {
    if (location.size() > 1 && location[1] == '/') {  // scheme-relative
      const size_t scheme = base_url.find("://");
      return base_url.substr(0, scheme + 1) + location;
    }
    return origin_of(base_url) + location;
  }
  // Relative to the base's folder.
  const size_t query = base_url.find('?');
  const std::string no_query = base_url.substr(0, query);
  return no_query.substr(0, no_query.rfind('/') + 1) + location;
}

std::string quote(const std::string& s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

}  // namespace sdvsr::http
