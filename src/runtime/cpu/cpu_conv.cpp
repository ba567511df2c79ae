// conv2d through oneDNN. Primitive descriptors are cached per shape; inputs
// and outputs are reordered between PyTorch's plain layouts and whatever
// blocked layout oneDNN picks for speed. Weights are reordered once: the
// blocked copy is cached per weight storage (see reordered_weights).
#include <dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <atomic>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_dnnl.h"
#include "runtime/file_backed_memory.h"

namespace sdvsr {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() { return cpu::dnnl_engine(); }

// Everything that determines the primitive.
using ConvKey = std::tuple<int64_t, int64_t, int64_t, int64_t,  // N C H W
                           int64_t, int64_t, int64_t,            // O kh kw
                           int, int, int, int, int, int, int, bool>;

struct ConvEntry {
  dnnl::memory::desc user_src, user_weights, user_bias, user_dst;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
};

std::mutex g_conv_mutex;
std::map<ConvKey, std::shared_ptr<const ConvEntry>> g_conv_cache;

std::shared_ptr<const ConvEntry> make_entry(int64_t n, int64_t c, int64_t h, int64_t w,
                                            int64_t o, int64_t kh, int64_t kw, int64_t ho,
                                            int64_t wo, const Conv2dParams& p, bool has_bias) {
  auto e = std::make_shared<ConvEntry>();
  e->user_src = dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nchw);
  if (p.groups == 1) {
    e->user_weights = dnnl::memory::desc({o, c, kh, kw}, dt::f32, tag::oihw);
  } else {
    e->user_weights = dnnl::memory::desc({p.groups, o / p.groups, c / p.groups, kh, kw},
                                         dt::f32, tag::goihw);
  }
  e->user_bias = dnnl::memory::desc({o}, dt::f32, tag::x);
  e->user_dst = dnnl::memory::desc({n, o, ho, wo}, dt::f32, tag::nchw);

  dnnl::memory::desc any_src({n, c, h, w}, dt::f32, tag::any);
  dnnl::memory::desc any_dst({n, o, ho, wo}, dt::f32, tag::any);
  dnnl::memory::desc any_weights(e->user_weights.dims(), dt::f32, tag::any);
  // oneDNN counts dilation from 0; the right padding makes its integer-division
  // output size agree with PyTorch's floor.
  dnnl::memory::dims strides = {p.stride_h, p.stride_w};
  dnnl::memory::dims dilates = {p.dilation_h - 1, p.dilation_w - 1};
  dnnl::memory::dims pad_l = {p.pad_h, p.pad_w};
  dnnl::memory::dims pad_r = {p.pad_h, p.pad_w};
  auto desc = has_bias
                  ? dnnl::convolution_forward::desc(
                        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                        any_src, any_weights, e->user_bias, any_dst, strides, dilates, pad_l,
                        pad_r)
                  : dnnl::convolution_forward::desc(
                        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                        any_src, any_weights, any_dst, strides, dilates, pad_l, pad_r);
  e->pd = dnnl::convolution_forward::primitive_desc(desc, cpu_engine());
  e->prim = dnnl::convolution_forward(e->pd);
  return e;
}

// Wraps `user` memory, reordered into `wanted` when the layouts differ.
dnnl::memory as_layout(const dnnl::memory& user, const dnnl::memory::desc& wanted,
                       dnnl::stream& s) {
  if (user.get_desc() == wanted) return user;
  dnnl::memory m(wanted, cpu_engine());
  dnnl::reorder(user, m).execute(s, const_cast<dnnl::memory&>(user), m);
  return m;
}

// ---- reordered weights, cached per weight storage ----
// Model weights are read-only and live as long as the model, so their blocked
// copies are made once. An entry is found by the weight's data pointer and
// checked against the storage's owner (a weak_ptr: once the storage is freed
// the entry is dead and is dropped, and a new tensor at the same address never
// matches it). Contract: a tensor used as conv2d weights is not written in
// place afterwards (the backend never does; the models load weights once).
struct CachedWeights {
  std::weak_ptr<const void> owner;
  dnnl::memory::desc layout;
  dnnl::memory blocked;
  size_t bytes = 0;  // counted against the budget (0 for file-backed weights)
};

std::mutex g_weights_mutex;
std::unordered_map<const void*, std::vector<CachedWeights>> g_weights_cache;
size_t g_weights_cache_bytes = 0;

