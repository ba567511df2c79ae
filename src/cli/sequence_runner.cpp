#include "cli/sequence_runner.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "cli/prefetcher.h"
#include "cli/signals.h"
#include "media/frame_convert.h"
#include "pipeline/stream_session.h"
#include "runtime/out_of_memory.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

using Clock = std::chrono::steady_clock;

// How often the resume state is saved while a sequence runs.
constexpr std::chrono::seconds kStateInterval{300};

// Edge-replicates the right and bottom borders up to multiples of `m` (the
// original resamples such frames with Lanczos; we pad and crop instead).
Image pad_to_multiple(const Image& img, int m) {
  const int w = (img.width + m - 1) / m * m, h = (img.height + m - 1) / m * m;
  if (w == img.width && h == img.height) return img;
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        out.rgb[(static_cast<size_t>(y) * w + x) * 3 + c] =
            img.rgb[(static_cast<size_t>(std::min(y, img.height - 1)) * img.width +
                     std::min(x, img.width - 1)) * 3 + c];
  return out;
}

Image crop(const Image& img, int w, int h) {
  if (w == img.width && h == img.height) return img;
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    std::copy_n(&img.rgb[static_cast<size_t>(y) * img.width * 3], static_cast<size_t>(w) * 3,
                &out.rgb[static_cast<size_t>(y) * w * 3]);
  return out;
}

// SDVSR_TEST_STOP_AFTER=N (a test hook): behave as if interrupted once N
// frames have been written by this process.
bool test_stop_after(int64_t frames_written) {
  static const long limit = [] {
    const char* v = std::getenv("SDVSR_TEST_STOP_AFTER");
    return v ? std::atol(v) : 0L;
  }();
  return limit > 0 && frames_written >= limit;
}

int64_t g_frames_written = 0;  // by this process, all sequences

// --resume skips a sequence whose outputs all exist and that has no state file.
bool already_finished(const SequenceJob& job, const FrameSource& src, const FrameSink& sink) {
  const std::vector<std::string> names = src.names();
  if (names.empty() || fs::exists(state_path(job.out_dir))) return false;
  for (size_t k = 0; k < names.size(); ++k)
    if (!fs::exists(sink.path_for(static_cast<int64_t>(k), names[k]))) return false;
  return true;
}

}  // namespace

