// sdvsr_stream_*: one video sequence on a loaded model, a frame at a time.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "capi/capi_internal.h"
#include "capi/stream_state_file.h"
#include "runtime/host_blocks.h"
#include "media/frame_convert.h"

using sdvsr::capi::fail;
using sdvsr::capi::guard;
using sdvsr::capi::require;

namespace {

constexpr uint32_t kStreamOptionsV1 = static_cast<uint32_t>(
    offsetof(sdvsr_stream_options, progress_user_data) + sizeof(void*));
// LR sides beyond this are refused (the HR frame would be over 64k pixels wide).
constexpr int kMaxSide = 16384;

std::string size_str(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

// The LR frame as an Image padded on the right and bottom by edge replication
// to multiples of `m` (the CLI pads the same way; the output is cropped back).
sdvsr::Image padded_frame(const uint8_t* lr, int width, int height, size_t stride, int m) {
  sdvsr::Image img;
  img.width = (width + m - 1) / m * m;
  img.height = (height + m - 1) / m * m;
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* src = lr + static_cast<size_t>(std::min(y, height - 1)) * stride;
    uint8_t* dst = &img.rgb[static_cast<size_t>(y) * img.width * 3];
    std::memcpy(dst, src, static_cast<size_t>(width) * 3);
    for (int x = width; x < img.width; ++x) std::memcpy(dst + x * 3, src + (width - 1) * 3, 3);
  }
  return img;
}

sdvsr::Tensor latents_tensor(const sdvsr_latents& l) {
  require(l.data, "init_latents->data");
  require(l.shape, "init_latents->shape");
  if (l.ndim < 1 || l.ndim > SDVSR_MAX_DIMS)
    fail(SDVSR_ERROR_INVALID_ARGUMENT, "init_latents->ndim is " + std::to_string(l.ndim));
  sdvsr::Shape shape(l.shape, l.shape + l.ndim);
  for (int64_t d : shape)
    if (d <= 0 || d > (int64_t{1} << 32))
      fail(SDVSR_ERROR_INVALID_ARGUMENT, "init_latents has shape " + sdvsr::shape_str(shape));
  sdvsr::Tensor t = sdvsr::Tensor::uninitialized(shape);
  std::memcpy(t.data(), l.data, static_cast<size_t>(t.numel()) * sizeof(float));
  return t;
}

// The frame as the pipeline takes it: padded, [1, 3, h, w] in [-1, 1] on `be`.
sdvsr::Tensor lr_tensor(sdvsr::Backend& be, const uint8_t* lr, int width, int height,
                        size_t stride, int multiple) {
  const sdvsr::Image padded = padded_frame(lr, width, height, stride, multiple);
  // VaeImageProcessor: v / 255, then 2x - 1.
  return be.add_scalar(be.scale(sdvsr::image_to_tensor(padded), 2.0f), -1.0f);
}

// `next_lr` (may be null) is the frame the caller will push next.
sdvsr_status push(const char* where, sdvsr_stream* s, const uint8_t* lr, int width, int height,
                  size_t lr_stride, uint8_t* hr, size_t hr_stride, const sdvsr_latents* init,
                  const uint8_t* next_lr = nullptr, size_t next_lr_stride = 0) {
  using namespace sdvsr;
  return guard(where, SDVSR_ERROR_INTERNAL, [&] {
    require(s, "stream");
    require(lr, "lr");
    require(hr, "hr");
    if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
      fail(SDVSR_ERROR_INVALID_ARGUMENT, "frame size " + size_str(width, height) +
                                             " (each side must be 1.." + std::to_string(kMaxSide) + ")");
    if (lr_stride < static_cast<size_t>(width) * 3)
      fail(SDVSR_ERROR_INVALID_ARGUMENT, "lr_stride " + std::to_string(lr_stride) + " < 3 * width");
    if (hr_stride < static_cast<size_t>(width) * 12)
      fail(SDVSR_ERROR_INVALID_ARGUMENT, "hr_stride " + std::to_string(hr_stride) +
                                             " < 3 * (4 * width) = " + std::to_string(width * 12));
    if (s->width != 0 && (width != s->width || height != s->height))
      fail(SDVSR_ERROR_INVALID_ARGUMENT, "frame size " + size_str(width, height) +
                                             " differs from the stream's first frame " +
                                             size_str(s->width, s->height));
    if (next_lr && next_lr_stride < static_cast<size_t>(width) * 3)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           "next_lr_stride " + std::to_string(next_lr_stride) + " < 3 * width");
    std::optional<Tensor> latents;
    if (init) latents = latents_tensor(*init);
    const int64_t index = s->session->state().index;
    if (s->cancel_requested.exchange(false))
      fail(SDVSR_ERROR_CANCELLED, "cancelled before frame " + std::to_string(index));

    capi::LoadedModel& model = *s->loaded;
    std::lock_guard<std::mutex> lock(model.compute);
    Backend& be = *model.backend;
    const auto start = std::chrono::steady_clock::now();
    const int multiple = model.bundle->vae_scale_factor;
    const Tensor lr_t = lr_tensor(be, lr, width, height, lr_stride, multiple);
    std::optional<Tensor> next_t;
    if (next_lr && s->flow_ahead)
      next_t = lr_tensor(be, next_lr, width, height, next_lr_stride, multiple);
    const int64_t flows_before = s->flow_ahead ? s->flow_ahead->flows_used() : 0;
    const StreamState before = s->session->state();  // shares storage: cheap
    Image out;
    try {
      out = tensor_to_image(be.to_host(s->session->push(lr_t, latents ? &*latents : nullptr,
                                                        next_t ? &*next_t : nullptr)));
    } catch (...) {
      s->session->restore(before);
      throw;
    }
    for (int y = 0; y < 4 * height; ++y)
      std::memcpy(hr + static_cast<size_t>(y) * hr_stride,
                  &out.rgb[static_cast<size_t>(y) * out.width * 3], static_cast<size_t>(width) * 12);
    s->width = width;
    s->height = height;
    const int steps = s->options.num_inference_steps;
    if (s->progress) s->progress(s->progress_user_data, index, steps, steps);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start).count();
    model.log_line(SDVSR_LOG_DEBUG, "frame " + std::to_string(index) + " (" +
                                        size_str(width, height) + " -> " +
                                        size_str(4 * width, 4 * height) + ") in " +
                                        std::to_string(ms) + " ms" +
                                        (s->flow_ahead && s->flow_ahead->flows_used() > flows_before
                                             ? ", its flow computed ahead"
                                             : ""));
  });
}

}  // namespace

