#pragma once
// sdvsr's command line: the original inference.py's flags plus our own.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace sdvsr::cli {

enum class LogMode { kText, kJson };

struct Options {
  // ---- the original's flags ----
  std::string model_id = "Jamichsu/Stream-DiffVSR";
  std::string unet_weights, controlnet_weights, vae_weights;  // *_pretrained_weight
  std::string in_path;
  std::string out_path = "./StreamDiffVSR_results/";
  int num_inference_steps = 4;
  // ---- ours ----
  std::string device = "cpu";  // cpu | cuda | cuda:N (validated by the parser)
  std::string dtype = "float32";  // matrix products: float32 | float16 | bfloat16 (cuda only)
  int threads = 0;             // 0 = all cores
  std::string cuda_graphs = "on";   // replay each resolution's denoising step as a CUDA graph: on | off
  std::string flow_ahead = "auto";  // next frame's flow beside the diffusion: auto (GPU) | on | off
  uint64_t seed = 0;
  std::string noise_file;
  std::string raft_file;
  std::string format = "png";  // frame files: png | jpg
  int quality = 95;            // JPEG quality
  std::string codec = "libx264";  // video output (FFmpeg encoder name)
  int crf = 18;
  std::string pix_fmt = "yuv420p";
  bool offline = false;  // hub: cache only
  bool resume = false;
  LogMode log = LogMode::kText;
  bool quiet = false;
};

// Parses argv. Returns nullopt after printing help/version (exit 0); throws
// UsageError for a bad command line (exit 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
std::optional<Options> parse_options(int argc, char** argv);

}  // namespace sdvsr::cli