// Weights read from a file mapping are always cached: once the blocked copy
// exists the mapped pages are dropped (re-read from the file if ever needed),
// so each weight stays resident once and the copy costs no extra memory.
// Weights in ordinary memory (converted from float16, read from a .pth) cannot
// be dropped: their copies are kept only within this budget
// (SDVSR_CONV_WEIGHT_CACHE_MB, default 0: reordered on every call).
std::atomic<long long> g_weights_cache_mb{-1};  // -1: not read from the environment yet

size_t weights_cache_budget() {
  long long mb = g_weights_cache_mb.load();
  if (mb < 0) {
    mb = 0;
    const char* env = std::getenv("SDVSR_CONV_WEIGHT_CACHE_MB");
    if (env && *env) {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      if (end && *end == '\0' && v >= 0) mb = v;
    }
    long long unset = -1;
    g_weights_cache_mb.compare_exchange_strong(unset, mb);
    mb = g_weights_cache_mb.load();
  }
  return static_cast<size_t>(mb) << 20;
}

bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b) {
  return !a.owner_before(b) && !b.owner_before(a);
}

// Frees the blocked copies of weights that no longer exist, including any
// whose address a new tensor now has (caller holds the lock).
void drop_dead_weights() {
  for (auto it = g_weights_cache.begin(); it != g_weights_cache.end();) {
    auto& entries = it->second;
    for (size_t i = 0; i < entries.size();) {
      if (entries[i].owner.expired()) {
        g_weights_cache_bytes -= entries[i].bytes;
        entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    it = entries.empty() ? g_weights_cache.erase(it) : std::next(it);
  }
}

dnnl::memory reordered_weights(const Tensor& weight, const dnnl::memory& user,
                               const dnnl::memory::desc& wanted, dnnl::stream& s) {
  if (user.get_desc() == wanted) return user;
  const std::shared_ptr<const void> owner = weight.storage_owner().lock();
  const void* key = weight.storage_ptr();
  if (owner) {
    std::lock_guard<std::mutex> lock(g_weights_mutex);
    auto it = g_weights_cache.find(key);
    if (it != g_weights_cache.end())
      for (const CachedWeights& c : it->second)
        if (c.layout == wanted && same_owner(c.owner, owner)) return c.blocked;
  }
  dnnl::memory blocked(wanted, cpu_engine());
  dnnl::reorder(user, blocked).execute(s, const_cast<dnnl::memory&>(user), blocked);
  if (!owner) return blocked;
  const size_t bytes = wanted.get_size();
  const size_t source_bytes = static_cast<size_t>(weight.numel()) * sizeof(float);
  std::lock_guard<std::mutex> lock(g_weights_mutex);
  drop_dead_weights();  // inserts are rare (once per weight), so sweep each time
  if (drop_file_backed_pages(key, source_bytes)) {
    g_weights_cache[key].push_back(CachedWeights{owner, wanted, blocked, 0});
    return blocked;
  }
  if (g_weights_cache_bytes + bytes > weights_cache_budget()) return blocked;
  g_weights_cache[key].push_back(CachedWeights{owner, wanted, blocked, bytes});
  g_weights_cache_bytes += bytes;
  return blocked;
}

// The channel block of oneDNN's nChw8c / nChw16c layouts when `d` is one of
// them for an [n, c, h, w] tensor; 0 for any other layout.
int64_t channel_block(const dnnl::memory::desc& d, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nChw8c)) return 8;
  if (d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nChw16c)) return 16;
  return 0;
}

// out[i, ch, p] = residual[i, ch, p] + src(i, ch, p) over [n, c, hw], where src
// is channel-blocked by kBlock (nChw<kBlock>c, channels padded to the block) or,
// for kBlock 1, plain NCHW (then src may be out itself). Positions go in tiles
// so a tile of the blocked source stays in L1 while its channels are written.
template <int64_t kBlock>
void add_unblocking(const float* src, const float* residual, float* out, int64_t n, int64_t c,
                    int64_t hw) {
  constexpr int64_t kTile = 256;
  const int64_t blocks = (c + kBlock - 1) / kBlock;
  const int64_t tiles = (hw + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t nb = 0; nb < n * blocks; ++nb) {
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t image = nb / blocks, c0 = (nb % blocks) * kBlock;
      const int64_t i0 = t * kTile, i1 = std::min(hw, i0 + kTile);
      const int64_t count = std::min(kBlock, c - c0);
      const float* block_src = src + nb * hw * kBlock;
      for (int64_t k = 0; k < count; ++k) {
        const int64_t plane = (image * c + c0 + k) * hw;
        const float* r = residual + plane;
        float* d = out + plane;
        for (int64_t i = i0; i < i1; ++i) d[i] = r[i] + block_src[i * kBlock + k];
      }
    }
  }
}

