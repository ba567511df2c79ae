// Normalisation layers with PyTorch's semantics: biased variance, statistics
// accumulated in double (two passes) so they match torch to about 1e-7.
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_blocked_rows.h"
#include "runtime/cpu/cpu_dnnl.h"

namespace sdvsr {
namespace {

struct Moments {
  double mean = 0, var = 0;
};

// Sums in kLanes independent running sums (element i into lane i % kLanes),
// added up in a fixed order at the end: one running sum makes every addition
// wait for the one before (a group of a U-Net's top level, 460k values, took
// as long as normalising it); the lanes also let the compiler use vectors.
constexpr int64_t kLanes = 8;

template <class Term>
double lane_sum(const float* p, int64_t n, Term term) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) lane[k] += term(p[i + k]);
  for (int64_t k = 0; i < n; ++i, ++k) lane[k] += term(p[i]);
  double sum = 0;
  for (int64_t k = 0; k < kLanes; ++k) sum += lane[k];
  return sum;
}

Moments moments(const float* p, int64_t n) {
  Moments m;
  if (n == 0) return m;
  m.mean = lane_sum(p, n, [](float v) { return static_cast<double>(v); }) / static_cast<double>(n);
  const double mean = m.mean;
  m.var = lane_sum(p, n,
                   [mean](float v) {
                     const double dv = v - mean;
                     return dv * dv;
                   }) /
          static_cast<double>(n);
  return m;
}

float inv_std(double var, float eps) {
  return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
}

void check_channel_vector(const Tensor* t, int64_t c, const char* op, const char* what) {
  cpu::check(!t || (t->dim() == 1 && t->size(0) == c), op,
             std::string(what) + " must have shape [" + std::to_string(c) + "], got " +
                 (t ? shape_str(t->shape()) : std::string("?")));
}

// One group's mean and 1 / std (float, as group_norm applies them).
struct GroupStats {
  float mean, rstd;
};
GroupStats group_stats(const float* group, int64_t count, float eps) {
  const Moments m = moments(group, count);
  return GroupStats{static_cast<float>(m.mean), inv_std(m.var, eps)};
}

// PyTorch folds the affine into one scale and shift per channel:
// group_norm(x)[ch] = x[ch] * a + b.
void channel_affine(const GroupStats& st, const Tensor* gamma, const Tensor* beta, int64_t ch,
                    float& a, float& b) {
  a = st.rstd * (gamma ? gamma->data()[ch] : 1.f);
  b = -a * st.mean + (beta ? beta->data()[ch] : 0.f);
}

void check_group_norm(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                      const char* op) {
  cpu::check(x.dim() >= 2 && groups > 0 && x.size(1) % groups == 0, op,
             "x " + shape_str(x.shape()) + " cannot be split into " + std::to_string(groups) +
                 " groups");
  check_channel_vector(gamma, x.size(1), op, "gamma");
  check_channel_vector(beta, x.size(1), op, "beta");
}

}  // namespace

namespace {

// Elements normalised before the activation runs over them: a few tens of KiB,
// so group_norm_act activates values still in L1/L2 instead of re-reading them.
constexpr int64_t kActivationChunk = 8192;

// group_norm, then (unless kNone) activation `act` over each group's output in
// chunks of about kActivationChunk elements while they are in cache.
Tensor group_norm_impl(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                       float eps, Activation act) {
  check_group_norm(x, groups, gamma, beta, "group_norm");
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t spatial = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t cg = c / groups;
  Tensor out = Tensor::uninitialized(x.shape());
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel for schedule(dynamic)
  for (int64_t ng = 0; ng < n * groups; ++ng) {
    const int64_t base = ng * cg * spatial;
    const GroupStats st = group_stats(xs + base, cg * spatial, eps);
    int64_t pending = 0;  // channels of this group normalised but not yet activated
    for (int64_t ci = 0; ci < cg; ++ci) {
      const int64_t ch = (ng % groups) * cg + ci;
      float a, b;
      channel_affine(st, gamma, beta, ch, a, b);
      const float* src = xs + base + ci * spatial;
      float* dst = os + base + ci * spatial;
      for (int64_t i = 0; i < spatial; ++i) dst[i] = src[i] * a + b;
      ++pending;
      if (act != Activation::kNone && (pending * spatial >= kActivationChunk || ci + 1 == cg)) {
        cpu::activation_span(act, dst + spatial - pending * spatial, pending * spatial);
        pending = 0;
      }
    }
  }
  return out;
}

}  // namespace