extern "C" {

sdvsr_status sdvsr_stream_options_init(sdvsr_stream_options* options) {
  return guard("sdvsr_stream_options_init", SDVSR_ERROR_INTERNAL, [&] {
    require(options, "options");
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(*options);
    options->num_inference_steps = 4;
  });
}

sdvsr_status sdvsr_stream_open(sdvsr_model* model, const sdvsr_stream_options* options,
                               sdvsr_stream** stream) {
  using namespace sdvsr;
  return guard("sdvsr_stream_open", SDVSR_ERROR_INTERNAL, [&] {
    require(model, "model");
    require(stream, "stream");
    sdvsr_stream_options o;
    sdvsr_stream_options_init(&o);
    if (options) {
      if (options->struct_size < kStreamOptionsV1)
        fail(SDVSR_ERROR_INVALID_ARGUMENT,
             "options->struct_size is " + std::to_string(options->struct_size) +
                 " (call sdvsr_stream_options_init first)");
      // A newer caller's struct may be larger: read the fields this version knows.
      std::memcpy(&o, options, std::min<size_t>(sizeof(o), options->struct_size));
      o.struct_size = sizeof(o);
    }
    if (o.num_inference_steps < 1 || o.num_inference_steps > 1000)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           "num_inference_steps is " + std::to_string(o.num_inference_steps) + " (1..1000)");
    if (o.flow_ahead < SDVSR_FLOW_AHEAD_AUTO || o.flow_ahead > SDVSR_FLOW_AHEAD_OFF)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           "flow_ahead is " + std::to_string(o.flow_ahead) + " (0 auto, 1 on, 2 off)");
    auto s = std::make_unique<sdvsr_stream>();
    s->loaded = model->loaded;
    s->progress = o.progress;
    s->progress_user_data = o.progress_user_data;
    s->options.num_inference_steps = o.num_inference_steps;
    s->options.seed = o.seed;
    sdvsr_stream* self = s.get();
    s->options.before_step = [self](int step, int steps) {
      const int64_t index = self->session->state().index;
      if (self->progress) self->progress(self->progress_user_data, index, step, steps);
      if (self->cancel_requested.exchange(false))
        fail(SDVSR_ERROR_CANCELLED, "cancelled at step " + std::to_string(step) + " of frame " +
                                        std::to_string(index));
    };
    capi::LoadedModel& model = *s->loaded;
    s->session = std::make_unique<StreamSession>(*model.bundle, *model.backend, s->options);
    s->session->set_recorded_steps(model.recorded_steps.get());
    Backend* side = o.flow_ahead == SDVSR_FLOW_AHEAD_OFF ? nullptr : model.side_backend;
    if (!side && o.flow_ahead == SDVSR_FLOW_AHEAD_ON) side = model.backend;
    if (side) {
      // Its own RAFT: the feature cache of the previous frame is per stream.
      s->flow_ahead = std::make_unique<FlowAhead>(model.bundle->raft_path, *side, &model.side_lane);
      s->session->set_flow_ahead(s->flow_ahead.get());
    }
    *stream = s.release();
  });
}