// conv2d, plus `residual` (same shape as the output) when given: the sum is
// formed while the output is moved out of oneDNN's layout (or in place when
// oneDNN writes the plain layout itself), one float addition per element
// exactly as add(residual, conv2d(...)) does, so the bits are the same.
// (oneDNN's sum post-op is not used: it adds the residual into the accumulator
// before the products, which rounds differently.)
Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor* bias,
                   const Conv2dParams& p, const Tensor* residual, const char* op) {
  cpu::check(x.dim() == 4 && weight.dim() == 4, op,
             "x " + shape_str(x.shape()) + " and weight " + shape_str(weight.shape()) +
                 " must be 4-D");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t o = weight.size(0), kh = weight.size(2), kw = weight.size(3);
  cpu::check(p.groups >= 1 && c % p.groups == 0 && o % p.groups == 0 &&
                 weight.size(1) == c / p.groups,
             op,
             "weight " + shape_str(weight.shape()) + " does not fit x " + shape_str(x.shape()) +
                 " with groups " + std::to_string(p.groups));
  cpu::check(!bias || (bias->dim() == 1 && bias->size(0) == o), op,
             "bias shape does not match weight " + shape_str(weight.shape()));
  const int64_t ho = (h + 2 * p.pad_h - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
  const int64_t wo = (w + 2 * p.pad_w - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
  cpu::check(ho > 0 && wo > 0, op, "empty output for input " + shape_str(x.shape()));
  cpu::check(!residual || residual->shape() == Shape{n, o, ho, wo}, op,
             "residual " + (residual ? shape_str(residual->shape()) : std::string()) +
                 " does not match the output " + shape_str(Shape{n, o, ho, wo}));

  ConvKey key{n, c, h, w, o, kh, kw, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
              p.dilation_h, p.dilation_w, p.groups, bias != nullptr};
  std::shared_ptr<const ConvEntry> e;
  {
    std::lock_guard<std::mutex> lock(g_conv_mutex);
    auto it = g_conv_cache.find(key);
    if (it == g_conv_cache.end())
      it = g_conv_cache.emplace(key, make_entry(n, c, h, w, o, kh, kw, ho, wo, p, bias)).first;
    e = it->second;
  }

  Tensor out = Tensor::uninitialized({n, o, ho, wo});
  dnnl::stream s(cpu_engine());
  dnnl::memory user_dst(e->user_dst, cpu_engine(), out.data());
  const bool direct_dst = e->pd.dst_desc() == e->user_dst;
  dnnl::memory dst = direct_dst ? user_dst : dnnl::memory(e->pd.dst_desc(), cpu_engine());
  {
    dnnl::memory user_src(e->user_src, cpu_engine(), const_cast<float*>(x.data()));
    dnnl::memory user_w(e->user_weights, cpu_engine(), const_cast<float*>(weight.data()));
    dnnl::memory src = as_layout(user_src, e->pd.src_desc(), s);
    dnnl::memory wts = reordered_weights(weight, user_w, e->pd.weights_desc(), s);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_DST, dst}};
    if (bias)
      args.emplace(DNNL_ARG_BIAS,
                   dnnl::memory(e->user_bias, cpu_engine(), const_cast<float*>(bias->data())));
    e->prim.execute(s, args);
    s.wait();
  }
  // The blocked copy of the input is gone before the plain output's pages are
  // written: at a 1440p frame's full-resolution layers each is about 1 GB.
  const int64_t block = residual && !direct_dst ? channel_block(e->pd.dst_desc(), n, o, ho, wo) : 0;
  if (!direct_dst && block == 0) dnnl::reorder(dst, user_dst).execute(s, dst, user_dst);
  s.wait();
  if (residual) {
    const float* blocked = block ? static_cast<const float*>(dst.get_data_handle()) : out.data();
    if (block == 8) {
      add_unblocking<8>(blocked, residual->data(), out.data(), n, o, ho * wo);
    } else if (block == 16) {
      add_unblocking<16>(blocked, residual->data(), out.data(), n, o, ho * wo);
    } else {
      add_unblocking<1>(blocked, residual->data(), out.data(), n, o, ho * wo);
    }
  }
  return out;
}

}  // namespace

Tensor CpuBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                          const Conv2dParams& p) {
  return conv2d_impl(x, weight, bias, p, nullptr, "conv2d");
}

Tensor CpuBackend::conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                              const Conv2dParams& p, const Tensor& residual) {
  return conv2d_impl(x, weight, bias, p, &residual, "conv2d_add");
}

void set_conv_weight_cache_mb(long long mb) { g_weights_cache_mb.store(mb < 0 ? 0 : mb); }

}  // namespace sdvsr
