#include "cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace sdvsr::cli {

namespace {

std::atomic<int> g_signals{0};
// The handler may only read plain memory: the path is copied into a fixed
// buffer and published through an atomic flag.
char g_temp[4096];
std::atomic<bool> g_temp_set{false};

void on_signal(int sig) {
  if (g_signals.fetch_add(1) == 0) return;  // first: the main loop stops cleanly
  if (g_temp_set.load()) ::unlink(g_temp);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // Past a file-size limit (RLIMIT_FSIZE) a write fails with EFBIG and is
  // reported naming the file, like a full disk, instead of killing the run.
  ::signal(SIGXFSZ, SIG_IGN);
}

bool stop_requested() { return g_signals.load() > 0; }

void request_stop() {
  int expected = 0;
  g_signals.compare_exchange_strong(expected, 1);
}

void set_pending_temp(const std::string& path) {
  g_temp_set.store(false);
  if (path.empty() || path.size() >= sizeof g_temp) return;
  std::memcpy(g_temp, path.c_str(), path.size() + 1);
  g_temp_set.store(true);
}

}  // namespace sdvsr::cli
