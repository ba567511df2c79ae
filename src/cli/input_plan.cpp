#include "cli/input_plan.h"

#include <filesystem>
#include <stdexcept>

#include "cli/folder_frames.h"
#include "media/frame_folder.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

SequenceJob folder_job(const Options& o, const std::string& in_dir, std::string name,
                       const fs::path& out_dir) {
  if (same_folder(in_dir, out_dir))
    throw std::runtime_error(out_dir.string() +
                             ": output folder is the input folder; choose another --out_path");
  SequenceJob j;
  j.name = std::move(name);
  j.label = in_dir;
  j.out_dir = out_dir.string();
  j.open_source = [in_dir] { return std::make_unique<FolderSource>(in_dir); };
  j.open_sink = [dir = j.out_dir, format = o.format, quality = o.quality] {
    return std::make_unique<FolderSink>(dir, format, quality);
  };
  return j;
}

}  // namespace

std::string input_basename(std::string in_path) {
  while (in_path.size() > 1 && in_path.back() == '/') in_path.pop_back();
  std::string name = fs::path(in_path).filename().string();
  if (name.empty() || name == "." || name == "..")
    name = fs::weakly_canonical(fs::path(in_path)).filename().string();
  return name;
}

std::vector<SequenceJob> plan_inputs(const Options& o) {
  if (o.in_path == "-")
    throw std::runtime_error("-: y4m input on stdin is not in this build yet");
  std::error_code ec;
  const fs::file_status st = fs::status(o.in_path, ec);
  if (!fs::exists(st)) throw std::runtime_error(o.in_path + ": input not found");
  if (!fs::is_directory(st))
    throw std::runtime_error(o.in_path +
                             ": not a folder (video input is not in this build yet)");
  const std::string base = input_basename(o.in_path);
  const fs::path out_root = fs::path(o.out_path) / base;
  std::vector<SequenceJob> jobs;
  if (!list_frames(o.in_path).empty()) {
    jobs.push_back(folder_job(o, o.in_path, base, out_root));
    return jobs;
  }
  for (const std::string& dir : list_sequences(o.in_path)) {
    std::string name = fs::path(dir).filename().string();
    jobs.push_back(folder_job(o, dir, name, out_root / name));
  }
  if (jobs.empty())
    throw std::runtime_error(o.in_path +
                             ": no image frames and no sequence folders of frames");
  return jobs;
}

}  // namespace sdvsr::cli
