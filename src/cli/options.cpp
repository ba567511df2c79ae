#include "cli/options.h"

#include <iostream>

#include <CLI/CLI.hpp>

namespace sdvsr::cli {

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  CLI::App app{
      "sdvsr: Stream-DiffVSR streaming 4x video super-resolution (C++).\n"
      "Upscales every sequence folder of PNG frames in --in_path, in order, using only past "
      "frames, and writes OUT/<name of IN>/<sequence>/<same file names>.\n"
      "LR sides that are not multiples of 4 are edge-padded and the output cropped to 4x "
      "(the original resamples them with Lanczos instead).",
      "sdvsr"};
  app.set_version_flag("--version", "sdvsr 0.1.0");
  app.add_option("--model_id", o.model_id,
                 "model folder in the original's layout (unet/, controlnet/, vae/, scheduler/, "
                 "raft/, prompt_embeds.safetensors or text_encoder/ + tokenizer/)")
      ->capture_default_str();
  app.add_option("--unet_pretrained_weight", o.unet_weights, "U-Net folder (default <model>/unet)");
  app.add_option("--controlnet_pretrained_weight", o.controlnet_weights,
                 "ControlNet folder (default <model>/controlnet)");
  app.add_option("--temporal_vae_pretrained_weight", o.vae_weights,
                 "temporal VAE folder (default <model>/vae)");
  app.add_option("--in_path", o.in_path, "folder holding one folder of PNG frames per sequence")
      ->required();
  app.add_option("--out_path", o.out_path, "output folder")->capture_default_str();
  app.add_option("--num_inference_steps", o.num_inference_steps, "DDIM steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--device", o.device, "cpu (cuda comes with the speed work)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed,
                 "initial-noise seed (Philox4x32-10 + Box-Muller, stream = frame index)")
      ->capture_default_str();
  app.add_option("--noise", o.noise_file,
                 "safetensors file of initial latents: '<sequence>/frame{k}.init_latents' or "
                 "'frame{k}.init_latents' (k = 0-based frame index)");
  app.add_option("--raft", o.raft_file,
                 "RAFT-large weights (.pth or .safetensors; default: the first in <model>/raft/)");
  app.add_flag("-q,--quiet", o.quiet, "print nothing but errors");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion&) {
    std::cout << "sdvsr 0.1.0\n";
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  if (o.device != "cpu")
    throw UsageError("--device " + o.device +
                     ": this build runs on the CPU only (use --device cpu)");
  return o;
}

}  // namespace sdvsr::cli
