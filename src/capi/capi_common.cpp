// Version, status names and the thread's last error.
#include <string>

#include "capi/capi_internal.h"

#define SDVSR_STR2(x) #x
#define SDVSR_STR(x) SDVSR_STR2(x)

namespace sdvsr::capi {

namespace {
thread_local std::string last_error;
}

sdvsr_status set_error(sdvsr_status status, const std::string& message) {
  try {
    last_error = message;
  } catch (...) {
    // Out of memory while reporting: keep the status, lose the text.
  }
  return status;
}

}  // namespace sdvsr::capi

extern "C" {

const char* sdvsr_version(void) {
  return SDVSR_STR(SDVSR_VERSION_MAJOR) "." SDVSR_STR(SDVSR_VERSION_MINOR) "." SDVSR_STR(
      SDVSR_VERSION_PATCH);
}

int sdvsr_version_number(void) {
  return SDVSR_VERSION_MAJOR * 10000 + SDVSR_VERSION_MINOR * 100 + SDVSR_VERSION_PATCH;
}

const char* sdvsr_status_name(sdvsr_status status) {
  switch (status) {
    case SDVSR_OK: return "SDVSR_OK";
    case SDVSR_ERROR_INVALID_ARGUMENT: return "SDVSR_ERROR_INVALID_ARGUMENT";
    case SDVSR_ERROR_IO: return "SDVSR_ERROR_IO";
    case SDVSR_ERROR_MODEL: return "SDVSR_ERROR_MODEL";
    case SDVSR_ERROR_UNSUPPORTED: return "SDVSR_ERROR_UNSUPPORTED";
    case SDVSR_ERROR_CANCELLED: return "SDVSR_ERROR_CANCELLED";
    case SDVSR_ERROR_OUT_OF_MEMORY: return "SDVSR_ERROR_OUT_OF_MEMORY";
    case SDVSR_ERROR_INTERNAL: return "SDVSR_ERROR_INTERNAL";
  }
  return "SDVSR_UNKNOWN_STATUS";
}

const char* sdvsr_last_error(void) { return sdvsr::capi::last_error.c_str(); }

}  // extern "C"
