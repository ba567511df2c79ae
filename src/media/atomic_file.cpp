#include "media/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sdvsr {

void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& fill) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (!file) throw std::runtime_error(path + ": cannot create (" + std::strerror(errno) + ")");
  try {
    fill(file);
  } catch (...) {
    std::fclose(file);
    std::remove(tmp.c_str());
    throw;
  }
  const bool flushed = std::fflush(file) == 0 && !std::ferror(file);
  const int saved_errno = errno;
  if (std::fclose(file) != 0 || !flushed) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed (" + std::strerror(saved_errno) + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename the temporary file into place (" +
                             std::strerror(e) + ")");
  }
}

}  // namespace sdvsr
