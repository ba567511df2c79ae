#include "media/frame_folder.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace sdvsr {
namespace fs = std::filesystem;

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// -1, 0, 1 for a < b, a == b, a > b under the natural rule (ties not broken).
int natural_compare(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  int zeros_tiebreak = 0;  // fewer leading zeros first, used only if all else ties
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      size_t ia = i, jb = j;
      while (ia < a.size() && a[ia] == '0') ++ia;
      while (jb < b.size() && b[jb] == '0') ++jb;
      size_t ea = ia, eb = jb;
      while (ea < a.size() && is_digit(a[ea])) ++ea;
      while (eb < b.size() && is_digit(b[eb])) ++eb;
      // Significant digits: more digits = larger; same count = compare digit by digit.
      if (ea - ia != eb - jb) return ea - ia < eb - jb ? -1 : 1;
      const int c = a.compare(ia, ea - ia, b, jb, eb - jb);
      if (c != 0) return c < 0 ? -1 : 1;
      if (zeros_tiebreak == 0 && ia - i != jb - j) zeros_tiebreak = ia - i < jb - j ? -1 : 1;
      i = ea;
      j = eb;
    } else {
      const unsigned char ca = a[i], cb = b[j];
      if (ca != cb) return ca < cb ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size()) return 1;  // b is a prefix of a
  if (j < b.size()) return -1;
  return zeros_tiebreak;
}

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".webp" ||
         ext == ".tif" || ext == ".tiff";
}

// Entries of `folder` accepted by `keep`, as full paths in natural order of their names.
template <class Keep>
std::vector<std::string> list_entries(const std::string& folder, Keep keep) {
  std::error_code ec;
  fs::directory_iterator it(folder, ec);
  if (ec) throw std::runtime_error(folder + ": cannot list folder (" + ec.message() + ")");
  std::vector<std::pair<std::string, std::string>> found;  // (name, full path)
  for (const fs::directory_entry& e : it) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (keep(e)) found.emplace_back(name, e.path().string());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& x, const auto& y) { return natural_less(x.first, y.first); });
  std::vector<std::string> paths;
  paths.reserve(found.size());
  for (auto& f : found) paths.push_back(std::move(f.second));
  return paths;
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  const int c = natural_compare(a, b);
  if (c != 0) return c < 0;
  return a < b;
}

std::vector<std::string> list_frames(const std::string& folder) {
  return list_entries(folder, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && has_image_extension(e.path());
  });
}

std::vector<std::string> list_sequences(const std::string& folder) {
  return list_entries(folder, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_directory(ec);
  });
}

std::string sequence_output_dir(const std::string& out_path, const std::string& in_path,
                                const std::string& sequence_name) {
  fs::path in(in_path);
  // os.path.join(IN, seq) then Path(...).parent.name: the last non-empty component of IN.
  std::string in_name = in.filename().string();
  if (in_name.empty()) in_name = in.parent_path().filename().string();
  return (fs::path(out_path) / in_name / sequence_name).string();
}

}  // namespace sdvsr
