#include "run_program.h"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "golden.h"

namespace sdvsr::test {

namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

ProgramResult run_program(const std::string& program, const std::vector<std::string>& args) {
  static int counter = 0;
  const std::string dir = temp_dir("run-" + std::to_string(counter++));
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  std::string cmd = quote(std::string(SDVSR_BINARY_DIR) + "/" + program);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " </dev/null >" + quote(out) + " 2>" + quote(err);
  const int status = std::system(cmd.c_str());
  ProgramResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace sdvsr::test
