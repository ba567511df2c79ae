#include "pipeline/noise_file.h"

#include <stdexcept>

#include "weights/safetensors.h"

namespace sdvsr {

namespace {
const std::string kSuffix = ".init_latents";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

NoiseFile NoiseFile::open(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  bool any = false;
  for (const TensorInfo& info : file->tensors()) any = any || ends_with(info.name, kSuffix);
  if (!any)
    throw std::runtime_error(path + ": no initial latents in this noise file (expected tensors named "
                             "'<sequence>/frame{k}.init_latents' or 'frame{k}.init_latents')");
  return NoiseFile(std::move(file));
}

std::optional<Tensor> NoiseFile::latent_for(const std::string& sequence, int64_t k) const {
  const std::string frame_key = "frame" + std::to_string(k) + kSuffix;
  for (const std::string& key : {sequence + "/" + frame_key, frame_key})
    if (file_->has(key)) return file_->tensor(key).clone();
  return std::nullopt;
}

const std::string& NoiseFile::path() const { return file_->path(); }

}  // namespace sdvsr
