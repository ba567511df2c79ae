#pragma once
// Shared by the fuzz targets: the readers under test open files by path, so
// each input is written to one temporary file per process, and only the
// project's documented error (std::runtime_error) may escape a reader.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace sdvsr::fuzz {

// The path holding the current input; rewritten (and truncated) for every input.
inline const std::string& write_temp_file(const uint8_t* data, size_t size, const char* suffix) {
  static std::string path;
  static int fd = -1;
  if (fd < 0) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/sdvsr-fuzz-XXXXXX" + suffix;
    fd = mkstemps(tmpl.data(), static_cast<int>(std::string(suffix).size()));
    if (fd < 0) {
      std::perror("mkstemps");
      std::abort();
    }
    path = tmpl;
    std::atexit([] { unlink(path.c_str()); });
  }
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::perror("writing the fuzz input");
    std::abort();
  }
  return path;
}

// Runs `body`; a std::runtime_error is the expected refusal of bad input, any
// other exception breaks the readers' contract and stops the fuzzer.
template <typename Body>
void expect_only_runtime_errors(Body&& body) {
  try {
    body();
  } catch (const std::runtime_error& e) {
    // SDVSR_FUZZ_VERBOSE=1 shows why an input was refused (checking the seeds).
    static const bool verbose = std::getenv("SDVSR_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reader threw %s instead of std::runtime_error: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

// A failed invariant of accepted input.
#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

}  // namespace sdvsr::fuzz
