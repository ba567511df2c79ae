// sdvsr-bench: times the pipeline's components on a model folder and says how
// close they come to the machine's matrix-product rate.
//
//   sdvsr-bench --model DIR [--device cpu|cuda|cuda:N] [--dtype float32|float16|bfloat16]
//               [--sizes 64x64,180x320] [--repeats N] [--threads N] [--json]
//
// Per LR size (HxW) and component: ms = median of N timed runs after one
// warm-up; tflops = counted FLOPs (bench/counting_backend.h) / time;
// peak_ratio = tflops / the matrix-product rate measured in the same run on the
// same device: on the CPU oneDNN sgemm 4096^3 with the same threads, measured
// again just before each component's timed runs (a shared machine's speed
// drifts over a long run; the row's ref_tflops), on a GPU a cuBLAS GEMM 8192^3
// in the benchmark's dtype, once on the empty device (runtime/cuda/cuda_gemm_rate.h);
// peak_mem_mb = the most memory (MiB) in use while the component ran: resident
// memory on the CPU, the device pool's high-water mark on a GPU. On a GPU
// every timed run ends with a device synchronisation before the clock stops.
#include <dnnl.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "counting_backend.h"
#include "pipeline/bicubic_upscale.h"
#include "pipeline/flow_ahead.h"
#include "pipeline/model_bundle.h"
#include "pipeline/noise.h"
#include "pipeline/stream_session.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_simd.h"
#include "runtime/cuda/cuda_gemm_rate.h"
#include "runtime/device_backend.h"
#include "runtime/host_blocks.h"

namespace sdvsr::bench {
namespace {

constexpr const char* kUsage =
    "usage: sdvsr-bench --model DIR [--device cpu|cuda|cuda:N] [--dtype float32|float16|bfloat16] "
    "[--sizes HxW[,HxW...]] [--repeats N] [--threads N] [--gemm-size N] [--components a,b,...] "
    "[--cuda-graphs on|off] [--conv-stacks on|off] [--norm-convs on|off] [--upsample-convs on|off] [--linear-post-ops on|off] [--host-block-cache on|off] [--conv-band-mb N] [--conv-stack-mb N] [--simd auto|baseline] [--profile] [--json]\n"
    "  --gemm-size (alias --sgemm-size): the reference product's size, 4096 on the CPU, 8192 on a GPU.\n"
    "  --dtype other than float32 needs --device cuda.\n"
    "  --profile prints each component's time per backend op to stderr (on a GPU: launch time;\n"
    "  steps replayed from a CUDA graph launch no ops: --cuda-graphs off to see them).\n"
    "  frame_flow_ahead (GPU only, not in the default list): a later frame with the next frame's\n"
    "  flow on a second stream; its gflop leaves out RAFT's, which that stream computes.\n"
    "  denoise_step (not in the default list): one denoising step of a later frame as the pipeline\n"
    "  runs it, ControlNet and U-Net, replayed from a CUDA graph on a GPU.\n"
    "  --cuda-graphs (default on): the pipeline's components (frame, frame_flow_ahead,\n"
    "  denoise_step) replay each resolution's denoising step from a CUDA graph on a GPU;\n"
    "  unet_step and controlnet_step always run op by op.\n"
    "  --conv-stacks (default on; CPU): stacked convolutions (the temporal VAE's blocks, RAFT's\n"
    "  update block) keep oneDNN's blocked layout between them; off runs them one by one.\n"
    "  --norm-convs (default on; CPU): a GroupNorm before a convolution (every ResNet block)\n"
    "  writes the convolution's blocked input itself; off writes a plain tensor first.\n"
    "  --upsample-convs (default on; CPU): a nearest upsampling before a convolution (the\n"
    "  U-Net's upsamplers, the temporal VAE's decoder) writes the convolution's blocked input\n"
    "  itself; off makes the plain upsampled tensor first.\n"
    "  --linear-post-ops (default on; CPU): the feed-forward's GELU and product, and the\n"
    "  attention and feed-forward skip connections, run inside the matrix products\n"
    "  (oneDNN post-ops); off runs them as separate passes.\n"
    "  --host-block-cache (default on): freed blocks of 1 MiB or more are kept for the next\n"
    "  allocation of about their size (runtime/host_blocks.h); off leaves them to malloc.\n"
    "  --conv-band-mb (CPU, default 64): input plus output MiB of one band of a large convolution.\n"
    "  --conv-stack-mb (CPU, default 16): MiB of the largest tensor a stack keeps between two\n"
    "  convolutions; a larger stack runs in bands of rows.\n"
    "  --simd (CPU, default auto): kernels of our own (RAFT's correlation lookup) run their\n"
    "  x86-64-v3 (AVX2) build where the CPU has it; baseline runs the plain x86-64 build.\n";

struct LrSize {
  int64_t h = 0, w = 0;
  std::string str() const { return std::to_string(h) + "x" + std::to_string(w); }
};

struct Args {
  std::string model;
  std::vector<LrSize> sizes{{64, 64}};
  int repeats = 3;
  int threads = 0;  // 0: the backend's default (all cores)
  std::string device = "cpu";
  ComputeDtype dtype = ComputeDtype::kFloat32;
  int64_t gemm_size = 0;  // 0: 4096 on the CPU, 8192 on a GPU
  bool json = false;
  bool profile = false;
  bool cuda_graphs = true;
  bool conv_stacks = true;
  bool norm_convs = true;
  bool upsample_convs = true;
  bool wide_simd = true;
  bool linear_post_ops = true;
  bool host_block_cache = true;
  int64_t conv_band_mb = 0;  // 0: the backend's default
  int64_t conv_stack_mb = 0;  // 0: the backend's default
  std::vector<std::string> components;  // empty: all
};

[[noreturn]] void usage_error(const std::string& problem) {
  std::cerr << "sdvsr-bench: " << problem << "\n" << kUsage;
  std::exit(2);
}

int64_t parse_positive(const std::string& flag, const std::string& value) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || v <= 0) usage_error(flag + " must be a positive integer, got '" + value + "'");
  return v;
}