sdvsr_status sdvsr_stream_close(sdvsr_stream* stream) {
  return guard("sdvsr_stream_close", SDVSR_ERROR_INTERNAL, [&] {
    delete stream;
    sdvsr::host_blocks::release_cached();  // the blocks kept for reuse between frames
  });
}

sdvsr_status sdvsr_stream_push(sdvsr_stream* stream, const uint8_t* lr, int width, int height,
                               size_t lr_stride, uint8_t* hr, size_t hr_stride) {
  return push("sdvsr_stream_push", stream, lr, width, height, lr_stride, hr, hr_stride, nullptr);
}

sdvsr_status sdvsr_stream_push_next(sdvsr_stream* stream, const uint8_t* lr, int width, int height,
                                    size_t lr_stride, const uint8_t* next_lr, size_t next_lr_stride,
                                    uint8_t* hr, size_t hr_stride) {
  return push("sdvsr_stream_push_next", stream, lr, width, height, lr_stride, hr, hr_stride,
              nullptr, next_lr, next_lr_stride);
}

sdvsr_status sdvsr_stream_push_latents(sdvsr_stream* stream, const uint8_t* lr, int width,
                                       int height, size_t lr_stride, uint8_t* hr, size_t hr_stride,
                                       const sdvsr_latents* init_latents) {
  return push("sdvsr_stream_push_latents", stream, lr, width, height, lr_stride, hr, hr_stride,
              init_latents);
}

sdvsr_status sdvsr_stream_cancel(sdvsr_stream* stream) {
  if (!stream)
    return sdvsr::capi::set_error(SDVSR_ERROR_INVALID_ARGUMENT, "sdvsr_stream_cancel: stream is NULL");
  stream->cancel_requested.store(true);
  return SDVSR_OK;
}

sdvsr_status sdvsr_stream_frame_index(const sdvsr_stream* stream, int64_t* index) {
  return guard("sdvsr_stream_frame_index", SDVSR_ERROR_INTERNAL, [&] {
    require(stream, "stream");
    require(index, "index");
    *index = stream->session->state().index;
  });
}

sdvsr_status sdvsr_stream_reset(sdvsr_stream* stream) {
  return guard("sdvsr_stream_reset", SDVSR_ERROR_INTERNAL, [&] {
    require(stream, "stream");
    stream->session->reset();
    stream->width = stream->height = 0;
  });
}

sdvsr_status sdvsr_stream_save_state(const sdvsr_stream* stream, const char* path) {
  return guard("sdvsr_stream_save_state", SDVSR_ERROR_IO, [&] {
    require(stream, "stream");
    require(path, "path");
    sdvsr::capi::SavedStream saved;
    saved.state = sdvsr::state_to_host(*stream->loaded->backend, stream->session->state());
    saved.seed = stream->options.seed;
    saved.num_inference_steps = stream->options.num_inference_steps;
    saved.width = stream->width;
    saved.height = stream->height;
    sdvsr::capi::save_stream_state(path, saved);
  });
}

sdvsr_status sdvsr_stream_load_state(sdvsr_stream* stream, const char* path) {
  return guard("sdvsr_stream_load_state", SDVSR_ERROR_IO, [&] {
    require(stream, "stream");
    require(path, "path");
    sdvsr::capi::SavedStream saved = sdvsr::capi::load_stream_state(path);
    if (saved.seed != stream->options.seed ||
        saved.num_inference_steps != stream->options.num_inference_steps)
      fail(SDVSR_ERROR_INVALID_ARGUMENT,
           std::string(path) + ": state of a stream with seed " + std::to_string(saved.seed) +
               " and " + std::to_string(saved.num_inference_steps) +
               " steps; this stream has seed " + std::to_string(stream->options.seed) + " and " +
               std::to_string(stream->options.num_inference_steps) + " steps");
    if (saved.state.index > 0) {
      const int m = stream->loaded->bundle->vae_scale_factor;
      const sdvsr::Shape want{1, 3, int64_t{4} * ((saved.height + m - 1) / m * m),
                              int64_t{4} * ((saved.width + m - 1) / m * m)};
      if (saved.state.prev_upscaled.shape() != want)
        fail(SDVSR_ERROR_INVALID_ARGUMENT,
             std::string(path) + ": saved frames have shape " +
                 sdvsr::shape_str(saved.state.prev_upscaled.shape()) + ", this model needs " +
                 sdvsr::shape_str(want) + " for " + size_str(saved.width, saved.height));
    }
    stream->session->restore(std::move(saved.state));
    stream->width = saved.width;
    stream->height = saved.height;
  });
}

}  // extern "C"
