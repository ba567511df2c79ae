// sdvsr: the command-line front end (see cli/options.cpp for the flags).
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/options.h"
#include "cli/sequence_runner.h"
#include "runtime/backend.h"

int main(int argc, char** argv) {
  using namespace sdvsr;
  std::optional<cli::Options> opts;
  try {
    opts = cli::parse_options(argc, argv);
    if (!opts) return 0;
  } catch (const std::exception& e) {
    std::cerr << "sdvsr: " << e.what() << " (see sdvsr --help)\n";
    return 2;
  }
  const cli::Options& o = *opts;
  try {
    Backend& be = cpu_backend();
    if (o.threads > 0) be.set_threads(o.threads);
    const std::vector<cli::SequenceJob> jobs = cli::plan_sequences(o);
    std::optional<NoiseFile> noise;
    if (!o.noise_file.empty()) noise = NoiseFile::open(o.noise_file);
    if (!std::filesystem::is_directory(o.model_id))
      throw std::runtime_error(o.model_id +
                               ": model folder not found (hub downloads are not supported yet; "
                               "pass a local folder in the original's layout)");
    ModelPaths paths;
    paths.model_dir = o.model_id;
    paths.unet_dir = o.unet_weights;
    paths.controlnet_dir = o.controlnet_weights;
    paths.vae_dir = o.vae_weights;
    paths.raft_path = o.raft_file;
    const auto models = load_model_bundle(paths, be);
    for (const cli::SequenceJob& job : jobs) {
      cli::run_sequence(job, *models, be, o, noise ? &*noise : nullptr);
      if (!o.quiet) std::cerr << "Upscaled " << job.name << " and saved to " << job.out_dir << ".\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "sdvsr: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
