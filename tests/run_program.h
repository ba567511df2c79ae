#pragma once
// Runs programs and captures what they print: the built programs (sdvsr,
// sdvsr-bench, ...) and system tools (setpriv, prlimit, unshare) in front of them.
#include <sys/types.h>

#include <string>
#include <vector>

namespace sdvsr::test {

struct ProgramResult {
  int exit_code = -1;     // 128 + signal when killed; -1 when it could not be started
  bool signalled = false;
  std::string out, err;   // err is "cannot start <argv[0]>" when it could not be started
  long peak_rss_kib = 0;  // the child's peak resident memory (wait4 rusage)
};

// Starts argv (argv[0] a path, or a name looked up on PATH) with stdin from
// /dev/null and stdout/stderr into the given files. Returns the pid, or -1.
pid_t spawn_command(const std::vector<std::string>& argv, const std::string& out_path,
                    const std::string& err_path);

// Runs argv to completion. A program that cannot be started gives exit_code -1.
ProgramResult run_command(const std::vector<std::string>& argv);

// `program` is a name in the build folder (e.g. "sdvsr"); throws when it cannot be started.
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args);
// Its full path (in the CUDA emulator's tests, the name + "-emulated": the
// program linked with the emulated engine).
std::string program_path(const std::string& program);

// A file's bytes ("" when it cannot be read).
std::string read_file_bytes(const std::string& path);

}  // namespace sdvsr::test
