/*
 * sdvsr.h - the C API of stream-diffvsr.cpp (streaming 4x video super-resolution).
 *
 * C99, no dependencies. Link with -lsdvsr (libsdvsr.so).
 *
 * Usage in brief:
 *
 *   sdvsr_model_options mo;
 *   sdvsr_model_options_init(&mo);
 *   mo.model_dir = "/path/to/Stream-DiffVSR";
 *   sdvsr_model* model;
 *   if (sdvsr_model_open(&mo, &model) != SDVSR_OK) { puts(sdvsr_last_error()); ... }
 *
 *   sdvsr_stream_options so;
 *   sdvsr_stream_options_init(&so);
 *   sdvsr_stream* stream;
 *   sdvsr_stream_open(model, &so, &stream);
 *   for each LR frame (w x h, RGB):
 *     sdvsr_stream_push(stream, lr, w, h, w * 3, hr, 4 * w * 3);   (hr holds 4w x 4h RGB)
 *   sdvsr_stream_close(stream);
 *   sdvsr_model_close(model);
 *
 * Conventions (they hold for every function unless its comment says otherwise):
 *  - Every function returns an sdvsr_status; SDVSR_OK (0) is success. Results come
 *    back through pointer arguments, which are written only on success.
 *  - Every pointer argument is checked: NULL where one is required gives
 *    SDVSR_ERROR_INVALID_ARGUMENT. No C++ exception ever leaves the library.
 *  - On failure, sdvsr_last_error() returns one line describing it (naming the
 *    file and the problem where a file is involved).
 *  - Images are 8-bit RGB, interleaved (R, G, B per pixel), rows top to bottom;
 *    `stride` is the distance in bytes between the starts of two rows
 *    (at least 3 * width).
 *  - Strings are UTF-8 (paths are passed to the operating system unchanged).
 *
 * Threads: a model and its streams may be used from any thread. Calls on one
 * stream must not overlap, except sdvsr_stream_cancel(), which may be called at
 * any time from any thread (also from a callback). Streams of one model may be
 * driven from different threads; their frames are computed one at a time
 * (each frame already uses all of the model's threads).
 */
#ifndef SDVSR_SDVSR_H
#define SDVSR_SDVSR_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(SDVSR_BUILDING_LIBRARY)
#    define SDVSR_API __declspec(dllexport)
#  else
#    define SDVSR_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define SDVSR_API __attribute__((visibility("default")))
#else
#  define SDVSR_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- version */

#define SDVSR_VERSION_MAJOR 0
#define SDVSR_VERSION_MINOR 2
#define SDVSR_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH" (static storage; never NULL).
 * Compare with the SDVSR_VERSION_* macros to detect a header/library mismatch. */
SDVSR_API const char* sdvsr_version(void);
/* The same as one number: MAJOR * 10000 + MINOR * 100 + PATCH. */
SDVSR_API int sdvsr_version_number(void);

/* ---------------------------------------------------------------- status */

typedef enum sdvsr_status {
  SDVSR_OK = 0,
  SDVSR_ERROR_INVALID_ARGUMENT = 1, /* NULL pointer, bad size, stride, option value, shape */
  SDVSR_ERROR_IO = 2,               /* a file or folder is missing, unreadable or unwritable */
  SDVSR_ERROR_MODEL = 3,            /* the model files are broken or inconsistent */
  SDVSR_ERROR_UNSUPPORTED = 4,      /* e.g. a device this build does not have */
  SDVSR_ERROR_CANCELLED = 5,        /* sdvsr_stream_cancel() stopped the call */
  SDVSR_ERROR_OUT_OF_MEMORY = 6,
  SDVSR_ERROR_INTERNAL = 7          /* anything else (a bug: please report it) */
} sdvsr_status;

/* A short constant name for a status ("SDVSR_ERROR_IO"); never NULL. */
SDVSR_API const char* sdvsr_status_name(sdvsr_status status);

/* The message of the most recent failed call made by the calling thread, or ""
 * if none failed yet. Successful calls leave it unchanged. The pointer stays
 * valid until the next failing call on this thread. */
SDVSR_API const char* sdvsr_last_error(void);

/* ---------------------------------------------------------------- callbacks */

typedef enum sdvsr_log_level {
  SDVSR_LOG_DEBUG = 0,
  SDVSR_LOG_INFO = 1,
  SDVSR_LOG_WARNING = 2,
  SDVSR_LOG_ERROR = 3
} sdvsr_log_level;

/* Receives one line (no trailing newline), valid only during the call. Called on
 * the thread that made the API call which logs. */
typedef void (*sdvsr_log_fn)(void* user_data, sdvsr_log_level level, const char* message);

/* Progress of sdvsr_stream_push*: called before each denoising step
 * (step = 0 .. steps-1) and once more when the frame is done (step = steps).
 * `frame_index` is the 0-based index of the frame in its stream. Called on the
 * pushing thread. A callback may call sdvsr_stream_cancel() on any stream; it
 * must not push on, close or reset a stream of the same model. */