// A flag that takes one of two words: true for `yes`, false for `no`.
bool parse_switch(const std::string& flag, const std::string& value, const char* yes,
                  const char* no) {
  if (value != yes && value != no)
    usage_error(flag + " must be " + yes + " or " + no);
  return value == yes;
}

std::vector<LrSize> parse_sizes(const std::string& value) {
  std::vector<LrSize> sizes;
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t x = item.find('x');
    if (x == std::string::npos) usage_error("--sizes entry '" + item + "' is not HxW");
    sizes.push_back({parse_positive("--sizes height", item.substr(0, x)),
                     parse_positive("--sizes width", item.substr(x + 1))});
  }
  if (sizes.empty()) usage_error("--sizes is empty");
  return sizes;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--json" || flag == "--profile") {
      (flag == "--json" ? a.json : a.profile) = true;
      continue;
    }
    if (flag != "--model" && flag != "--sizes" && flag != "--repeats" && flag != "--threads" &&
        flag != "--sgemm-size" && flag != "--gemm-size" && flag != "--components" &&
        flag != "--device" && flag != "--dtype" && flag != "--cuda-graphs" &&
        flag != "--conv-stacks" && flag != "--norm-convs" && flag != "--upsample-convs" &&
        flag != "--linear-post-ops" &&
        flag != "--host-block-cache" && flag != "--conv-band-mb" && flag != "--conv-stack-mb" && flag != "--simd")
      usage_error("unknown argument '" + flag + "'");
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--model") a.model = value;
    if (flag == "--sizes") a.sizes = parse_sizes(value);
    if (flag == "--repeats") a.repeats = static_cast<int>(parse_positive(flag, value));
    if (flag == "--threads") a.threads = static_cast<int>(parse_positive(flag, value));
    if (flag == "--sgemm-size" || flag == "--gemm-size") a.gemm_size = parse_positive(flag, value);
    // The device itself is checked when the backend is made (run(): exit 1).
    if (flag == "--device") a.device = value;
    if (flag == "--cuda-graphs") a.cuda_graphs = parse_switch(flag, value, "on", "off");
    if (flag == "--conv-stacks") a.conv_stacks = parse_switch(flag, value, "on", "off");
    if (flag == "--conv-band-mb") a.conv_band_mb = parse_positive(flag, value);
    if (flag == "--conv-stack-mb") a.conv_stack_mb = parse_positive(flag, value);
    if (flag == "--simd") a.wide_simd = parse_switch(flag, value, "auto", "baseline");
    if (flag == "--norm-convs") a.norm_convs = parse_switch(flag, value, "on", "off");
    if (flag == "--upsample-convs") a.upsample_convs = parse_switch(flag, value, "on", "off");
    if (flag == "--linear-post-ops") a.linear_post_ops = parse_switch(flag, value, "on", "off");
    if (flag == "--host-block-cache") a.host_block_cache = parse_switch(flag, value, "on", "off");
    if (flag == "--dtype") {
      try {
        a.dtype = parse_compute_dtype(value);
      } catch (const std::exception& e) {
        usage_error(e.what());
      }
    }
    if (flag == "--components") {
      std::stringstream ss(value);
      std::string c;
      while (std::getline(ss, c, ',')) {
        if (c != "unet_step" && c != "controlnet_step" && c != "raft" &&
            c != "vae_encode_features" && c != "vae_decode" && c != "frame" &&
            c != "frame_flow_ahead" && c != "denoise_step")
          usage_error("unknown component '" + c + "'");
        a.components.push_back(c);
      }
    }
  }
  if (a.model.empty()) usage_error("--model DIR is required");
  return a;
}

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// CPU time of the whole process (all threads), ms: on a shared machine the
// wall time also measures the neighbours; this measures only our work.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// ---- peak resident memory per component ----
// Writing "5" to /proc/self/clear_refs resets the high-water mark (VmHWM) to
// the current RSS, so each component's peak is its own. Where that is not
// possible the process-wide peak (getrusage) is reported instead.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      double kib = 0;
      if (in >> kib && kib > 0) return kib / 1024.0;
    }
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// ---- the device being measured ----
// The backend, and how to wait for it and read its memory high-water mark.
struct Target {
  Backend* backend = nullptr;
  bool cuda = false;
  int cuda_index = 0;
  std::string label;  // "cpu", "cuda:N"
  std::string dtype;  // "float32", "float16", "bfloat16"