Tensor CpuBackend::group_norm(const Tensor& x, int groups, const Tensor* gamma,
                              const Tensor* beta, float eps) {
  return group_norm_impl(x, groups, gamma, beta, eps, Activation::kNone);
}

Tensor CpuBackend::group_norm_act(const Tensor& x, int groups, const Tensor* gamma,
                                  const Tensor* beta, float eps, Activation a) {
  // The activation runs on each chunk through the very code activation() runs
  // on the whole tensor (cpu::activation_span), so the bits are the same.
  cpu::check(cpu::activation_span_knows(a), "group_norm_act", "unknown activation");
  return group_norm_impl(x, groups, gamma, beta, eps, a);
}

namespace cpu {

GroupNormAffine group_norm_affine(const Tensor& x, int groups, const Tensor* gamma,
                                  const Tensor* beta, float eps, const char* op) {
  check_group_norm(x, groups, gamma, beta, op);
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t spatial = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t cg = c / groups;
  GroupNormAffine affine;
  affine.scale.resize(static_cast<size_t>(n * c));
  affine.shift.resize(static_cast<size_t>(n * c));
  const float* xs = x.data();
#pragma omp parallel for schedule(dynamic)
  for (int64_t ng = 0; ng < n * groups; ++ng) {
    // The same statistics as group_norm_impl.
    const GroupStats st = group_stats(xs + ng * cg * spatial, cg * spatial, eps);
    for (int64_t ci = 0; ci < cg; ++ci) {
      const int64_t ch = (ng % groups) * cg + ci;
      const size_t at = static_cast<size_t>((ng / groups) * c + ch);
      channel_affine(st, gamma, beta, ch, affine.scale[at], affine.shift[at]);
    }
  }
  return affine;
}

void group_norm_act_rows(const Tensor& x, const GroupNormAffine& affine, Activation act,
                         int64_t row, int64_t rows, int64_t block, float* dst) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  check(block >= 1 && c % block == 0 && row >= 0 && rows >= 0 && row + rows <= h,
        "group_norm_act_conv2d", "bad rows or channel block for x " + shape_str(x.shape()));
  // Each tile is normalised, then activated while still in cache.
  const float* xs = x.data();
  write_channel_blocks(
      n, c, rows * w, block, dst,
      [&](int64_t image, int64_t ch, int64_t i0, int64_t i1, float* out, int64_t stride) {
        const size_t at = static_cast<size_t>(image * c + ch);
        const float a = affine.scale[at], b = affine.shift[at];
        const float* src = xs + ((image * c + ch) * h + row) * w;
        for (int64_t i = i0; i < i1; ++i) out[(i - i0) * stride] = src[i] * a + b;
      },
      [act](float* tile, int64_t count) {
        if (act != Activation::kNone) activation_span(act, tile, count);
      });
}

}  // namespace cpu

Tensor CpuBackend::layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                              float eps) {
  cpu::check(x.dim() >= 1, "layer_norm", "x must have at least one dimension");
  const int64_t width = x.size(-1);
  const int64_t rows = width ? x.numel() / width : 0;
  check_channel_vector(gamma, width, "layer_norm", "gamma");
  check_channel_vector(beta, width, "layer_norm", "beta");
  Tensor out = Tensor::uninitialized(x.shape());
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = xs + r * width;
    float* dst = os + r * width;
    const Moments m = moments(src, width);
    const float rstd = inv_std(m.var, eps);
    const float shift = -rstd * static_cast<float>(m.mean);
    for (int64_t j = 0; j < width; ++j) {
      float y = src[j] * rstd + shift;
      if (gamma) y *= gamma->data()[j];
      if (beta) y += beta->data()[j];
      dst[j] = y;
    }
  }
  return out;
}

