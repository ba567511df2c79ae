#include "golden.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace sdvsr::test {

namespace fs = std::filesystem;

std::string golden_dir() {
  const char* env = std::getenv("SDVSR_GOLDEN_DIR");
  std::string dir = (env && *env) ? env : SDVSR_GOLDEN_DIR;
  if (!fs::exists(fs::path(dir) / "tiny" / "cases" / "cases_index.json")) {
    const std::string msg = "golden data missing: " + dir +
                            "/tiny/cases/cases_index.json not found (set SDVSR_GOLDEN_DIR)";
    ADD_FAILURE() << msg;
    throw std::runtime_error(msg);
  }
  return dir;
}

std::string golden_path(const std::string& relative) { return golden_dir() + "/" + relative; }

std::shared_ptr<SafetensorsFile> open_case(const std::string& relative_to_tiny_cases) {
  return SafetensorsFile::open(golden_path("tiny/cases/" + relative_to_tiny_cases));
}

namespace {
// The per-process temp root, removed when the test binary exits.
struct TempRoot {
  fs::path path;
  TempRoot() : path(fs::temp_directory_path() / ("sdvsr-tests-" + std::to_string(getpid()))) {}
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
TempRoot& temp_root() {
  static TempRoot root;
  return root;
}
}  // namespace

std::unique_ptr<ModelBundle> load_tiny_models(Backend& be) {
  ModelPaths p;
  p.model_dir = golden_path("tiny");
  return load_model_bundle(p, be);
}

GoldenSequence golden_sequence(const std::string& relative_to_tiny_cases) {
  auto f = open_case(relative_to_tiny_cases);
  auto key = [](int k, const char* name) { return "frame" + std::to_string(k) + "." + name; };
  GoldenSequence s;
  for (int k = 0; f->has(key(k, "lr")); ++k) {
    s.lr.push_back(f->tensor(key(k, "lr")));
    s.noise.push_back(f->tensor(key(k, "init_latents")));
  }
  return s;
}

std::string temp_dir(const std::string& tag) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  fs::path dir = temp_root().path / tag;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

Closeness compare(const Tensor& out, const Tensor& ref) {
  Closeness c;
  if (out.shape() != ref.shape()) {
    c.shapes_equal = false;
    c.rel_l2 = c.max_abs = std::numeric_limits<double>::infinity();
    return c;
  }
  double diff2 = 0, ref2 = 0;
  bool nan = false;
  const float* o = out.data();
  const float* r = ref.data();
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(o[i]) - static_cast<double>(r[i]);
    if (std::isnan(d)) nan = true;
    diff2 += d * d;
    ref2 += static_cast<double>(r[i]) * r[i];
    c.max_abs = std::max(c.max_abs, std::fabs(d));
    c.max_ref = std::max(c.max_ref, std::fabs(static_cast<double>(r[i])));
  }
  if (nan) {
    c.rel_l2 = c.max_abs = std::numeric_limits<double>::quiet_NaN();
    return c;
  }
  c.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : (diff2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  return c;
}

::testing::AssertionResult IsCloseTol(const char* out_expr, const char* ref_expr, const char*,
                                      const char*, const Tensor& out, const Tensor& ref,
                                      double rel, double max_frac) {
  const Closeness c = compare(out, ref);
  std::ostringstream msg;
  msg << out_expr << " vs " << ref_expr << ": ";
  if (!c.shapes_equal) {
    msg << "shape " << shape_str(out.shape()) << " != " << shape_str(ref.shape());
    return ::testing::AssertionFailure() << msg.str();
  }
  const double abs_bound = max_frac * c.max_ref;
  msg << "rel L2 " << c.rel_l2 << " (bound " << rel << "), max abs " << c.max_abs << " (bound "
      << abs_bound << " = " << max_frac << " * max|ref| " << c.max_ref << ")";
  // Written so that NaN fails.
  if (c.rel_l2 <= rel && c.max_abs <= abs_bound) return ::testing::AssertionSuccess() << msg.str();
  return ::testing::AssertionFailure() << msg.str();
}

::testing::AssertionResult IsClose(const char* out_expr, const char* ref_expr, const Tensor& out,
                                   const Tensor& ref) {
  return IsCloseTol(out_expr, ref_expr, "1e-4", "1e-3", out, ref, 1e-4, 1e-3);
}

}  // namespace sdvsr::test