typedef void (*sdvsr_progress_fn)(void* user_data, int64_t frame_index, int step, int steps);

/* ---------------------------------------------------------------- model */

typedef struct sdvsr_model sdvsr_model;

typedef struct sdvsr_model_options {
  /* Set by sdvsr_model_options_init(); lets later versions add fields. */
  uint32_t struct_size;
  /* The model folder in the original's layout (unet/, controlnet/, vae/,
   * scheduler/, prompt embeddings or text_encoder/, raft/). Required. */
  const char* model_dir;
  /* Optional folders replacing <model_dir>/unet, /controlnet, /vae (NULL: default). */
  const char* unet_dir;
  const char* controlnet_dir;
  const char* vae_dir;
  /* RAFT weights file (.pth or .safetensors); NULL: the first one in <model_dir>/raft/. */
  const char* raft_path;
  /* "cpu" (NULL means "cpu"), "cuda" or "cuda:N" in a build with the CUDA
   * backend and a CUDA device; otherwise SDVSR_ERROR_UNSUPPORTED. */
  const char* device;
  /* Worker threads of the compute backend; 0: the backend's default (all cores).
   * The CPU backend is shared by the whole process: the last value set wins. */
  int threads;
  /* Optional log sink for loading and per-frame messages of this model and its
   * streams; NULL: the library stays silent. */
  sdvsr_log_fn log;
  void* log_user_data;
  /* Version 2: precision of the matrix products: "float32" (NULL means
   * "float32"), "float16" or "bfloat16" (float32 accumulation; "cuda" devices
   * only, the CPU gives SDVSR_ERROR_UNSUPPORTED). */
  const char* dtype;
} sdvsr_model_options;

/* Fills `options` with the defaults (everything NULL/0, struct_size set). */
SDVSR_API sdvsr_status sdvsr_model_options_init(sdvsr_model_options* options);

/* Loads every component once. `*model` receives the handle. A missing folder or
 * file gives SDVSR_ERROR_IO, broken weights or configs SDVSR_ERROR_MODEL; the
 * message names the path. The option strings are copied. */
SDVSR_API sdvsr_status sdvsr_model_open(const sdvsr_model_options* options, sdvsr_model** model);

/* Releases the caller's handle. Streams still open keep the model's weights
 * alive until they are closed. NULL is accepted and does nothing. Like
 * sdvsr_stream_close, it gives the blocks kept for reuse back to the system. */
SDVSR_API sdvsr_status sdvsr_model_close(sdvsr_model* model);

/* The LR size multiple the model works in (4 for the published model). Frames
 * of any size are accepted: the library pads them on the right and bottom by
 * edge replication to this multiple and crops the result to exactly 4x. */
SDVSR_API sdvsr_status sdvsr_model_size_multiple(const sdvsr_model* model, int* multiple);

/* ---------------------------------------------------------------- streams */

typedef struct sdvsr_stream sdvsr_stream;

/* Whether a stream computes the optical flow into the next frame (RAFT) beside
 * the current frame's denoising, when the caller names the next frame
 * (sdvsr_stream_push_next). The frames are the same either way. */
typedef enum sdvsr_flow_ahead {
  SDVSR_FLOW_AHEAD_AUTO = 0, /* on with a GPU (a second CUDA stream), off on the CPU */
  SDVSR_FLOW_AHEAD_ON = 1,   /* on the CPU too: a second thread (gains only with idle cores) */
  SDVSR_FLOW_AHEAD_OFF = 2
} sdvsr_flow_ahead;

typedef struct sdvsr_stream_options {
  uint32_t struct_size;     /* set by sdvsr_stream_options_init() */
  int num_inference_steps;  /* DDIM steps per frame; default 4 */
  uint64_t seed;            /* initial noise of frame k: Philox(seed, k); default 0 */
  sdvsr_progress_fn progress;  /* optional */
  void* progress_user_data;
  /* Added in 0.2 (a caller built against 0.1 passes the shorter struct and
   * gets the default): */
  int flow_ahead;           /* sdvsr_flow_ahead; default SDVSR_FLOW_AHEAD_AUTO */
} sdvsr_stream_options;

SDVSR_API sdvsr_status sdvsr_stream_options_init(sdvsr_stream_options* options);

/* Opens an independent stream (one video sequence) on `model`. Any number of
 * streams may be open on one model; each keeps only its own small temporal
 * state (the previous frame). `options` may be NULL for the defaults. */
SDVSR_API sdvsr_status sdvsr_stream_open(sdvsr_model* model, const sdvsr_stream_options* options,
                                         sdvsr_stream** stream);

/* Frees the stream. NULL is accepted and does nothing. No other call on the
 * stream, sdvsr_stream_cancel included, may run during or after it. Large
 * blocks the library kept for reuse from frame to frame are given back to the
 * system too (other open streams map them again when they need them). */
SDVSR_API sdvsr_status sdvsr_stream_close(sdvsr_stream* stream);

