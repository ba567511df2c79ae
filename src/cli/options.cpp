#include "cli/options.h"

#include <iostream>
#include <map>
#include <regex>

#include <CLI/CLI.hpp>

#include "sdvsr/sdvsr.h"  // the version macros (one version for the CLI and the C API)

namespace sdvsr::cli {

namespace {

#define SDVSR_CLI_STR2(x) #x
#define SDVSR_CLI_STR(x) SDVSR_CLI_STR2(x)
constexpr const char* kVersion = "sdvsr " SDVSR_CLI_STR(SDVSR_VERSION_MAJOR) "." SDVSR_CLI_STR(
    SDVSR_VERSION_MINOR) "." SDVSR_CLI_STR(SDVSR_VERSION_PATCH);

const char* kDescription =
    "sdvsr: Stream-DiffVSR streaming 4x video super-resolution (C++).\n"
    "Upscales, in order and using only past frames:\n"
    "  - a folder of sequence folders (the original's layout): OUT/<name of IN>/<sequence>/<names>\n"
    "  - a folder that holds image files directly (one sequence): OUT/<name of IN>/<names>\n"
    "  - a video file: OUT names a video file (same frames and timestamps, audio kept)\n"
    "  - '-': y4m on stdin; '-o -' writes y4m to stdout (y4m is constant-rate)\n"
    "  - nothing: the sample clip shipped with sdvsr\n"
    "Frames are taken in natural order (frame_2 before frame_10; the original sorts names as\n"
    "strings, which is the same order for zero-padded names). LR sides that are not multiples\n"
    "of 4 are edge-padded and the output cropped to exactly 4x (the original resamples them\n"
    "with Lanczos instead).\n"
    "Exit status: 0 done, 1 failure (one line on stderr naming the file), 2 bad command line,\n"
    "130 interrupted cleanly (finished frames kept; continue with --resume).";

}  // namespace

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  CLI::App app{kDescription, "sdvsr"};
  app.set_version_flag("--version", kVersion);
  app.get_formatter()->column_width(34);

  // The original inference.py's flags.
  app.add_option("--model_id", o.model_id,
                 "model folder in the original's layout (unet/, controlnet/, vae/, scheduler/, "
                 "raft/, prompt_embeds.safetensors or text_encoder/ + tokenizer/)")
      ->capture_default_str();
  app.add_option("--unet_pretrained_weight", o.unet_weights, "U-Net folder (default <model>/unet)");
  app.add_option("--controlnet_pretrained_weight", o.controlnet_weights,
                 "ControlNet folder (default <model>/controlnet)");
  app.add_option("--temporal_vae_pretrained_weight", o.vae_weights,
                 "temporal VAE folder (default <model>/vae)");
  app.add_option("-i,--in_path", o.in_path,
                 "input: a folder of sequence folders, a folder of frames, a video file, or - "
                 "for y4m on stdin (default: the sample clip shipped with sdvsr)");
  app.add_option("-o,--out_path", o.out_path,
                 "output folder; a video file for a video input; - for y4m on stdout (always "
                 "constant-rate: a variable-rate input gets its average rate)")
      ->capture_default_str();
  app.add_option("--num_inference_steps", o.num_inference_steps, "DDIM steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));

  // Ours.
  app.add_option("--device", o.device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            static const std::regex ok("cpu|cuda(:[0-9]+)?");
            return std::regex_match(v, ok) ? std::string()
                                           : "'" + v + "' is not cpu, cuda or cuda:N";
          },
          "cpu|cuda[:N]"));
  app.add_option("--dtype", o.dtype,
                 "precision of the matrix products: float32, or float16 / bfloat16 with float32 "
                 "accumulation (--device cuda only)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16"}));
  app.add_option("--cuda-graphs", o.cuda_graphs,
                 "on a GPU, record each resolution's denoising step once as a CUDA graph and "
                 "replay it (on, off); the frames are the same")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--flow-ahead", o.flow_ahead,
                 "compute the next frame's optical flow while the current frame denoises: auto "
                 "(on a GPU, on a second stream), on (also on the CPU, sharing its cores), off; "
                 "the frames are the same")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  std::string seed = "0";  // parsed here: CLI11 would wrap "-3" into a huge unsigned value
  app.add_option("--seed", seed,
                 "initial-noise seed, 0 to 2^64-1 (Philox4x32-10 + Box-Muller, stream = frame index)")
      ->capture_default_str();
  app.add_option("--noise", o.noise_file,
                 "safetensors file of initial latents: '<sequence>/frame{k}.init_latents' or "
                 "'frame{k}.init_latents' (k = 0-based frame index)");
  app.add_option("--raft", o.raft_file,
                 "RAFT-large weights (.pth or .safetensors; default: the first in <model>/raft/)");
  app.add_option("--format", o.format, "frame files: png or jpg (jpg replaces the extension)")
      ->capture_default_str()
      ->check(CLI::IsMember({"png", "jpg"}));
  app.add_option("--quality", o.quality, "JPEG quality")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--codec", o.codec, "video output encoder (libx264, libx265, ffv1)")
      ->capture_default_str();
  app.add_option("--crf", o.crf, "video output constant rate factor")
      ->capture_default_str()
      ->check(CLI::Range(0, 63));
  app.add_option("--pix-fmt", o.pix_fmt, "video output pixel format (yuv420p, yuv444p, gbrp, ...)")
      ->capture_default_str();
  app.add_flag("--offline", o.offline, "use only the local model cache (as HF_HUB_OFFLINE=1)");
  app.add_flag("--resume", o.resume,
               "continue an interrupted run: finished sequences are skipped, an interrupted one "
               "continues from its saved state (OUT/.../<sequence>/.sdvsr-state)");
  std::string log = "text";
  app.add_option("--log", log, "progress on stderr: text, or json (one object per frame, warning and error)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-q,--quiet", o.quiet, "print nothing but errors");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion&) {
    std::cout << kVersion << "\n";
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  o.log = log == "json" ? LogMode::kJson : LogMode::kText;
  if (seed.empty() || seed.size() > 20 || seed.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError("--seed: '" + seed + "' is not an integer from 0 to 2^64-1");
  try {
    o.seed = std::stoull(seed);
  } catch (const std::exception&) {
    throw UsageError("--seed: '" + seed + "' is not an integer from 0 to 2^64-1");
  }
  if (o.codec.empty()) throw UsageError("--codec: empty encoder name");
  if (o.pix_fmt.empty()) throw UsageError("--pix-fmt: empty pixel format");
  return o;
}

}  // namespace sdvsr::cli
