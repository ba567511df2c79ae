#pragma once
// The few HTTP operations the downloads need, on libcurl: a request whose
// redirects are left to the caller (the hub's metadata lives in the 302), and a
// resumable download into a partial file.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdvsr::http {

// The server could not be reached at all (no connection, DNS, timeout): the
// caller may fall back to a cache or tell the user how to work offline.
class NetworkError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  // abort when no byte arrived for this long
  std::vector<std::string> headers;  // "Name: value"
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  std::string url;

  std::optional<std::string> header(const std::string& lowercase_name) const;
};

// One request; redirects are returned, not followed. The body is kept up to
// `max_body` bytes (the rest is dropped). Throws NetworkError when nothing came back.
Response request(const std::string& method, const std::string& url, const Options& opts,
                 size_t max_body = 8 << 20);

struct DownloadOptions : Options {
  int max_stalled_attempts = 5;  // retries in a row that brought no new byte
  double retry_delay_s = 1.0;
  // (bytes in the partial file, total when known)
  std::function<void(uint64_t, std::optional<uint64_t>)> progress;
};

// Downloads `url` (redirects followed) into `partial_path`, continuing from the
// bytes already there with a Range request and again after dropped connections.
// Checks the final size against `expected_size` when given. Throws one line naming
// the URL and the problem.
uint64_t download_resumable(const std::string& url, const std::string& partial_path,
                            std::optional<uint64_t> expected_size, const DownloadOptions& opts);

// "scheme://host[:port]" of a URL ("" when it has none).
std::string origin_of(const std::string& url);
// A Location header made absolute against the URL it answered.
std::string resolve_location(const std::string& base_url, const std::string& location);
// Percent-encoding as Python's urllib.parse.quote (safe="/" or safe="").
std::string quote(const std::string& s, bool keep_slash);

}  // namespace sdvsr::http
