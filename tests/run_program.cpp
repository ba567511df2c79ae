#include "run_program.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "golden.h"

extern char** environ;

namespace sdvsr::test {

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string program_path(const std::string& program) {
  return std::string(SDVSR_BINARY_DIR) + "/" + program + SDVSR_PROGRAM_SUFFIX;
}

pid_t spawn_command(const std::vector<std::string>& args, const std::string& out_path,
                    const std::string& err_path) {
  if (args.empty()) return -1;
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

ProgramResult run_command(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string dir = temp_dir("run-" + std::to_string(counter++));
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  ProgramResult r;
  const pid_t pid = spawn_command(args, out, err);
  if (pid < 0) {
    r.err = "cannot start " + (args.empty() ? std::string("(nothing)") : args[0]);
    return r;
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  r.signalled = WIFSIGNALED(status);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file_bytes(out);
  r.err = read_file_bytes(err);
  r.peak_rss_kib = ru.ru_maxrss;
  return r;
}

ProgramResult run_program(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> argv{program_path(program)};
  argv.insert(argv.end(), args.begin(), args.end());
  ProgramResult r = run_command(argv);
  if (r.exit_code == -1) throw std::runtime_error(r.err);
  return r;
}

}  // namespace sdvsr::test