  // Queued device work finished (the CPU backend returns when done).
  void sync() const {
    if (cuda) cuda_synchronize(cuda_index);
  }
  void reset_peak_memory() const {
    if (cuda) backend->reset_peak_device_memory();
    else reset_peak_rss();
  }
  double peak_memory_mib() const {
    if (!cuda) return peak_rss_mib();
    const int64_t bytes = backend->peak_device_memory_bytes();
    return bytes > 0 ? static_cast<double>(bytes) / (1024.0 * 1024.0) : 0.0;
  }
};

// ---- the reference rate ----
// Row-major sgemm of n x n matrices through oneDNN: one warm-up, then three
// timed runs (fewer once 3 s have passed). The best run is the rate, so load
// from other processes lowers the ratios rather than inflating them.
double g_sgemm_cpu_tflops = 0;  // the same, per CPU-second of the process (table header)

double sgemm_tflops(int64_t n) {
  std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
  gaussian_fill(a.data(), static_cast<int64_t>(a.size()), 0, 1, 0);
  gaussian_fill(b.data(), static_cast<int64_t>(b.size()), 0, 1, 1);
  auto run = [&] {
    const dnnl_status_t st = dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data(), n, b.data(), n, 0.f,
                                        c.data(), n);
    if (st != dnnl_success) throw std::runtime_error("sgemm reference: dnnl_sgemm failed");
  };
  run();
  double best_ms = 0, best_cpu_ms = 0;
  const auto start = Clock::now();
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_ms();
    run();
    const double ms = elapsed_ms(t0), cpu_ms = process_cpu_ms() - c0;
    if (i == 0 || ms < best_ms) best_ms = ms;
    if (i == 0 || cpu_ms < best_cpu_ms) best_cpu_ms = cpu_ms;
    if (elapsed_ms(start) > 3000) break;
  }
  const double flops = 2.0 * static_cast<double>(n) * n * n;
  g_sgemm_cpu_tflops = flops / (std::max(best_cpu_ms, 1e-6) * 1e-3) / 1e12;
  return flops / (std::max(best_ms, 1e-6) * 1e-3) / 1e12;
}

// ---- measuring one component ----
struct Row {
  std::string component, lr, device, dtype;
  double ms = 0, tflops = 0, peak_ratio = 0, peak_mem_mb = 0, gflop = 0;
  double cpu_ms = 0;  // table only: median process CPU time
  double ref_tflops = 0;  // the reference rate peak_ratio divides by
};

