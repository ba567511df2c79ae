// sdvsr: the command-line front end (see cli/options.cpp for the flags).
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/input_plan.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/resume_state.h"
#include "cli/sample_clip.h"
#include "cli/sequence_runner.h"
#include "cli/signals.h"
#include "pipeline/flow_ahead.h"
#include "pipeline/recorded_steps.h"
#include "pipeline/text_conditioning.h"
#include "runtime/backend.h"
#include "runtime/device_backend.h"
#include "runtime/warnings.h"
#include "weights/hub_download.h"
#include "weights/torch_hub.h"

namespace {

constexpr int kExitFailure = 1, kExitUsage = 2, kExitInterrupted = 130;

// Fails early, before anything is read or written, for what this build cannot do.
// (--device: a build without CUDA, or no CUDA device, fails here with one line.)
void check_build_supports(const sdvsr::cli::Options& o) {
  sdvsr::backend_for_device(o.device, sdvsr::parse_compute_dtype(o.dtype));
}

// A local folder as it is; an ORG/NAME hub id through the shared Hugging Face
// cache (text encoder left out when its prompt embedding is already cached).
void resolve_model_folder(const sdvsr::cli::Options& o, sdvsr::cli::Progress& progress,
                          sdvsr::ModelPaths& paths) {
  namespace hub = sdvsr::hub;
  if (std::filesystem::is_directory(o.model_id)) {
    paths.model_dir = o.model_id;
    return;
  }
  if (!hub::looks_like_repo_id(o.model_id))
    throw std::runtime_error(o.model_id + ": no such model folder, and not a hub id ORG/NAME");
  hub::FetchOptions fo;
  fo.offline = o.offline;
  fo.warn = [&progress](const std::string& line) { progress.warn(line); };
  fo.prompt_embeds_cached = [](const std::string& sha) { return sdvsr::prompt_embeds_cached(sha); };
  const hub::FetchedModel m = hub::fetch_model_files(o.model_id, fo);
  paths.model_dir = m.snapshot_dir;
  if (!m.text_encoder_sha256.empty())
    sdvsr::remember_text_encoder_sha256(m.commit, m.text_encoder_sha256);
  paths.text_encoder_sha256 = m.text_encoder_sha256.empty()
                                  ? sdvsr::remembered_text_encoder_sha256(m.commit)
                                  : m.text_encoder_sha256;
}

// An error is one line whatever bytes a hostile file put into it (names of
// tensors, archive members, pickle globals): control characters are escaped.
std::string one_line(const std::string& message) {
  std::string out;
  for (unsigned char c : message) {
    if (c >= 0x20 && c != 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      out += c == '\n' ? "\\n" : std::string("\\x") + hex[c >> 4] + hex[c & 15];
    }
  }
  return out;
}

int interrupted(sdvsr::cli::Progress& progress) {
  progress.info("sdvsr: interrupted; finished frames are kept (continue with --resume)");
  return kExitInterrupted;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sdvsr;
  std::optional<cli::Options> opts;
  try {
    opts = cli::parse_options(argc, argv);
    if (!opts) return 0;
  } catch (const std::exception& e) {
    std::cerr << "sdvsr: " << one_line(e.what()) << " (see sdvsr --help)\n";
    return kExitUsage;
  }
  cli::Options& o = *opts;
  cli::install_stop_handlers();
  cli::Progress progress(o);
  set_warning_sink([&progress](const std::string& line) { progress.warn(line); });
  try {
    check_build_supports(o);
    const bool sample_clip = o.in_path.empty();  // no input given: the clip shipped with sdvsr
    if (sample_clip) o.in_path = cli::sample_clip_dir(argv[0]);
    const std::vector<cli::SequenceJob> jobs =
        cli::plan_inputs(o, [&progress](const std::string& line) { progress.warn(line); });
    Backend& be = backend_for_device(o.device, parse_compute_dtype(o.dtype));
    if (o.threads > 0) be.set_threads(o.threads);
    std::optional<NoiseFile> noise;
    if (!o.noise_file.empty()) noise = NoiseFile::open(o.noise_file);
    ModelPaths given;
    resolve_model_folder(o, progress, given);
    given.unet_dir = o.unet_weights;
    given.controlnet_dir = o.controlnet_weights;
    given.vae_dir = o.vae_weights;
    given.raft_path = o.raft_file;
    // Without --raft or <model>/raft/, torchvision's published weights from the torch hub cache.
    if (given.raft_path.empty() && !std::filesystem::is_directory(
                                       std::filesystem::path(given.model_dir) / "raft")) {
      hub::TorchHubOptions to;
      to.offline = o.offline;
      given.raft_path = hub::fetch_raft(to);
    }
    const ModelPaths paths = resolve_model_paths(given);
    const auto models = load_model_bundle(paths, be);
    if (cli::stop_requested()) return interrupted(progress);
    if (sample_clip) progress.info("sdvsr: no --in_path given; upscaling the sample clip " + o.in_path);
    // The next frame's flow beside the current frame's diffusion: a second
    // stream on a GPU (auto); on the CPU only when asked, as it shares the cores.
    std::unique_ptr<FlowAhead> flow_ahead;
    if (o.flow_ahead != "off") {
      Backend* side = flow_ahead_backend(be);
      if (!side && o.flow_ahead == "on") side = &be;
      if (side) flow_ahead = std::make_unique<FlowAhead>(models->raft_path, *side);
    }
    // Each resolution's denoising step recorded once and replayed (CUDA graphs).
    std::unique_ptr<RecordedSteps> recorded;
    if (o.cuda_graphs == "on" && be.can_record())
      recorded = std::make_unique<RecordedSteps>(*models, be);
    cli::RunContext ctx{*models, be, o, noise ? &*noise : nullptr,
                        cli::run_fingerprint(o, paths), progress, flow_ahead.get(),
                        recorded.get()};
    for (const cli::SequenceJob& job : jobs) {
      const cli::SequenceOutcome outcome = cli::run_sequence(job, ctx);
      if (outcome == cli::SequenceOutcome::kStopped) return interrupted(progress);
      if (outcome == cli::SequenceOutcome::kDone)
        progress.info("Upscaled " + job.name + " and saved to " +
                      (job.out_dir.empty() ? job.label : job.out_dir) + ".");
    }
    if (flow_ahead)
      progress.info("sdvsr: " + std::to_string(flow_ahead->flows_used()) +
                    " optical flows computed ahead, beside the diffusion, on " +
                    flow_ahead->backend().name());
    if (recorded)
      progress.info("sdvsr: " + std::to_string(recorded->replays()) +
                    " denoising steps replayed from " + std::to_string(recorded->recordings()) +
                    " CUDA graphs");
  } catch (const std::exception& e) {
    progress.error(one_line(e.what()));
    return kExitFailure;
  }
  return 0;
}
