#pragma once
// Runs one of the built programs and captures what it prints.
#include <string>
#include <vector>

namespace sdvsr::test {

struct ProgramResult {
  int exit_code = -1;
  std::string out, err;
};

// `program` is a name in the build folder (e.g. "sdvsr"); arguments are quoted for the shell.
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args);

}  // namespace sdvsr::test
