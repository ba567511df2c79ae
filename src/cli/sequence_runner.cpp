#include "cli/sequence_runner.h"

#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "media/frame_convert.h"
#include "media/frame_folder.h"
#include "media/image_io.h"
#include "pipeline/stream_session.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

// The original takes Path(seq_path).parent.name, i.e. the name of IN without trailing slashes.
std::string input_basename(std::string in_path) {
  while (in_path.size() > 1 && in_path.back() == '/') in_path.pop_back();
  std::string name = fs::path(in_path).filename().string();
  if (name.empty() || name == "." || name == "..")
    name = fs::weakly_canonical(fs::path(in_path)).filename().string();
  return name;
}

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

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

std::vector<SequenceJob> plan_sequences(const Options& o) {
  if (!fs::is_directory(o.in_path))
    throw std::runtime_error(o.in_path + ": input folder not found");
  const fs::path out_root = fs::path(o.out_path) / input_basename(o.in_path);
  std::vector<SequenceJob> jobs;
  for (const std::string& dir : list_sequences(o.in_path)) {
    SequenceJob j;
    j.in_dir = dir;
    j.name = fs::path(dir).filename().string();
    j.out_dir = (out_root / j.name).string();
    if (same_folder(j.in_dir, j.out_dir))
      throw std::runtime_error(j.out_dir + ": output folder is the input folder; choose another --out_path");
    jobs.push_back(std::move(j));
  }
  if (jobs.empty())
    throw std::runtime_error(o.in_path + ": no sequence folders (expected one folder of frames per sequence)");
  return jobs;
}

int run_sequence(const SequenceJob& job, const ModelBundle& models, Backend& be,
                 const Options& o, const NoiseFile* noise) {
  const std::vector<std::string> frames = list_frames(job.in_dir);
  if (frames.empty()) throw std::runtime_error(job.in_dir + ": no PNG frames");
  StreamOptions so;
  so.num_inference_steps = o.num_inference_steps;
  so.seed = o.seed;
  StreamSession session(models, be, so);
  fs::create_directories(job.out_dir);
  int written = 0;
  for (size_t k = 0; k < frames.size(); ++k) {
    const std::string& path = frames[k];
    const Image lr_img = read_image(path);
    if (k > 0 && session.state().index > 0) {
      const Shape& prev = session.state().prev_upscaled.shape();
      const int64_t want_h = (lr_img.height + models.vae_scale_factor - 1) / models.vae_scale_factor *
                             models.vae_scale_factor * 4;
      const int64_t want_w = (lr_img.width + models.vae_scale_factor - 1) / models.vae_scale_factor *
                             models.vae_scale_factor * 4;
      if (prev[2] != want_h || prev[3] != want_w)
        throw std::runtime_error(path + ": frame size " + std::to_string(lr_img.width) + "x" +
                                 std::to_string(lr_img.height) +
                                 " differs from the sequence's first frame");
    }
    const Image padded = pad_to_multiple(lr_img, models.vae_scale_factor);
    // VaeImageProcessor: v / 255, then 2x - 1.
    const Tensor lr = be.add_scalar(be.scale(image_to_tensor(padded), 2.0f), -1.0f);
    std::optional<Tensor> injected;
    if (noise) {
      injected = noise->latent_for(job.name, static_cast<int64_t>(k));
      if (!injected)
        throw std::runtime_error(o.noise_file + ": no tensor '" + job.name + "/frame" +
                                 std::to_string(k) + ".init_latents' or 'frame" +
                                 std::to_string(k) + ".init_latents'");
    }
    const Tensor decoded = session.push(lr, injected ? &*injected : nullptr);
    const Image hr = crop(tensor_to_image(decoded), lr_img.width * 4, lr_img.height * 4);
    const std::string out = (fs::path(job.out_dir) / fs::path(path).filename()).string();
    write_png(out, hr);
    ++written;
    if (!o.quiet)
      std::cerr << job.name << ": frame " << (k + 1) << "/" << frames.size() << " -> " << out
                << "\n";
  }
  return written;
}

}  // namespace sdvsr::cli