void print_profile(const std::string& component, const LrSize& lr, int repeats,
                   const CountingBackend& be) {
  std::vector<std::pair<std::string, CountingBackend::OpStats>> ops(be.profile().begin(),
                                                                     be.profile().end());
  std::sort(ops.begin(), ops.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
  std::fprintf(stderr, "## %s %s (per run)\n", component.c_str(), lr.str().c_str());
  for (const auto& [op, st] : ops)
    std::fprintf(stderr, "   %-20s %10.2f ms %7.1f calls %10.3f GFLOP %8.4f TFLOP/s\n", op.c_str(),
                 st.ms / repeats, static_cast<double>(st.calls) / repeats, st.flops / 1e9 / repeats,
                 st.ms > 0 ? st.flops / (st.ms * 1e-3) / 1e12 : 0.0);
}

// One warm-up call, then `repeats` timed calls; FLOPs are those of the last call.
// On a GPU each call is followed by a device synchronisation inside the timing.
// `reference` gives the matrix-product rate, measured right before the
// component (its buffers are gone before the component's memory is watched).
Row measure(const std::string& component, const LrSize& lr, int repeats,
            const std::function<double()>& reference, const Target& target, CountingBackend& be,
            bool profile, const std::function<void()>& fn) {
  const double peak_tflops = reference();
  target.reset_peak_memory();
  fn();
  target.sync();
  be.reset();
  be.set_profiling(profile);
  std::vector<double> times, cpu_times;
  double flops = 0;
  for (int r = 0; r < repeats; ++r) {
    const double before = be.flops();
    const auto t0 = Clock::now();
    const double c0 = process_cpu_ms();
    fn();
    target.sync();
    times.push_back(elapsed_ms(t0));
    cpu_times.push_back(process_cpu_ms() - c0);
    flops = be.flops() - before;
  }
  if (profile) print_profile(component, lr, repeats, be);
  be.set_profiling(false);
  auto median_of = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  const double median = median_of(times);
  Row row;
  row.component = component;
  row.lr = lr.str();
  row.device = target.label;
  row.dtype = target.dtype;
  row.ms = std::max(median, 1e-6);  // a steady clock never gives 0 for real work; guard anyway
  row.gflop = flops / 1e9;
  row.cpu_ms = median_of(cpu_times);
  row.tflops = flops / (row.ms * 1e-3) / 1e12;
  row.ref_tflops = peak_tflops;
  row.peak_ratio = peak_tflops > 0 ? row.tflops / peak_tflops : 0;
  row.peak_mem_mb = target.peak_memory_mib();
  return row;
}

// An input image in about [-1, 1] (deterministic).
Tensor test_image(const Shape& shape, uint64_t stream) {
  Tensor t = gaussian_noise(shape, 1234, stream);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::tanh(0.5f * p[i]);
  return t;
}

std::vector<Row> bench_size(const ModelBundle& models, const Target& target, CountingBackend& be,
                            Backend* flow_side, const LrSize& lr, const Args& args,
                            const std::function<double()>& reference) {
  const int repeats = args.repeats;
  // Named in --components; wanted: named, or in the default list (no --components).
  auto named = [&](const std::string& c) {
    return std::find(args.components.begin(), args.components.end(), c) != args.components.end();
  };
  auto wanted = [&](const std::string& c) { return args.components.empty() || named(c); };
  const int f = models.vae_scale_factor;
  if (lr.h % f || lr.w % f)
    throw std::runtime_error("LR size " + lr.str() + " is not a multiple of the VAE scale factor " +
                             std::to_string(f));
  // The pipeline's step recordings (CUDA graphs), shared by its components.
  std::unique_ptr<RecordedSteps> recorded;
  if (args.cuda_graphs && be.can_record()) recorded = std::make_unique<RecordedSteps>(models, be);
  StreamSession session(models, be, StreamOptions{});
  session.set_recorded_steps(recorded.get());
  const Tensor lr_a = test_image({1, 3, lr.h, lr.w}, 1), lr_b = test_image({1, 3, lr.h, lr.w}, 2);
  const Tensor up_a = session.upscale(lr_a), up_b = session.upscale(lr_b);
  const Tensor warped = test_image(up_a.shape(), 3);
  const Tensor latents = session.initial_latents(lr_a, 0);
  const Tensor model_in = be.concat({latents, lr_a}, 1);
  const float timestep = static_cast<float>(session.timesteps().front());
  const Tensor& prompt = models.prompt_embeds;

  std::vector<Row> rows;
  auto add = [&](const std::string& name, const std::function<void()>& fn) {
    if (wanted(name)) rows.push_back(measure(name, lr, repeats, reference, target, be, args.profile, fn));
  };

  // The controlnet residuals the U-Net step gets in a later frame.
  const ControlNetResiduals residuals = models.controlnet->forward(
      model_in, timestep, prompt, warped, StreamOptions{}.conditioning_scale);
  add("unet_step", [&] { models.unet->forward(model_in, timestep, prompt, &residuals); });
  add("controlnet_step", [&] {
    models.controlnet->forward(model_in, timestep, prompt, warped,
                               StreamOptions{}.conditioning_scale);
  });
  // Alternating pairs: each call's second image is the previous call's first,
  // as in a stream, so RAFT's one-entry feature cache behaves as it does there.
  bool flip = false;
  add("raft", [&] {
    if (flip) models.raft->flow(up_a, up_b);
    else models.raft->flow(up_b, up_a);
    flip = !flip;
  });
  add("vae_encode_features", [&] { models.vae->temporal_features(warped); });
  const std::vector<Tensor> features = models.vae->temporal_features(warped);
  const Tensor z = be.scale(latents, static_cast<float>(1.0 / models.vae->scaling_factor()));
  add("vae_decode", [&] { models.vae->decode(z, &features); });
  // A later frame's step through the pipeline (recorded where the backend
  // records). By name only; run once more than measure() warms up, so the
  // recording is made before the timed calls.
  if (named("denoise_step")) {
    const Tensor embedding = models.controlnet->condition_embedding(warped);
    const int64_t t = session.timesteps().front();
    auto step = [&] { be.to_host(session.predict_noise_embedded(latents, lr_a, t, &embedding)); };
    step();
    add("denoise_step", step);
  }
  // A later frame: frame 0 first, then alternate the two LR frames.
  if (wanted("frame")) session.push(lr_a);
  bool second = true;
  add("frame", [&] {
    session.push(second ? lr_b : lr_a);
    second = !second;
  });
  // The same with the next frame's flow on a second stream (FlowAhead): the
  // per-frame time of a stream in steady state. Asked for by name only.
  const bool ahead_wanted = named("frame_flow_ahead");
  if (ahead_wanted && !flow_side)
    std::cerr << "sdvsr-bench: frame_flow_ahead needs a GPU (the CPU has no second stream)\n";
  if (ahead_wanted && flow_side) {
    FlowAhead ahead(models.raft_path, *flow_side);
    StreamSession streaming(models, be, StreamOptions{});
    streaming.set_flow_ahead(&ahead);
    streaming.set_recorded_steps(recorded.get());
    streaming.push(lr_a, nullptr, &lr_b);
    bool b_next = true;
    add("frame_flow_ahead", [&] {
      streaming.push(b_next ? lr_b : lr_a, nullptr, b_next ? &lr_a : &lr_b);
      b_next = !b_next;
    });
  }
  return rows;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// What the reference product was, in words (the table's first line, or stderr with --json).
std::string reference_line(const Target& target, int threads, int64_t gemm_size, double peak) {
  char buf[256];
  if (target.cuda)
    std::snprintf(buf, sizeof buf, "cuBLAS GEMM %lld^3 (%s operands, float32 accumulation) on %s: %.4f TFLOP/s",
                  static_cast<long long>(gemm_size), target.dtype.c_str(), target.label.c_str(), peak);
  else
    std::snprintf(buf, sizeof buf,
                  "sgemm %lld^3 (oneDNN, %d threads): %.4f TFLOP/s (%.4f per CPU-second); "
                  "measured again before each row (ref_tflops), which its peak_ratio uses",
                  static_cast<long long>(gemm_size), threads, peak, g_sgemm_cpu_tflops);
  return buf;
}

void print_table_header(const std::string& reference) {
  std::printf("# %s\n", reference.c_str());
  std::printf("%-20s %-10s %-7s %-8s %12s %10s %10s %12s %12s %12s %10s\n", "component", "lr",
              "device", "dtype", "ms", "tflops", "peak_ratio", "peak_mem_mb", "gflop", "cpu_ms",
              "ref_tflops");
}

void print_row(const Row& r, bool json) {
  if (json) {
    nlohmann::json j;
    j["component"] = r.component;
    j["lr"] = r.lr;
    j["device"] = r.device;
    j["dtype"] = r.dtype;
    j["ms"] = r.ms;
    j["tflops"] = r.tflops;
    j["peak_ratio"] = r.peak_ratio;
    j["peak_mem_mb"] = r.peak_mem_mb;
    j["ref_tflops"] = r.ref_tflops;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%-20s %-10s %-7s %-8s %12s %10s %10s %12s %12s %12s %10s\n", r.component.c_str(),
                r.lr.c_str(), r.device.c_str(), r.dtype.c_str(), fixed(r.ms, 3).c_str(), fixed(r.tflops, 4).c_str(),
                fixed(r.peak_ratio, 3).c_str(), fixed(r.peak_mem_mb, 1).c_str(),
                fixed(r.gflop, 3).c_str(), fixed(r.cpu_ms, 1).c_str(), fixed(r.ref_tflops, 4).c_str());
  }
  std::fflush(stdout);
}

int run(const Args& args) {
  // First of all: a device this machine lacks (or the CPU asked for a 16-bit
  // dtype) fails here in one line, before any model is read.
  Backend& device_backend = backend_for_device(args.device, args.dtype);
  Target target;
  target.backend = &device_backend;
  target.cuda = device_backend.device() == Device::kCuda;
  target.label = device_backend.name();
  target.dtype = compute_dtype_name(device_backend.compute_dtype());
  if (target.cuda) {
    const size_t colon = target.label.find(':');
    target.cuda_index = colon == std::string::npos ? 0 : std::stoi(target.label.substr(colon + 1));
  }
  Backend& cpu = cpu_backend();
  if (args.threads > 0) cpu.set_threads(args.threads);
  if (args.conv_stack_mb > 0) set_conv_stack_bytes(static_cast<size_t>(args.conv_stack_mb) << 20);
  if (!args.conv_stacks) set_conv_stack_bytes(0);
  if (!args.norm_convs) set_normed_convs_direct(false);
  if (!args.upsample_convs) set_upsampled_convs_direct(false);
  if (!args.linear_post_ops) set_linear_post_ops(false);
  if (!args.host_block_cache) host_blocks::set_cache_enabled(false);
  if (!args.wide_simd) cpu::set_wide_simd(false);
  if (args.conv_band_mb > 0) set_conv_band_bytes(static_cast<size_t>(args.conv_band_mb) << 20);
  const int64_t gemm_size = args.gemm_size > 0 ? args.gemm_size : (target.cuda ? 8192 : 4096);
  // On a GPU the reference product runs first, on an otherwise empty device.
  // Should it fail, the components are still measured (peak_ratio 0) and the
  // reason is said on stderr.
  double peak = 0;
  std::string reference_failure;
  if (target.cuda) {
    try {
      peak = cuda_gemm_tflops(target.cuda_index, args.dtype, gemm_size);
    } catch (const std::exception& e) {
      reference_failure = e.what();
      std::cerr << "sdvsr-bench: the reference GEMM failed (peak_ratio will be 0): " << e.what() << "\n";
    }
  }

  CountingBackend be(device_backend);
  ModelPaths paths;
  paths.model_dir = args.model;
  const auto models = load_model_bundle(paths, be);
  if (!models->controlnet) throw std::runtime_error(args.model + ": the benchmark needs a controlnet");
  if (!target.cuda) peak = sgemm_tflops(gemm_size);
  const std::string described = reference_failure.empty()
                                    ? reference_line(target, cpu.threads(), gemm_size, peak)
                                    : "reference GEMM failed: " + reference_failure;
  if (args.json) std::cerr << "sdvsr-bench: " << described << "\n";
  else print_table_header(described);

  // The CPU's rate is measured again before each component (the first
  // measurement, above, heads the table); the GPU's once, on the empty device.
  const std::function<double()> reference = [&] {
    return target.cuda ? peak : sgemm_tflops(gemm_size);
  };
  for (const LrSize& lr : args.sizes)
    for (const Row& r :
         bench_size(*models, target, be, flow_ahead_backend(device_backend), lr, args, reference))
      print_row(r, args.json);
  return 0;
}

}  // namespace
}  // namespace sdvsr::bench

int main(int argc, char** argv) {
  const sdvsr::bench::Args args = sdvsr::bench::parse_args(argc, argv);
  try {
    return sdvsr::bench::run(args);
  } catch (const std::exception& e) {
    std::cerr << "sdvsr-bench: " << e.what() << "\n";
    return 1;
  }
}
