/*
 * The C API from C99, against the public header only, on the golden tiny model:
 * the golden run's frames with the golden noise, independent streams on one
 * model (interleaved and on two threads), flow-ahead, cancellation, stream state files,
 * errors for bad paths and NULL pointers.
 *
 * usage: sdvsr_capi_golden_test <golden>/tiny <scratch folder>
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sdvsr/sdvsr.h"

static int failures = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                          \
    }                                                                      \
  } while (0)

#define CHECK_STATUS(call, want)                                                   \
  do {                                                                             \
    sdvsr_status got_ = (call);                                                    \
    if (got_ != (want)) {                                                          \
      fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__, \
              __LINE__, #call, sdvsr_status_name(got_), sdvsr_status_name(want),   \
              sdvsr_last_error());                                                 \
      ++failures;                                                                  \
    }                                                                              \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, SDVSR_OK)

/* Stops the program: later checks depend on this one. */
#define REQUIRE_OK(call)                                                   \
  do {                                                                     \
    sdvsr_status got_ = (call);                                            \
    if (got_ != SDVSR_OK) {                                                \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call, \
              sdvsr_status_name(got_), sdvsr_last_error());                \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

#define FRAMES 3 /* the golden sequence */
#define SHORT 2  /* frames per stream in the other checks (each frame costs seconds) */
#define CANARY 0xAB
#define HR_PAD 7 /* extra bytes per HR row that must stay untouched */

static char model_dir[1024];
static char case_path[1100];
static char scratch[1024];

typedef struct golden_frame {
  int width, height;  /* LR */
  uint8_t* lr;        /* RGB interleaved, rows lr_stride apart */
  size_t lr_stride;
  float* latents;
  int64_t latent_shape[SDVSR_MAX_DIMS];
  int latent_ndim;
  uint8_t* ref;  /* the reference HR frame, RGB interleaved, rows 12 * width apart */
} golden_frame;

static golden_frame golden[FRAMES];

static void* checked_malloc(size_t n) {
  void* p = malloc(n);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* Reads a whole tensor as floats; *numel receives its element count. */
static float* read_tensor(const char* name, int64_t shape[SDVSR_MAX_DIMS], int* ndim, size_t* numel) {
  size_t n = 1;
  int i;
  float* data;
  REQUIRE_OK(sdvsr_tensor_file_read(case_path, name, NULL, 0, shape, ndim));
  for (i = 0; i < *ndim; ++i) n *= (size_t)shape[i];
  data = (float*)checked_malloc(n * sizeof(float));
  REQUIRE_OK(sdvsr_tensor_file_read(case_path, name, data, n, shape, ndim));
  *numel = n;
  return data;
}

/* A CHW uint8 tensor (as floats) -> interleaved RGB rows `stride` bytes apart. */
static uint8_t* interleave(const float* chw, int h, int w, size_t stride) {
  uint8_t* out = (uint8_t*)checked_malloc(stride * (size_t)h);
  int c, y, x;
  memset(out, 0, stride * (size_t)h);
  for (c = 0; c < 3; ++c)
    for (y = 0; y < h; ++y)
      for (x = 0; x < w; ++x)
        out[(size_t)y * stride + (size_t)x * 3 + (size_t)c] =
            (uint8_t)chw[((size_t)c * (size_t)h + (size_t)y) * (size_t)w + (size_t)x];
  return out;
}

static void load_golden(void) {
  int k;
  for (k = 0; k < FRAMES; ++k) {
    char name[64];
    int64_t shape[SDVSR_MAX_DIMS];
    int ndim;
    size_t n;
    float* t;
    golden_frame* g = &golden[k];

    sprintf(name, "frame%d.lr_u8", k);
    t = read_tensor(name, shape, &ndim, &n);
    REQUIRE_OK(ndim == 3 && shape[0] == 3 ? SDVSR_OK : SDVSR_ERROR_INTERNAL);
    g->height = (int)shape[1];
    g->width = (int)shape[2];
    g->lr_stride = (size_t)g->width * 3 + 5; /* rows with padding: strides are honoured */
    g->lr = interleave(t, g->height, g->width, g->lr_stride);
    free(t);

    sprintf(name, "frame%d.init_latents", k);
    g->latents = read_tensor(name, g->latent_shape, &g->latent_ndim, &n);

    sprintf(name, "frame%d.output_u8", k);
    t = read_tensor(name, shape, &ndim, &n);
    REQUIRE_OK(ndim == 3 && shape[1] == 4 * g->height && shape[2] == 4 * g->width
                   ? SDVSR_OK
                   : SDVSR_ERROR_INTERNAL);
    g->ref = interleave(t, (int)shape[1], (int)shape[2], (size_t)shape[2] * 3);
    free(t);
  }
}

/* An HR buffer for frame size w x h with canary bytes at each row's end. */
static size_t hr_stride_for(int w) { return (size_t)w * 12 + HR_PAD; }
static uint8_t* new_hr(int w, int h) {
  size_t n = hr_stride_for(w) * (size_t)h * 4;
  uint8_t* p = (uint8_t*)checked_malloc(n);
  memset(p, CANARY, n);
  return p;
}

static int canaries_intact(const uint8_t* hr, int w, int h) {
  size_t stride = hr_stride_for(w);
  int y, i;
  for (y = 0; y < 4 * h; ++y)
    for (i = 0; i < HR_PAD; ++i)
      if (hr[(size_t)y * stride + (size_t)w * 12 + (size_t)i] != CANARY) return 0;
  return 1;
}

static int same_frame(const uint8_t* a, const uint8_t* b, int w, int h) {
  size_t stride = hr_stride_for(w);
  int y;
  for (y = 0; y < 4 * h; ++y)
    if (memcmp(a + (size_t)y * stride, b + (size_t)y * stride, (size_t)w * 12) != 0) return 0;
  return 1;
}

/* The engine's uint8 bound: >= 99.9 % of the values equal, none off by more than 1. */
static void check_against_golden(const uint8_t* hr, int k) {
  const golden_frame* g = &golden[k];
  size_t stride = hr_stride_for(g->width), row = (size_t)g->width * 12;
  size_t total = row * (size_t)g->height * 4, differ = 0, worse = 0, y, i;
  for (y = 0; y < (size_t)g->height * 4; ++y)
    for (i = 0; i < row; ++i) {
      int d = (int)hr[y * stride + i] - (int)g->ref[y * row + i];
      differ += d != 0;
      worse += d > 1 || d < -1;
    }
  printf("golden frame %d: %lu of %lu values differ, %lu by more than 1\n", k,
         (unsigned long)differ, (unsigned long)total, (unsigned long)worse);
  CHECK(worse == 0);
  CHECK((double)differ <= 1e-3 * (double)total);
  CHECK(canaries_intact(hr, g->width, g->height));
}

static sdvsr_status push_golden(sdvsr_stream* s, int k, uint8_t* hr) {
  const golden_frame* g = &golden[k];
  sdvsr_latents l;
  l.data = g->latents;
  l.shape = g->latent_shape;
  l.ndim = g->latent_ndim;
  return sdvsr_stream_push_latents(s, g->lr, g->width, g->height, g->lr_stride, hr,
                                   hr_stride_for(g->width), &l);
}

static sdvsr_status push_seeded(sdvsr_stream* s, int k, uint8_t* hr) {
  const golden_frame* g = &golden[k];
  return sdvsr_stream_push(s, g->lr, g->width, g->height, g->lr_stride, hr, hr_stride_for(g->width));
}

/* ---------------------------------------------------------------- callbacks */

typedef struct log_record {
  int lines, info_loading;
  int flows_ahead; /* frames whose flow was computed ahead */
} log_record;

static void on_log(void* user, sdvsr_log_level level, const char* message) {
  log_record* r = (log_record*)user;
  ++r->lines;
  printf("log %d: %s\n", (int)level, message);
  if (level == SDVSR_LOG_INFO && strstr(message, "loading model")) ++r->info_loading;
  if (strstr(message, "its flow computed ahead")) ++r->flows_ahead;
}

typedef struct progress_record {
  int calls, last_step, steps;
  int64_t last_frame;
  sdvsr_stream* cancel_stream; /* cancel this stream when ... */
  int64_t cancel_frame;        /* ... this frame reaches ... */
  int cancel_step;             /* ... this step */
} progress_record;

static void on_progress(void* user, int64_t frame_index, int step, int steps) {
  progress_record* r = (progress_record*)user;
  ++r->calls;
  r->last_frame = frame_index;
  r->last_step = step;
  r->steps = steps;
  if (r->cancel_stream && frame_index == r->cancel_frame && step == r->cancel_step)
    sdvsr_stream_cancel(r->cancel_stream);
}

/* ---------------------------------------------------------------- tests */

static void test_version(void) {
  char want[32];
  sprintf(want, "%d.%d.%d", SDVSR_VERSION_MAJOR, SDVSR_VERSION_MINOR, SDVSR_VERSION_PATCH);
  CHECK(strcmp(sdvsr_version(), want) == 0);
  CHECK(sdvsr_version_number() ==
        SDVSR_VERSION_MAJOR * 10000 + SDVSR_VERSION_MINOR * 100 + SDVSR_VERSION_PATCH);
  CHECK(strcmp(sdvsr_status_name(SDVSR_ERROR_CANCELLED), "SDVSR_ERROR_CANCELLED") == 0);
}

static void expect_error_mentions(const char* what) {
  if (!strstr(sdvsr_last_error(), what)) {
    fprintf(stderr, "last error '%s' does not mention '%s'\n", sdvsr_last_error(), what);
    ++failures;
  }
}

static void test_null_pointers(sdvsr_model* model, sdvsr_stream* stream) {
  sdvsr_model_options mo;
  sdvsr_stream_options so;
  sdvsr_model* m = NULL;
  sdvsr_stream* s = NULL;
  uint8_t px[12 * 16];
  int64_t shape[SDVSR_MAX_DIMS], index = 0;
  int n = 0;
  sdvsr_latents bad;

  CHECK_STATUS(sdvsr_model_options_init(NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("options is NULL");
  CHECK_STATUS(sdvsr_model_open(NULL, &m), SDVSR_ERROR_INVALID_ARGUMENT);
  sdvsr_model_options_init(&mo);
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_INVALID_ARGUMENT); /* model_dir NULL */
  expect_error_mentions("model_dir");
  mo.model_dir = model_dir;
  CHECK_STATUS(sdvsr_model_open(&mo, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  mo.struct_size = 0;
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK(m == NULL);
  CHECK_STATUS(sdvsr_model_size_multiple(NULL, &n), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_model_size_multiple(model, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_OK(sdvsr_model_close(NULL));

  CHECK_STATUS(sdvsr_stream_options_init(NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_open(NULL, NULL, &s), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_open(model, NULL, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  sdvsr_stream_options_init(&so);
  so.num_inference_steps = 0;
  CHECK_STATUS(sdvsr_stream_open(model, &so, &s), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK(s == NULL);

  CHECK_STATUS(sdvsr_stream_push(NULL, px, 1, 1, 3, px, 12), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("stream is NULL");
  CHECK_STATUS(sdvsr_stream_push(stream, NULL, 1, 1, 3, px, 12), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("lr is NULL");
  CHECK_STATUS(sdvsr_stream_push(stream, px, 1, 1, 3, NULL, 12), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_push(stream, px, 0, 1, 3, px, 12), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_push(stream, px, 4, 4, 11, px, 48), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_push(stream, px, 4, 4, 12, px, 47), SDVSR_ERROR_INVALID_ARGUMENT);
  bad.data = NULL;
  bad.shape = shape;
  bad.ndim = 4;
  CHECK_STATUS(sdvsr_stream_push_latents(stream, px, 1, 1, 3, px, 12, &bad),
               SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("init_latents->data is NULL");
  CHECK_STATUS(sdvsr_stream_cancel(NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_frame_index(NULL, &index), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_frame_index(stream, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_reset(NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_save_state(NULL, "x"), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_save_state(stream, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_load_state(NULL, "x"), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_stream_load_state(stream, NULL), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_OK(sdvsr_stream_close(NULL));
  CHECK_STATUS(sdvsr_tensor_file_read(NULL, "x", NULL, 0, shape, &n), SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_tensor_file_read(case_path, NULL, NULL, 0, shape, &n),
               SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_tensor_file_read(case_path, "frame0.lr", NULL, 0, NULL, &n),
               SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_STATUS(sdvsr_tensor_file_read(case_path, "frame0.lr", NULL, 0, shape, NULL),
               SDVSR_ERROR_INVALID_ARGUMENT);
  /* None of these touched the stream. */
  CHECK_OK(sdvsr_stream_frame_index(stream, &index));
  CHECK(index == 0);
}

static void test_bad_paths(void) {
  sdvsr_model_options mo;
  sdvsr_model* m = NULL;
  char path[1200];
  int64_t shape[SDVSR_MAX_DIMS];
  int n;
  float one;

  sdvsr_model_options_init(&mo);
  sprintf(path, "%s/no-such-model", scratch);
  mo.model_dir = path;
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_IO);
  expect_error_mentions(path);

  mo.model_dir = model_dir;
  sprintf(path, "%s/no-such-raft.pth", scratch);
  mo.raft_path = path;
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_IO);
  expect_error_mentions(path);

  mo.raft_path = NULL;
  sprintf(path, "%s/no-such-unet", scratch);
  mo.unet_dir = path;
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_IO);
  expect_error_mentions(path);

  mo.unet_dir = NULL;
  mo.device = "cuda:7";
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_UNSUPPORTED);
  expect_error_mentions("cuda:7");
  CHECK(m == NULL);

  /* Reduced precision is for CUDA devices; the CPU computes in float32 only. */
  mo.device = "cpu";
  mo.dtype = "bfloat16";
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_UNSUPPORTED);
  expect_error_mentions("float32 only");
  CHECK(m == NULL);
  mo.dtype = "int4";
  CHECK_STATUS(sdvsr_model_open(&mo, &m), SDVSR_ERROR_UNSUPPORTED);
  expect_error_mentions("int4");
  CHECK(m == NULL);
  /* A caller compiled against version 1 of the struct (no dtype): not read. */
  mo.struct_size = (uint32_t)(offsetof(sdvsr_model_options, log_user_data) + sizeof(void*));
  REQUIRE_OK(sdvsr_model_open(&mo, &m));
  CHECK_OK(sdvsr_model_close(m));
  m = NULL;
  mo.struct_size = sizeof mo;
  mo.dtype = "float32";
  REQUIRE_OK(sdvsr_model_open(&mo, &m));
  CHECK_OK(sdvsr_model_close(m));
  m = NULL;
  mo.dtype = NULL;
  mo.device = NULL;

  sprintf(path, "%s/no-such-file.safetensors", scratch);
  CHECK_STATUS(sdvsr_tensor_file_read(path, "x", NULL, 0, shape, &n), SDVSR_ERROR_IO);
  expect_error_mentions(path);
  CHECK_STATUS(sdvsr_tensor_file_read(case_path, "frame0.nothing", NULL, 0, shape, &n),
               SDVSR_ERROR_IO);
  expect_error_mentions("frame0.nothing");
  CHECK_STATUS(sdvsr_tensor_file_read(case_path, "frame0.lr", &one, 1, shape, &n),
               SDVSR_ERROR_INVALID_ARGUMENT);
}

/* One stream through the golden sequence; keeps its frames in out[]. */
static void test_golden_sequence(sdvsr_model* model, uint8_t* out[FRAMES]) {
  sdvsr_stream_options so;
  sdvsr_stream* s;
  progress_record pr;
  int64_t index;
  int k;

  memset(&pr, 0, sizeof pr);
  sdvsr_stream_options_init(&so);
  so.progress = on_progress;
  so.progress_user_data = &pr;
  REQUIRE_OK(sdvsr_stream_open(model, &so, &s));
  for (k = 0; k < FRAMES; ++k) {
    out[k] = new_hr(golden[k].width, golden[k].height);
    REQUIRE_OK(push_golden(s, k, out[k]));
    check_against_golden(out[k], k);
    /* one call per step and one when done */
    CHECK(pr.calls == (k + 1) * 5);
    CHECK(pr.last_frame == k && pr.last_step == 4 && pr.steps == 4);
  }
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == FRAMES);
  CHECK_OK(sdvsr_stream_close(s));
}

/* Stream B with generated noise (seed 7) alone, then A and B interleaved:
 * each equals its solo run bit for bit. */
static void test_interleaved_streams(sdvsr_model* model, uint8_t* solo_a[FRAMES],
                                     uint8_t* solo_b[SHORT]) {
  sdvsr_stream_options so;
  sdvsr_stream *a, *b;
  int k;
  sdvsr_stream_options_init(&so);
  so.seed = 7;
  REQUIRE_OK(sdvsr_stream_open(model, &so, &b));
  for (k = 0; k < SHORT; ++k) {
    solo_b[k] = new_hr(golden[k].width, golden[k].height);
    REQUIRE_OK(push_seeded(b, k, solo_b[k]));
    CHECK(!same_frame(solo_b[k], solo_a[k], golden[k].width, golden[k].height));
  }
  CHECK_OK(sdvsr_stream_close(b));

  REQUIRE_OK(sdvsr_stream_open(model, NULL, &a));
  REQUIRE_OK(sdvsr_stream_open(model, &so, &b));
  for (k = 0; k < SHORT; ++k) {
    uint8_t* ha = new_hr(golden[k].width, golden[k].height);
    uint8_t* hb = new_hr(golden[k].width, golden[k].height);
    CHECK_OK(push_golden(a, k, ha));
    CHECK_OK(push_seeded(b, k, hb));
    CHECK(same_frame(ha, solo_a[k], golden[k].width, golden[k].height));
    CHECK(same_frame(hb, solo_b[k], golden[k].width, golden[k].height));
    free(ha);
    free(hb);
  }
  CHECK_OK(sdvsr_stream_close(a));
  CHECK_OK(sdvsr_stream_close(b));
}

/* Flow-ahead on (on the CPU: a second thread): pushing with the next frame
 * named gives stream B's solo frames bit for bit, and from the second frame on
 * their flow was computed ahead. A next frame that is not the one pushed is
 * dropped: the flow is computed in order, the frames are the same. */
static void test_flow_ahead(sdvsr_model* model, log_record* logs, uint8_t* solo_b[SHORT]) {
  sdvsr_stream_options so;
  sdvsr_stream* s;
  uint8_t* hr;
  int k, before;
  const golden_frame* g = &golden[0];
  sdvsr_stream_options_init(&so);
  CHECK(so.flow_ahead == SDVSR_FLOW_AHEAD_AUTO);
  so.seed = 7;
  so.flow_ahead = 3;
  CHECK_STATUS(sdvsr_stream_open(model, &so, &s), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("flow_ahead is 3");
  so.flow_ahead = SDVSR_FLOW_AHEAD_ON;
  REQUIRE_OK(sdvsr_stream_open(model, &so, &s));
  hr = new_hr(g->width, g->height);
  CHECK_STATUS(sdvsr_stream_push_next(s, g->lr, g->width, g->height, g->lr_stride, golden[1].lr,
                                      (size_t)g->width * 3 - 1, hr, hr_stride_for(g->width)),
               SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("next_lr_stride");

  before = logs->flows_ahead;
  for (k = 0; k < SHORT; ++k) {
    const golden_frame* n = &golden[k + 1]; /* FRAMES > SHORT: frame SHORT exists */
    memset(hr, CANARY, hr_stride_for(g->width) * (size_t)g->height * 4);
    CHECK_OK(sdvsr_stream_push_next(s, golden[k].lr, golden[k].width, golden[k].height,
                                    golden[k].lr_stride, n->lr, n->lr_stride, hr,
                                    hr_stride_for(golden[k].width)));
    CHECK(same_frame(hr, solo_b[k], golden[k].width, golden[k].height));
    CHECK(canaries_intact(hr, golden[k].width, golden[k].height));
  }
  CHECK(logs->flows_ahead - before == SHORT - 1);

  /* Frame 2 named as next, frame 1 pushed: its flow is computed in order. */
  CHECK_OK(sdvsr_stream_reset(s));
  before = logs->flows_ahead;
  CHECK_OK(sdvsr_stream_push_next(s, golden[0].lr, g->width, g->height, g->lr_stride,
                                  golden[2].lr, golden[2].lr_stride, hr, hr_stride_for(g->width)));
  CHECK(same_frame(hr, solo_b[0], g->width, g->height));
  CHECK_OK(sdvsr_stream_push_next(s, golden[1].lr, g->width, g->height, g->lr_stride, NULL, 0, hr,
                                  hr_stride_for(g->width)));
  CHECK(same_frame(hr, solo_b[1], g->width, g->height));
  CHECK(logs->flows_ahead == before);
  CHECK_OK(sdvsr_stream_close(s));
  free(hr);
}

typedef struct thread_job {
  sdvsr_stream* stream;
  int golden_latents;
  uint8_t* out[SHORT];
  sdvsr_status status;
} thread_job;

static void* run_job(void* arg) {
  thread_job* j = (thread_job*)arg;
  int k;
  j->status = SDVSR_OK;
  for (k = 0; k < SHORT && j->status == SDVSR_OK; ++k) {
    j->out[k] = new_hr(golden[k].width, golden[k].height);
    j->status = j->golden_latents ? push_golden(j->stream, k, j->out[k])
                                  : push_seeded(j->stream, k, j->out[k]);
  }
  return NULL;
}

/* The same two streams on two threads, after the model handle is closed. */
static void test_threads(sdvsr_model* model, uint8_t* solo_a[FRAMES], uint8_t* solo_b[SHORT]) {
  sdvsr_stream_options so;
  thread_job ja, jb;
  pthread_t ta, tb;
  int k;
  memset(&ja, 0, sizeof ja);
  memset(&jb, 0, sizeof jb);
  sdvsr_stream_options_init(&so);
  so.seed = 7;
  REQUIRE_OK(sdvsr_stream_open(model, NULL, &ja.stream));
  REQUIRE_OK(sdvsr_stream_open(model, &so, &jb.stream));
  ja.golden_latents = 1;
  CHECK_OK(sdvsr_model_close(model)); /* the streams keep it alive */
  CHECK(pthread_create(&ta, NULL, run_job, &ja) == 0);
  CHECK(pthread_create(&tb, NULL, run_job, &jb) == 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(ja.status == SDVSR_OK && jb.status == SDVSR_OK);
  for (k = 0; k < SHORT; ++k) {
    if (ja.out[k]) CHECK(same_frame(ja.out[k], solo_a[k], golden[k].width, golden[k].height));
    if (jb.out[k]) CHECK(same_frame(jb.out[k], solo_b[k], golden[k].width, golden[k].height));
    free(ja.out[k]);
    free(jb.out[k]);
  }
  CHECK_OK(sdvsr_stream_close(ja.stream));
  CHECK_OK(sdvsr_stream_close(jb.stream));
}

static void test_cancel(sdvsr_model* model, uint8_t* solo_a[FRAMES]) {
  sdvsr_stream_options so;
  sdvsr_stream* s;
  progress_record pr;
  int64_t index;
  uint8_t* hr;
  int k;

  memset(&pr, 0, sizeof pr);
  sdvsr_stream_options_init(&so);
  so.progress = on_progress;
  so.progress_user_data = &pr;
  REQUIRE_OK(sdvsr_stream_open(model, &so, &s));
  pr.cancel_stream = s;
  pr.cancel_frame = 1;
  pr.cancel_step = 2;
  hr = new_hr(golden[0].width, golden[0].height);

  /* A request made between pushes cancels the next push before any work. */
  CHECK_OK(sdvsr_stream_cancel(s));
  CHECK_STATUS(push_golden(s, 0, hr), SDVSR_ERROR_CANCELLED);
  CHECK(pr.calls == 0);
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == 0);

  CHECK_OK(push_golden(s, 0, hr));
  CHECK(same_frame(hr, solo_a[0], golden[0].width, golden[0].height));

  /* Cancelled from the progress callback at step 2 of frame 1: the frame is not consumed. */
  memset(hr, CANARY, hr_stride_for(golden[1].width) * (size_t)golden[1].height * 4);
  CHECK_STATUS(push_golden(s, 1, hr), SDVSR_ERROR_CANCELLED);
  expect_error_mentions("cancelled at step 2 of frame 1");
  CHECK(pr.last_frame == 1 && pr.last_step == 2);
  CHECK(hr[0] == CANARY && hr[1] == CANARY); /* nothing written */
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == 1);

  /* The request was used up: pushing frame 1 again continues exactly. */
  pr.cancel_stream = NULL;
  for (k = 1; k < SHORT; ++k) {
    CHECK_OK(push_golden(s, k, hr));
    CHECK(same_frame(hr, solo_a[k], golden[k].width, golden[k].height));
  }
  free(hr);
  CHECK_OK(sdvsr_stream_close(s));
}

static void test_state_files(sdvsr_model* model, uint8_t* solo_a[FRAMES]) {
  sdvsr_stream_options so;
  sdvsr_stream *s, *t, *other_seed;
  char path[1200], missing[1200], empty_state[1200];
  int64_t index;
  uint8_t* hr = new_hr(golden[0].width, golden[0].height);
  int k;

  sprintf(path, "%s/after_frame0.sdvsr-state", scratch);
  sprintf(empty_state, "%s/fresh.sdvsr-state", scratch);
  sprintf(missing, "%s/no-such.sdvsr-state", scratch);
  REQUIRE_OK(sdvsr_stream_open(model, NULL, &s));
  CHECK_OK(sdvsr_stream_save_state(s, empty_state)); /* nothing pushed yet */
  CHECK_OK(push_golden(s, 0, hr));
  CHECK_OK(sdvsr_stream_save_state(s, path));
  CHECK_OK(sdvsr_stream_close(s));

  REQUIRE_OK(sdvsr_stream_open(model, NULL, &t));
  CHECK_STATUS(sdvsr_stream_load_state(t, missing), SDVSR_ERROR_IO);
  expect_error_mentions(missing);
  CHECK_STATUS(sdvsr_stream_load_state(t, case_path), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions(case_path);
  CHECK_OK(sdvsr_stream_load_state(t, path));
  CHECK_OK(sdvsr_stream_frame_index(t, &index));
  CHECK(index == 1);
  for (k = 1; k < SHORT; ++k) {
    CHECK_OK(push_golden(t, k, hr));
    CHECK(same_frame(hr, solo_a[k], golden[k].width, golden[k].height));
  }
  /* A fresh state starts over. */
  CHECK_OK(sdvsr_stream_load_state(t, empty_state));
  CHECK_OK(sdvsr_stream_frame_index(t, &index));
  CHECK(index == 0);
  CHECK_OK(sdvsr_stream_close(t));

  /* Another seed would not continue the same sequence: refused. */
  sdvsr_stream_options_init(&so);
  so.seed = 7;
  REQUIRE_OK(sdvsr_stream_open(model, &so, &other_seed));
  CHECK_STATUS(sdvsr_stream_load_state(other_seed, path), SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("seed");
  CHECK_OK(sdvsr_stream_frame_index(other_seed, &index));
  CHECK(index == 0);
  CHECK_OK(sdvsr_stream_close(other_seed));
  free(hr);
}

/* Frame sizes: later frames must match the first; sides need not be multiples of 4. */
static void test_frame_sizes(sdvsr_model* model) {
  sdvsr_stream* s;
  const golden_frame* g = &golden[0];
  int w = g->width - 3, h = g->height - 2; /* not multiples of 4 */
  uint8_t* hr = new_hr(g->width, g->height);
  sdvsr_latents l;
  int64_t shape[4], index;

  REQUIRE_OK(sdvsr_stream_open(model, NULL, &s));
  /* Latents of the wrong shape are refused before any state changes. */
  shape[0] = 1;
  shape[1] = 4;
  shape[2] = 8;
  shape[3] = 8;
  l.data = g->latents;
  l.shape = shape;
  l.ndim = 4;
  CHECK_STATUS(sdvsr_stream_push_latents(s, g->lr, g->width, g->height, g->lr_stride, hr,
                                         hr_stride_for(g->width), &l),
               SDVSR_ERROR_INVALID_ARGUMENT);
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == 0);

  /* An odd-sized crop of the frame (the rows keep the golden stride). */
  memset(hr, CANARY, hr_stride_for(g->width) * (size_t)g->height * 4);
  CHECK_OK(sdvsr_stream_push(s, g->lr, w, h, g->lr_stride, hr, hr_stride_for(g->width)));
  {
    /* exactly 4w x 4h written: the bytes after each row and below the frame untouched */
    size_t stride = hr_stride_for(g->width);
    int y, ok = 1;
    for (y = 0; y < 4 * g->height; ++y) {
      const uint8_t* row = hr + (size_t)y * stride;
      if (y < 4 * h && row[(size_t)w * 12] != CANARY) ok = 0;
      if (y >= 4 * h && row[0] != CANARY) ok = 0;
    }
    CHECK(ok);
  }
  CHECK_STATUS(sdvsr_stream_push(s, g->lr, w + 1, h, g->lr_stride, hr, hr_stride_for(g->width)),
               SDVSR_ERROR_INVALID_ARGUMENT);
  expect_error_mentions("differs from the stream's first frame");
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == 1);
  CHECK_OK(sdvsr_stream_reset(s));
  CHECK_OK(sdvsr_stream_frame_index(s, &index));
  CHECK(index == 0);
  CHECK_OK(sdvsr_stream_close(s));
  free(hr);
}

int main(int argc, char** argv) {
  sdvsr_model_options mo;
  sdvsr_model* model;
  sdvsr_stream* idle;
  log_record logs;
  uint8_t *solo_a[FRAMES], *solo_b[SHORT];
  int k, multiple = 0;

  if (argc != 3) {
    fprintf(stderr, "usage: %s <golden>/tiny <scratch folder>\n", argv[0]);
    return 2;
  }
  if (strlen(argv[1]) >= sizeof model_dir || strlen(argv[2]) >= sizeof scratch) return 2;
  strcpy(model_dir, argv[1]);
  strcpy(scratch, argv[2]);
  sprintf(case_path, "%s/cases/e2e_seq_a.safetensors", model_dir);
  mkdir(scratch, 0755);

  test_version();
  load_golden();
  test_bad_paths();

  memset(&logs, 0, sizeof logs);
  REQUIRE_OK(sdvsr_model_options_init(&mo));
  mo.model_dir = model_dir;
  mo.device = "cpu";
  mo.log = on_log;
  mo.log_user_data = &logs;
  REQUIRE_OK(sdvsr_model_open(&mo, &model));
  CHECK(logs.info_loading == 1);
  CHECK_OK(sdvsr_model_size_multiple(model, &multiple));
  CHECK(multiple == 4);

  REQUIRE_OK(sdvsr_stream_open(model, NULL, &idle));
  test_null_pointers(model, idle);
  CHECK_OK(sdvsr_stream_close(idle));

  test_golden_sequence(model, solo_a);
  test_interleaved_streams(model, solo_a, solo_b);
  test_cancel(model, solo_a);
  test_state_files(model, solo_a);
  test_frame_sizes(model);
  CHECK(logs.lines > 1); /* per-frame debug lines */
  CHECK(logs.flows_ahead == 0); /* flow-ahead is off on the CPU unless asked for */
  test_flow_ahead(model, &logs, solo_b);
  test_threads(model, solo_a, solo_b); /* closes the model */

  for (k = 0; k < FRAMES; ++k) {
    free(solo_a[k]);
    if (k < SHORT) free(solo_b[k]);
    free(golden[k].lr);
    free(golden[k].latents);
    free(golden[k].ref);
  }
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all C API checks passed\n");
  return 0;
}
