// sdvsr_model_*: load a model folder once for any number of streams.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "capi/capi_internal.h"
#include "runtime/backend.h"
#include "runtime/device_backend.h"
#include "runtime/host_blocks.h"

namespace fs = std::filesystem;
using sdvsr::capi::fail;
using sdvsr::capi::guard;
using sdvsr::capi::require;

namespace {

// The fields a caller compiled against version 1 of the struct can have set.
constexpr uint32_t kModelOptionsV1 =
    static_cast<uint32_t>(offsetof(sdvsr_model_options, log_user_data) + sizeof(void*));
// Version 2 added dtype.
constexpr uint32_t kModelOptionsV2 =
    static_cast<uint32_t>(offsetof(sdvsr_model_options, dtype) + sizeof(const char*));

std::string optional_string(const char* s) { return s ? std::string(s) : std::string(); }

void require_existing(const std::string& path, const char* what, bool folder) {
  if (path.empty()) return;
  std::error_code ec;
  const bool ok = folder ? fs::is_directory(path, ec) : fs::is_regular_file(path, ec);
  if (!ok) fail(SDVSR_ERROR_IO, path + ": " + what + " not found");
}

}  // namespace

extern "C" {

sdvsr_status sdvsr_model_options_init(sdvsr_model_options* options) {
  return guard("sdvsr_model_options_init", SDVSR_ERROR_INTERNAL, [&] {
    require(options, "options");
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(*options);
  });
}

sdvsr_status sdvsr_model_open(const sdvsr_model_options* options, sdvsr_model** model) {
  using namespace sdvsr;
  return guard("sdvsr_model_open", SDVSR_ERROR_MODEL, [&] {
    require(options, "options");
    require(model, "model");
    if (options->struct_size < kModelOptionsV1)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           "options->struct_size is " + std::to_string(options->struct_size) +
               " (call sdvsr_model_options_init first)");
    if (!options->model_dir) fail(SDVSR_ERROR_INVALID_ARGUMENT, "options->model_dir is NULL");
    const std::string device = options->device ? options->device : "cpu";
    const std::string dtype_name =
        options->struct_size >= kModelOptionsV2 && options->dtype ? options->dtype : "float32";
    Backend* backend = nullptr;
    try {
      backend = &backend_for_device(device, parse_compute_dtype(dtype_name));
    } catch (const std::exception& e) {
      // No such device in this build or on this machine, or a dtype it lacks.
      fail(SDVSR_ERROR_UNSUPPORTED, std::string("device '") + device + "', dtype '" + dtype_name +
                                        "': " + e.what());
    }
    if (options->threads < 0)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           "options->threads is " + std::to_string(options->threads) + " (0 means all cores)");

    ModelPaths given;
    given.model_dir = options->model_dir;
    given.unet_dir = optional_string(options->unet_dir);
    given.controlnet_dir = optional_string(options->controlnet_dir);
    given.vae_dir = optional_string(options->vae_dir);
    given.raft_path = optional_string(options->raft_path);
    require_existing(given.model_dir, "model folder", true);
    require_existing(given.unet_dir, "U-Net folder", true);
    require_existing(given.controlnet_dir, "ControlNet folder", true);
    require_existing(given.vae_dir, "VAE folder", true);
    require_existing(given.raft_path, "RAFT weights file", false);
    ModelPaths paths;
    try {
      paths = resolve_model_paths(given);
    } catch (const std::exception& e) {
      fail(SDVSR_ERROR_IO, e.what());  // a required component folder or file is missing
    }

    auto loaded = std::make_shared<capi::LoadedModel>();
    loaded->log = options->log;
    loaded->log_user_data = options->log_user_data;
    loaded->backend = backend;
    if (options->threads > 0) loaded->backend->set_threads(options->threads);
    loaded->log_line(SDVSR_LOG_INFO, "loading model from " + paths.model_dir + " (device " + device +
                                         ", " + compute_dtype_name(backend->compute_dtype()) +
                                         ", " + std::to_string(backend->threads()) + " threads)");
    const auto start = std::chrono::steady_clock::now();
    loaded->bundle = load_model_bundle(paths, *loaded->backend);
    if (loaded->backend->can_record())
      loaded->recorded_steps = std::make_unique<RecordedSteps>(*loaded->bundle, *loaded->backend);
    loaded->side_backend = flow_ahead_backend(*loaded->backend);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start).count();
    loaded->log_line(SDVSR_LOG_INFO, "model loaded in " + std::to_string(ms) + " ms");
    *model = new sdvsr_model{std::move(loaded)};
  });
}

sdvsr_status sdvsr_model_close(sdvsr_model* model) {
  return guard("sdvsr_model_close", SDVSR_ERROR_INTERNAL, [&] {
    delete model;
    sdvsr::host_blocks::release_cached();
  });
}

sdvsr_status sdvsr_model_size_multiple(const sdvsr_model* model, int* multiple) {
  return guard("sdvsr_model_size_multiple", SDVSR_ERROR_INTERNAL, [&] {
    require(model, "model");
    require(multiple, "multiple");
    *multiple = model->loaded->bundle->vae_scale_factor;
  });
}

}  // extern "C"