/* Upscales the next LR frame of the stream.
 *  lr:     width x height RGB pixels, rows `lr_stride` bytes apart.
 *  hr:     caller-provided buffer receiving (4 * width) x (4 * height) RGB pixels,
 *          rows `hr_stride` bytes apart (hr_stride >= 12 * width); bytes between
 *          the end of a row and the next row are not touched.
 * Every frame of a stream must have the size of its first frame. The HR frame is
 * written only on success. On any failure, SDVSR_ERROR_CANCELLED included, the
 * stream's state is unchanged: pushing the same frame again continues the
 * sequence exactly as if the failed call had not happened. */
SDVSR_API sdvsr_status sdvsr_stream_push(sdvsr_stream* stream, const uint8_t* lr, int width,
                                         int height, size_t lr_stride, uint8_t* hr,
                                         size_t hr_stride);

/* sdvsr_stream_push, naming the frame that will be pushed next: `next_lr`
 * (the same size, rows `next_lr_stride` bytes apart; NULL at the end of the
 * sequence). With flow-ahead on (see sdvsr_flow_ahead) the flow into it is
 * computed while this frame denoises, and the next push uses it when it gets
 * that very frame (compared by value; otherwise it computes the flow itself).
 * The frames are bit-identical to sdvsr_stream_push's; only the time differs.
 * `next_lr` is read before this call returns and need not outlive it. */
SDVSR_API sdvsr_status sdvsr_stream_push_next(sdvsr_stream* stream, const uint8_t* lr, int width,
                                              int height, size_t lr_stride, const uint8_t* next_lr,
                                              size_t next_lr_stride, uint8_t* hr,
                                              size_t hr_stride);

/* Initial latents injected in place of the stream's generated noise (parity
 * tests against a reference run): float32, C order, shape [1, C, h', w'] where
 * h', w' are the LR height and width rounded up to sdvsr_model_size_multiple()
 * and C the model's latent channels (4). */
typedef struct sdvsr_latents {
  const float* data;
  const int64_t* shape;
  int ndim;
} sdvsr_latents;

/* sdvsr_stream_push with injected initial latents (NULL: generated noise, as
 * sdvsr_stream_push). A shape that does not fit gives SDVSR_ERROR_INVALID_ARGUMENT. */
SDVSR_API sdvsr_status sdvsr_stream_push_latents(sdvsr_stream* stream, const uint8_t* lr,
                                                 int width, int height, size_t lr_stride,
                                                 uint8_t* hr, size_t hr_stride,
                                                 const sdvsr_latents* init_latents);

/* Asks the push running on `stream` to stop before its next denoising step: it
 * then returns SDVSR_ERROR_CANCELLED without consuming the frame. If no push is
 * running (or the running one is past its last step), the next push returns
 * SDVSR_ERROR_CANCELLED at once. Either way the request is used up by that one
 * push. Thread-safe; may be called from a progress callback. */
SDVSR_API sdvsr_status sdvsr_stream_cancel(sdvsr_stream* stream);

/* Number of frames the stream has completed (its next frame's index). */
SDVSR_API sdvsr_status sdvsr_stream_frame_index(const sdvsr_stream* stream, int64_t* index);

/* Forgets the temporal state: the next frame starts a new sequence (index 0). */
SDVSR_API sdvsr_status sdvsr_stream_reset(sdvsr_stream* stream);

/* Writes the stream's state (previous frame, frame index, seed, steps) to `path`
 * (a safetensors file, written atomically). A stream opened later with the same
 * model and options and loaded from it continues the sequence bit-identically. */
SDVSR_API sdvsr_status sdvsr_stream_save_state(const sdvsr_stream* stream, const char* path);

/* Restores a state written by sdvsr_stream_save_state. A missing or unreadable
 * file gives SDVSR_ERROR_IO; a file from a stream with another seed or step
 * count, or not a stream state, gives SDVSR_ERROR_INVALID_ARGUMENT; the stream
 * is unchanged on failure. */
SDVSR_API sdvsr_status sdvsr_stream_load_state(sdvsr_stream* stream, const char* path);

/* ---------------------------------------------------------------- tensor files */

#define SDVSR_MAX_DIMS 8

/* Reads tensor `name` of a safetensors file as float32 (any stored dtype is
 * converted; made for parity tests: reference latents and frames).
 * Pass data = NULL to learn the shape only. Otherwise `capacity` is the number of
 * floats `data` holds; too small gives SDVSR_ERROR_INVALID_ARGUMENT.
 * `shape` receives up to SDVSR_MAX_DIMS sizes, `*ndim` their count. A missing
 * file or tensor gives SDVSR_ERROR_IO naming it. */
SDVSR_API sdvsr_status sdvsr_tensor_file_read(const char* path, const char* name, float* data,
                                              size_t capacity, int64_t shape[SDVSR_MAX_DIMS],
                                              int* ndim);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SDVSR_SDVSR_H */
