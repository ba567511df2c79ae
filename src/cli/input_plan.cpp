#include "cli/input_plan.h"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include "cli/folder_frames.h"
#include "cli/media_frame_io.h"
#include "media/frame_folder.h"

namespace fs = std::filesystem;

namespace sdvsr::cli {

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

// Where frames go when the input is a stream: y4m on stdout for "-o -", else a
// folder sink (resume needs named, re-readable inputs, so it stays off).
std::function<std::unique_ptr<FrameSink>()> stream_sink(const Options& o, const fs::path& folder,
                                                        std::shared_ptr<Rational> rate) {
  if (o.out_path == "-") return [rate] { return std::make_unique<Y4mStdoutSink>(rate); };
  return [dir = folder.string(), format = o.format, quality = o.quality] {
    return std::make_unique<FolderSink>(dir, format, quality);
  };
}

SequenceJob folder_job(const Options& o, const std::string& in_dir, std::string name,
                       const fs::path& out_dir) {
  const bool to_stdout = o.out_path == "-";
  if (!to_stdout && same_folder(in_dir, out_dir))
    throw std::runtime_error(out_dir.string() +
                             ": output folder is the input folder; choose another --out_path");
  SequenceJob j;
  j.name = std::move(name);
  j.label = in_dir;
  j.out_dir = out_dir.string();
  j.open_source = [in_dir] { return std::make_unique<FolderSource>(in_dir); };
  if (to_stdout) j.out_dir.clear();  // y4m on stdout: nothing to resume into
  j.open_sink = stream_sink(o, out_dir, std::make_shared<Rational>(Rational{25, 1}));
  return j;
}

SequenceJob y4m_stdin_job(const Options& o) {
  auto rate = std::make_shared<Rational>(Rational{25, 1});
  SequenceJob j;
  j.name = "stdin";
  j.label = "<stdin>";
  j.open_source = [rate] { return std::make_unique<Y4mStdinSource>(rate); };
  j.open_sink = stream_sink(o, fs::path(o.out_path), rate);
  return j;
}

// A video file: into a video file (--out_path, or <folder>/<input name> when it
// names a folder), or y4m on stdout. Audio, subtitles, metadata and timestamps
// come from the input.
SequenceJob video_job(const Options& o, const MediaWarning& warn) {
  auto link = std::make_shared<VideoLink>();
  SequenceJob j;
  j.name = fs::path(o.in_path).stem().string();
  j.label = o.in_path;
  j.open_source = [path = o.in_path, link, warn] {
    return std::make_unique<VideoFileSource>(path, link, warn);
  };
  if (o.out_path == "-") {
    auto rate = std::make_shared<Rational>(Rational{25, 1});
    j.open_source = [path = o.in_path, link, rate, warn] {
      auto source = std::make_unique<VideoFileSource>(path, link, warn);
      *rate = link->reader->frame_rate();
      source->check_constant_rate();
      return source;
    };
    j.open_sink = [rate] { return std::make_unique<Y4mStdoutSink>(rate); };
    return j;
  }
  fs::path out = o.out_path;
  if (fs::is_directory(out)) out /= fs::path(o.in_path).filename();
  if (same_folder(out, o.in_path))
    throw std::runtime_error(out.string() + ": output file is the input file; choose another --out_path");
  VideoEncodeOptions enc;
  enc.codec = o.codec;
  enc.pix_fmt = o.pix_fmt;
  if (o.codec != "ffv1") enc.crf = o.crf;
  enc.warn = warn;
  j.open_sink = [out = out.string(), link, enc] {
    return std::make_unique<VideoFileSink>(out, link, enc);
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

std::vector<SequenceJob> plan_inputs(const Options& o, std::function<void(const std::string&)> warn) {
  if (o.in_path == "-") return {y4m_stdin_job(o)};
  std::error_code ec;
  const fs::file_status st = fs::status(o.in_path, ec);
  if (!fs::exists(st)) throw std::runtime_error(o.in_path + ": input not found");
  if (!fs::is_directory(st)) return {video_job(o, warn)};
  // Frames go into OUT/<name>/: refuse a file there now, not after the first frame.
  if (o.out_path != "-" && fs::exists(o.out_path, ec) && !fs::is_directory(o.out_path, ec))
    throw std::runtime_error(o.out_path + ": output path exists and is not a folder (a folder of "
                             "frames is written into a folder)");
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
