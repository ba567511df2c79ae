#pragma once
// SIGINT/SIGTERM: the first one asks for a clean stop (the current frame is
// finished, the resume state written, exit 130); a second one aborts at once,
// removing the temporary file being written so no half-written file is left.
// SIGXFSZ is ignored: a write past a file-size limit fails like a full disk.
#include <string>

namespace sdvsr::cli {

void install_stop_handlers();
bool stop_requested();
// As if a signal had arrived (the SDVSR_TEST_STOP_AFTER test hook).
void request_stop();

// The temporary file an atomic write is filling right now (removed by an
// abort); cleared by passing "".
void set_pending_temp(const std::string& path);

}  // namespace sdvsr::cli