Tensor CpuBackend::batch_norm(const Tensor& x, const Tensor& running_mean,
                              const Tensor& running_var, const Tensor* gamma, const Tensor* beta,
                              float eps) {
  cpu::check(x.dim() >= 2, "batch_norm", "x " + shape_str(x.shape()) + " must be [N, C, ...]");
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t spatial = x.numel() / std::max<int64_t>(n * c, 1);
  check_channel_vector(&running_mean, c, "batch_norm", "running_mean");
  check_channel_vector(&running_var, c, "batch_norm", "running_var");
  check_channel_vector(gamma, c, "batch_norm", "gamma");
  check_channel_vector(beta, c, "batch_norm", "beta");
  Tensor out = Tensor::uninitialized(x.shape());
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < n * c; ++nc) {
    const int64_t ch = nc % c;
    // PyTorch's inference transform: y = x * alpha + (beta - mean * alpha).
    const float invstd = 1.f / std::sqrt(running_var.data()[ch] + eps);
    const float alpha = (gamma ? gamma->data()[ch] : 1.f) * invstd;
    const float shift = (beta ? beta->data()[ch] : 0.f) - running_mean.data()[ch] * alpha;
    const float* src = xs + nc * spatial;
    float* dst = os + nc * spatial;
    for (int64_t i = 0; i < spatial; ++i) dst[i] = src[i] * alpha + shift;
  }
  return out;
}

Tensor CpuBackend::instance_norm(const Tensor& x, float eps) {
  cpu::check(x.dim() >= 3, "instance_norm",
             "x " + shape_str(x.shape()) + " must be [N, C, H, W] or [N, C, L]");
  const int64_t nc_count = x.size(0) * x.size(1);
  const int64_t spatial = x.numel() / std::max<int64_t>(nc_count, 1);
  Tensor out = Tensor::uninitialized(x.shape());
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < nc_count; ++nc) {
    const float* src = xs + nc * spatial;
    float* dst = os + nc * spatial;
    const Moments m = moments(src, spatial);
    const float invstd = inv_std(m.var, eps);
    const float mean = static_cast<float>(m.mean);
    for (int64_t i = 0; i < spatial; ++i) dst[i] = (src[i] - mean) * invstd;
  }
  return out;
}

Tensor CpuBackend::softmax(const Tensor& x) {
  cpu::check(x.dim() >= 1, "softmax", "x must have at least one dimension");
  const int64_t width = x.size(-1);
  const int64_t rows = width ? x.numel() / width : 0;
  Tensor out = Tensor::uninitialized(x.shape());
  const float* xs = x.data();
  float* os = out.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = xs + r * width;
    float* dst = os + r * width;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < width; ++j) mx = std::max(mx, src[j]);
    float sum = 0.f;
    for (int64_t j = 0; j < width; ++j) {
      dst[j] = std::exp(src[j] - mx);
      sum += dst[j];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < width; ++j) dst[j] *= inv;
  }
  return out;
}

Tensor CpuBackend::group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) {
  const char* op = "group_norm_act_tokens";
  cpu::check(x.dim() == 4, op, "x " + shape_str(x.shape()) + " must be [N, C, H, W]");
  cpu::check(cpu::activation_span_knows(norm.act), op, "unknown activation");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const cpu::GroupNormAffine affine =
      cpu::group_norm_affine(x, norm.groups, norm.gamma, norm.beta, norm.eps, op);
  // Tokens [N, H*W, C] are the channels-last layout: one block of all channels.
  Tensor out = Tensor::uninitialized({n, h * w, c});
  if (out.numel() > 0) cpu::group_norm_act_rows(x, affine, norm.act, 0, h, c, out.data());
  return out;
}

}  // namespace sdvsr
