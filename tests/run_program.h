#pragma once
// Runs one of the built programs and captures what it prints.
#include <string>
#include <vector>

namespace sdvsr::test {

struct ProgramResult {
  int exit_code = -1;
  std::string out, err;
  long peak_rss_kib = 0;  // the child's peak resident memory (wait4 rusage)
};

// `program` is a name in the build folder (e.g. "sdvsr"); stdin is /dev/null.
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args);

}  // namespace sdvsr::test
