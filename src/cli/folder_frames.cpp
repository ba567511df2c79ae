#include "cli/folder_frames.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "cli/signals.h"
#include "media/frame_folder.h"
#include "media/jpeg_io.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

FolderSource::FolderSource(const std::string& folder) : paths_(list_frames(folder)) {
  if (paths_.empty()) throw std::runtime_error(folder + ": no image frames");
}

std::optional<Frame> FolderSource::next() {
  if (next_ >= paths_.size()) return std::nullopt;
  const std::string& path = paths_[next_++];
  return Frame{read_image(path), fs::path(path).filename().string()};
}

void FolderSource::skip(int64_t n) {
  next_ = std::min(paths_.size(), next_ + static_cast<size_t>(std::max<int64_t>(n, 0)));
}

std::vector<std::string> FolderSource::names() const {
  std::vector<std::string> out;
  out.reserve(paths_.size());
  for (const std::string& p : paths_) out.push_back(fs::path(p).filename().string());
  return out;
}

FolderSink::FolderSink(std::string folder, std::string format, int quality)
    : folder_(std::move(folder)), format_(std::move(format)), quality_(quality) {
  if (format_ != "png" && format_ != "jpg")
    throw std::runtime_error("--format " + format_ + ": unknown frame format (png or jpg)");
}

std::string FolderSink::path_for(int64_t, const std::string& name) const {
  fs::path p = fs::path(folder_) / name;
  // PNG output keeps the input's names (the original's layout); any other
  // extension (a JPEG input, or --format jpg) becomes the format's own.
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext != "." + format_) p.replace_extension("." + format_);
  return p.string();
}

void FolderSink::write(int64_t k, const std::string& name, const Image& hr) {
  if (!created_) {
    std::error_code ec;
    fs::create_directories(folder_, ec);
    if (ec) throw std::runtime_error(folder_ + ": cannot create output folder: " + ec.message());
    created_ = true;
  }
  const std::string path = path_for(k, name);
  // write_png/write_jpeg fill "<path>.tmp-<pid>" then rename it; an abort removes it.
  set_pending_temp(path + ".tmp-" + std::to_string(::getpid()));
  if (format_ == "jpg")
    write_jpeg(path, hr, quality_);
  else
    write_png(path, hr);
  set_pending_temp("");
}

}  // namespace sdvsr::cli
