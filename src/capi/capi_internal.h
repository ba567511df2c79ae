#pragma once
// What the C handles hold, and the one place C++ failures become C status codes.
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "pipeline/flow_ahead.h"
#include "pipeline/model_bundle.h"
#include "pipeline/stream_session.h"
#include "sdvsr/sdvsr.h"

namespace sdvsr::capi {

// A failure whose status is known where it is raised.
class Error : public std::runtime_error {
 public:
  Error(sdvsr_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  sdvsr_status status() const { return status_; }

 private:
  sdvsr_status status_;
};

[[noreturn]] inline void fail(sdvsr_status status, const std::string& message) {
  throw Error(status, message);
}

// Records `message` as this thread's last error and returns `status`.
sdvsr_status set_error(sdvsr_status status, const std::string& message);

// Runs `body` (which returns nothing), turning every exception into a status:
// Error -> its own status, std::invalid_argument -> INVALID_ARGUMENT,
// std::bad_alloc -> OUT_OF_MEMORY, any other std::exception -> `otherwise`.
// `where` prefixes the message ("sdvsr_stream_push: ...").
template <class Body>
sdvsr_status guard(const char* where, sdvsr_status otherwise, Body&& body) noexcept {
  try {
    body();
    return SDVSR_OK;
  } catch (const Error& e) {
    return set_error(e.status(), std::string(where) + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    return set_error(SDVSR_ERROR_INVALID_ARGUMENT, std::string(where) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return set_error(SDVSR_ERROR_OUT_OF_MEMORY, std::string(where) + ": out of memory");
  } catch (const std::exception& e) {
    return set_error(otherwise, std::string(where) + ": " + e.what());
  } catch (...) {
    return set_error(SDVSR_ERROR_INTERNAL, std::string(where) + ": unknown failure");
  }
}

// Throws INVALID_ARGUMENT naming the parameter when `p` is NULL.
inline void require(const void* p, const char* name) {
  if (!p) fail(SDVSR_ERROR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

// The loaded model, shared by the model handle and every stream opened on it.
struct LoadedModel {
  std::unique_ptr<ModelBundle> bundle;
  Backend* backend = nullptr;
  std::mutex compute;  // one frame at a time across the model's streams
  // Each resolution's denoising step recorded once (CUDA graphs) and replayed
  // for every stream of the model (pushes are one at a time); null on the CPU.
  std::unique_ptr<RecordedSteps> recorded_steps;
  // Flow-ahead: the backend the streams' next-frame flows run on (a second
  // CUDA stream; null on the CPU, where SDVSR_FLOW_AHEAD_ON uses `backend`
  // from a second thread), one flow at a time across the streams.
  Backend* side_backend = nullptr;
  std::mutex side_lane;
  sdvsr_log_fn log = nullptr;
  void* log_user_data = nullptr;

  void log_line(sdvsr_log_level level, const std::string& message) const {
    if (log) log(log_user_data, level, message.c_str());
  }
};

}  // namespace sdvsr::capi

struct sdvsr_model {
  std::shared_ptr<sdvsr::capi::LoadedModel> loaded;
};

struct sdvsr_stream {
  std::shared_ptr<sdvsr::capi::LoadedModel> loaded;
  sdvsr::StreamOptions options;  // seed and steps (its before_step hook points here)
  sdvsr_progress_fn progress = nullptr;
  void* progress_user_data = nullptr;
  std::atomic<bool> cancel_requested{false};
  // The LR size of the sequence's first frame (0 before it): later frames must match.
  int width = 0, height = 0;
  // Declared before the session, which points to it (destroyed after it).
  std::unique_ptr<sdvsr::FlowAhead> flow_ahead;  // null when flow-ahead is off
  std::unique_ptr<sdvsr::StreamSession> session;
};
