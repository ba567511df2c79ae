#include "runtime/warnings.h"

#include <iostream>
#include <mutex>

namespace sdvsr {
namespace {

std::mutex g_mutex;
WarningSink g_sink;

}  // namespace

void set_warning_sink(WarningSink sink) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sink = std::move(sink);
}

void warn(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_sink)
    g_sink(line);
  else
    std::cerr << "warning: " << line << "\n";
}

}  // namespace sdvsr