SequenceOutcome run_sequence(const SequenceJob& job, RunContext& ctx) {
  const Options& o = ctx.options;
  const ModelBundle& models = ctx.models;
  Backend& be = ctx.be;
  std::unique_ptr<FrameSource> source = job.open_source();
  std::unique_ptr<FrameSink> sink = job.open_sink();
  const std::vector<std::string> names = source->names();
  Fingerprint fp = sequence_fingerprint(ctx.fingerprint, names);
  fp[kThreadsField] = std::to_string(be.threads());
  const bool resumable = !job.out_dir.empty();

  StreamOptions so;
  so.num_inference_steps = o.num_inference_steps;
  so.seed = o.seed;
  StreamSession session(models, be, so);
  session.set_flow_ahead(ctx.flow_ahead);
  session.set_recorded_steps(ctx.recorded_steps);

  if (resumable && o.resume) {
    if (std::optional<SavedState> saved = load_state(job.out_dir)) {
      const std::string diff = fingerprint_difference(saved->fingerprint, fp);
      if (!diff.empty())
        throw std::runtime_error(state_path(job.out_dir) + ": saved by a run with another " +
                                 diff + "; run without --resume to start over");
      const auto saved_threads = saved->fingerprint.find(kThreadsField);
      if (saved_threads != saved->fingerprint.end() && saved_threads->second != fp[kThreadsField])
        ctx.progress.warn(state_path(job.out_dir) + ": saved by a run on " + saved_threads->second +
                          " threads, continuing on " + fp[kThreadsField] +
                          "; frames may differ by 1 level from an uninterrupted run");
      const int64_t done = saved->state.index;
      if (!names.empty() && done > static_cast<int64_t>(names.size()))
        throw std::runtime_error(state_path(job.out_dir) + ": says " + std::to_string(done) +
                                 " frames are done but the input has " +
                                 std::to_string(names.size()));
      for (int64_t k = 0; k < done && k < static_cast<int64_t>(names.size()); ++k) {
        const std::string out = sink->path_for(k, names[k]);
        if (!fs::exists(out))
          throw std::runtime_error(out + ": missing, but " + state_path(job.out_dir) + " says " +
                                   std::to_string(done) +
                                   " frames are done; run without --resume to start over");
      }
      source->skip(done);
      session.restore(std::move(saved->state));
    } else if (already_finished(job, *source, *sink)) {
      ctx.progress.info(job.name + ": already done, skipped (--resume)");
      return SequenceOutcome::kSkipped;
    }
  } else if (resumable) {
    remove_state(job.out_dir);  // a fresh run: an old state no longer matches the outputs
  }

  // The stream state that matches the frames written so far.
  StreamState written = session.state();
  auto last_save = Clock::now();
  auto save = [&] {
    if (resumable) save_state(job.out_dir, state_to_host(be, written), fp);
    last_save = Clock::now();
  };

  ctx.progress.begin_sequence(job.name, source->total(), written.index);
  Prefetcher frames(*source);
  int64_t padded_w = 0, padded_h = 0;  // of the first frame this run
  bool told_alpha = false;             // "transparency dropped" is said once per sequence
  // VaeImageProcessor: v / 255, then 2x - 1.
  auto to_lr = [&](const Image& padded_image) {
    return be.add_scalar(be.scale(image_to_tensor(padded_image), 2.0f), -1.0f);
  };
  // The next frame's LR tensor, made early for the flow ahead: used as is
  // when that frame's turn comes.
  std::optional<Tensor> made_ahead;
  try {
    while (!stop_requested()) {
      std::optional<Frame> frame = frames.next();
      if (!frame) break;
      const auto t0 = Clock::now();
      const int64_t k = written.index;
      const Image& lr_img = frame->image;
      if (lr_img.alpha_dropped && !told_alpha) {
        told_alpha = true;
        ctx.progress.warn(job.label + "/" + frame->name +
                          ": transparency dropped, frames are read as RGB (said once per sequence)");
      }
      const Image padded = pad_to_multiple(lr_img, models.vae_scale_factor);
      // A resumed stream knows the size from its state (4x the padded LR frame).
      if (k > 0 && padded_w == 0) {
        padded_h = written.prev_upscaled.size(2) / 4;
        padded_w = written.prev_upscaled.size(3) / 4;
      }
      if (padded_w != 0 && (padded.width != padded_w || padded.height != padded_h))
        throw std::runtime_error(job.label + "/" + frame->name + ": frame size " +
                                 std::to_string(lr_img.width) + "x" +
                                 std::to_string(lr_img.height) +
                                 " differs from the sequence's first frame");
      padded_w = padded.width;
      padded_h = padded.height;
      const Tensor lr = made_ahead ? *std::exchange(made_ahead, std::nullopt) : to_lr(padded);
      // The next frame, when already read and of the same size, lets the flow
      // into it run beside this frame's diffusion.
      std::optional<Tensor> next_lr;
      if (session.flow_ahead_enabled())
        if (const Frame* next = frames.peek()) {
          const Image next_padded = pad_to_multiple(next->image, models.vae_scale_factor);
          if (next_padded.width == padded.width && next_padded.height == padded.height)
            next_lr = to_lr(next_padded);
        }
      made_ahead = next_lr;
      std::optional<Tensor> injected;
      if (ctx.noise) {
        injected = ctx.noise->latent_for(job.name, k);
        if (!injected)
          throw std::runtime_error(o.noise_file + ": no tensor '" + job.name + "/frame" +
                                   std::to_string(k) + ".init_latents' or 'frame" +
                                   std::to_string(k) + ".init_latents'");
      }
      const Tensor decoded = [&] {
        try {
          return session.push(lr, injected ? &*injected : nullptr, next_lr ? &*next_lr : nullptr);
        } catch (const std::exception& e) {
          // Name the frame and the size instead of a bare "std::bad_alloc".
          if (!is_out_of_memory(e)) throw;
          throw std::runtime_error(job.label + "/" + frame->name + ": out of memory upscaling " +
                                   std::to_string(lr_img.width) + "x" +
                                   std::to_string(lr_img.height) + " to " +
                                   std::to_string(lr_img.width * 4) + "x" +
                                   std::to_string(lr_img.height * 4) +
                                   " on " + be.name() +
                                   " (smaller frames need less; frames already written are kept)");
        }
      }();
      const Image hr = crop(tensor_to_image(be.to_host(decoded)), lr_img.width * 4, lr_img.height * 4);
      sink->write(k, frame->name, hr);
      written = session.state();
      ++g_frames_written;
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      ctx.progress.frame_done(job.name, k, frame->name, ms, sink->path_for(k, frame->name));
      if (test_stop_after(g_frames_written)) request_stop();
      if (Clock::now() - last_save >= kStateInterval) save();
    }
  } catch (...) {
    ctx.progress.finish_line();
    try {
      save();
    } catch (const std::exception&) {
      // The first error is the one to report; the outputs written stay valid.
    }
    throw;
  }
  ctx.progress.end_sequence();
  if (stop_requested()) {
    save();
    return SequenceOutcome::kStopped;
  }
  sink->finish();
  if (resumable) remove_state(job.out_dir);
  return SequenceOutcome::kDone;
}

}  // namespace sdvsr::cli
