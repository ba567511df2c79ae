// conv2d through oneDNN. Primitive descriptors are cached per shape; inputs
// and outputs are reordered between PyTorch's plain layouts and whatever
// blocked layout oneDNN picks for speed, in bands of output rows when large
// (see conv_bands). Weights are reordered once: the blocked copy is cached per
// weight storage (see reordered_weights).
#include <dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cpu/cpu_dnnl.h"
#include "runtime/file_backed_memory.h"
#include "runtime/host_blocks.h"

namespace sdvsr {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() { return cpu::dnnl_engine(); }

// Everything that determines the primitive: the (band's) input shape, the
// kernel, strides, the top/bottom/side padding, dilation, groups and bias.
using ConvKey = std::tuple<int64_t, int64_t, int64_t, int64_t,  // N C H W
                           int64_t, int64_t, int64_t,            // O kh kw
                           int, int, int64_t, int64_t, int,      // stride h/w, pad top/bottom/side
                           int, int, int, bool>;                 // dilation h/w, groups, bias

struct ConvEntry {
  dnnl::memory::desc user_weights, user_bias;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
};

std::mutex g_conv_mutex;
std::map<ConvKey, std::shared_ptr<const ConvEntry>> g_conv_cache;

std::shared_ptr<const ConvEntry> make_entry(int64_t n, int64_t c, int64_t h, int64_t w,
                                            int64_t o, int64_t kh, int64_t kw, int64_t ho,
                                            int64_t wo, const Conv2dParams& p, int64_t pad_top,
                                            int64_t pad_bottom, bool has_bias) {
  auto e = std::make_shared<ConvEntry>();
  if (p.groups == 1) {
    e->user_weights = dnnl::memory::desc({o, c, kh, kw}, dt::f32, tag::oihw);
  } else {
    e->user_weights = dnnl::memory::desc({p.groups, o / p.groups, c / p.groups, kh, kw},
                                         dt::f32, tag::goihw);
  }
  e->user_bias = dnnl::memory::desc({o}, dt::f32, tag::x);

  dnnl::memory::desc any_src({n, c, h, w}, dt::f32, tag::any);
  dnnl::memory::desc any_dst({n, o, ho, wo}, dt::f32, tag::any);
  dnnl::memory::desc any_weights(e->user_weights.dims(), dt::f32, tag::any);
  // oneDNN counts dilation from 0; the right padding makes its integer-division
  // output size agree with PyTorch's floor.
  dnnl::memory::dims strides = {p.stride_h, p.stride_w};
  dnnl::memory::dims dilates = {p.dilation_h - 1, p.dilation_w - 1};
  dnnl::memory::dims pad_l = {pad_top, p.pad_w};
  dnnl::memory::dims pad_r = {pad_bottom, p.pad_w};
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

// oneDNN memory and, when the buffer is ours, what keeps it alive (null over
// a tensor's storage). Blocked copies take their buffers from host_blocks, so
// a large one reuses the pages of the last band or layer (see host_blocks.h).
struct OwnedMemory {
  dnnl::memory mem;
  std::shared_ptr<void> storage;
};

OwnedMemory new_memory(const dnnl::memory::desc& d) {
  OwnedMemory m;
  m.storage = host_blocks::allocate(d.get_size());
  m.mem = dnnl::memory(d, cpu_engine(), m.storage.get());
  return m;
}

// `user` as it is when it has the layout `wanted`, else reordered into it.
OwnedMemory as_layout(OwnedMemory user, const dnnl::memory::desc& wanted, dnnl::stream& s) {
  if (user.mem.get_desc() == wanted) return user;
  OwnedMemory m = new_memory(wanted);
  dnnl::reorder(user.mem, m.mem).execute(s, user.mem, m.mem);
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
// them for an [n, c, h, w] tensor; c for the channels-last layout (nhwc, which
// is nChw<c>c: one block of all channels; oneDNN's AVX-512 convolutions pick
// it); 0 for any other layout. (One channel is never reported as a block of 1:
// callers take block 1 for "plain, already in the output".)
int64_t channel_block(const dnnl::memory::desc& d, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nChw8c)) return 8;
  if (d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nChw16c)) return 16;
  if (c > 1 && d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nhwc)) return c;
  return 0;
}

// channel_block when the c channels fill whole blocks (no padded channels for
// our own writes or activations to touch); 0 otherwise.
int64_t whole_channel_block(const dnnl::memory::desc& d, int64_t n, int64_t c, int64_t h,
                            int64_t w) {
  const int64_t block = channel_block(d, n, c, h, w);
  return block != 0 && c % block == 0 ? block : 0;
}

// What add_unblocking adds to each source value: the residual's value at the
// same place (planes `plane_stride` apart, like the output's), or one value per
// image and channel (a ResNet's time embedding, [n, c]).
struct ResidualAddend {
  const float* residual;
  int64_t plane_stride;
  float at(int64_t image_channel, int64_t i) const {
    return residual[image_channel * plane_stride + i];
  }
};
struct ChannelAddend {
  const float* values;
  float at(int64_t image_channel, int64_t) const { return values[image_channel]; }
};
// A band of rows [n, c, hw] in oneDNN's channel blocks of `block` (1: plain,
// c: channels last; channels padded to the block), e.g. a shortcut's output.
struct BlockedAddend {
  const float* band;
  int64_t c, hw, block;
  float at(int64_t image_channel, int64_t i) const {
    const int64_t image = image_channel / c, ch = image_channel % c;
    const int64_t blocks = (c + block - 1) / block;
    return band[((image * blocks + ch / block) * hw + i) * block + ch % block];
  }
};

// out[i, ch, p] = addend(i, ch, p) + src(i, ch, p) over [n, c, hw], where src
// is channel-blocked by kBlock (nChw<kBlock>c over exactly hw positions,
// channels padded to the block; kBlock 0: by `any_block`, channels last when
// that is c) or, for kBlock 1, plain with planes `plane_stride` apart like out
// (then src may be out itself). One float addition per element, as add and
// add_channel_bias make it. Positions go in tiles so a tile of the blocked
// source stays in cache while its channels are written.
template <int64_t kBlock, class Addend>
void add_unblocking(const float* src, const Addend& addend, float* out, int64_t n, int64_t c,
                    int64_t hw, int64_t plane_stride, int64_t any_block = 0) {
  const int64_t block = kBlock > 0 ? kBlock : any_block;
  const int64_t tile = block <= 16 ? 256 : std::max<int64_t>(16, 16384 / block);
  const int64_t blocks = (c + block - 1) / block;
  const int64_t tiles = (hw + tile - 1) / tile;
  const int64_t src_block_stride = block == 1 ? plane_stride : hw * block;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t nb = 0; nb < n * blocks; ++nb) {
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t image = nb / blocks, c0 = (nb % blocks) * block;
      const int64_t i0 = t * tile, i1 = std::min(hw, i0 + tile);
      const int64_t count = std::min(block, c - c0);
      const float* block_src = src + nb * src_block_stride;
      for (int64_t k = 0; k < count; ++k) {
        const int64_t ic = image * c + c0 + k;
        float* d = out + ic * plane_stride;
        for (int64_t i = i0; i < i1; ++i) d[i] = addend.at(ic, i) + block_src[i * block + k];
      }
    }
  }
}

// ---- bands of output rows ----
// oneDNN computes in its own blocked layout, so a convolution holds a blocked
// copy of its input and of its output besides the plain tensors. At a 1440p
// frame's full-resolution layers each copy is about 1 GB, so large
// convolutions run in bands of output rows: each band reorders only the input
// rows it reads (its halo included) and writes its rows straight into the
// plain output. Inside the image a band has real rows where the whole
// convolution has them, so every output value is the same sum of the same
// products (tests/cpu_conv_band_test.cpp compares the bits).
std::atomic<size_t> g_band_bytes{size_t{64} << 20};
std::atomic<long long> g_bands_run{0};

struct ConvBand {
  int64_t out_row = 0, out_rows = 0;  // the output rows [out_row, out_row + out_rows)
  int64_t in_row = 0, in_rows = 0;    // the input rows read, clipped to the image
  int64_t pad_top = 0, pad_bottom = 0;
};

// The band that computes output rows [y, y + rows) of a convolution of an
// h-row input (ho output rows): the input rows it reads, clipped to the image,
// and the zero rows padding them where the image ends.
ConvBand band_of_rows(int64_t y, int64_t rows, int64_t h, int64_t ho, int64_t kh,
                      const Conv2dParams& p) {
  ConvBand b;
  b.out_row = y;
  b.out_rows = rows;
  if (rows == ho) {  // the whole convolution, as PyTorch pads it
    b.in_row = 0;
    b.in_rows = h;
    b.pad_top = b.pad_bottom = p.pad_h;
    return b;
  }
  const int64_t span = p.dilation_h * (kh - 1) + 1;  // input rows under one output row
  const int64_t first = y * p.stride_h - p.pad_h;
  const int64_t last = (y + rows - 1) * p.stride_h - p.pad_h + span;  // exclusive
  b.in_row = std::max<int64_t>(first, 0);
  b.in_rows = std::min(last, h) - b.in_row;
  b.pad_top = b.in_row - first;
  b.pad_bottom = last - std::min(last, h);
  return b;
}

// `extra_row_bytes`: what else a band holds per output row (a shortcut's
// input and output rows, see group_norm_act_conv2d_shortcut).
std::vector<ConvBand> conv_bands(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o,
                                 int64_t ho, int64_t wo, int64_t kh, const Conv2dParams& p,
                                 size_t extra_row_bytes = 0) {
  const int64_t span = p.dilation_h * (kh - 1) + 1;  // input rows under one output row
  const size_t in_row_bytes = static_cast<size_t>(n * c * w) * sizeof(float);
  const size_t out_row_bytes = static_cast<size_t>(n * o * wo) * sizeof(float) + extra_row_bytes;
  const size_t budget = g_band_bytes.load();
  const size_t whole = in_row_bytes * static_cast<size_t>(h) + out_row_bytes * static_cast<size_t>(ho);
  int64_t rows = ho;
  if (budget > 0 && whole > budget) {
    const size_t per_row = in_row_bytes * static_cast<size_t>(p.stride_h) + out_row_bytes;
    const size_t halo = in_row_bytes * static_cast<size_t>(span);
    rows = budget > halo ? static_cast<int64_t>((budget - halo) / per_row) : 1;
    rows = std::clamp<int64_t>(rows, 1, ho);
    // Equal bands (the last no smaller than needed): fewer distinct primitives.
    const int64_t count = (ho + rows - 1) / rows;
    rows = (ho + count - 1) / count;
  }
  std::vector<ConvBand> bands;
  for (int64_t y = 0; y < ho; y += rows)
    bands.push_back(band_of_rows(y, std::min(rows, ho - y), h, ho, kh, p));
  return bands;
}

std::shared_ptr<const ConvEntry> conv_entry(int64_t n, int64_t c, int64_t w, int64_t o,
                                            int64_t kh, int64_t kw, int64_t wo,
                                            const Conv2dParams& p, const ConvBand& b,
                                            bool has_bias) {
  ConvKey key{n,          c,          b.in_rows,       w,          o,        kh,
              kw,         p.stride_h, p.stride_w,      b.pad_top,  b.pad_bottom, p.pad_w,
              p.dilation_h, p.dilation_w, p.groups,    has_bias};
  std::lock_guard<std::mutex> lock(g_conv_mutex);
  auto it = g_conv_cache.find(key);
  if (it == g_conv_cache.end())
    it = g_conv_cache
             .emplace(key, make_entry(n, c, b.in_rows, w, o, kh, kw, b.out_rows, wo, p, b.pad_top,
                                      b.pad_bottom, has_bias))
             .first;
  return it->second;
}

// A plain NCHW view of rows [row, row + rows) of an [n, c, h, w] tensor.
dnnl::memory::desc rows_view(int64_t n, int64_t c, int64_t h, int64_t w, int64_t rows) {
  return dnnl::memory::desc({n, c, rows, w}, dt::f32, {c * h * w, h * w, w, 1});
}

// The sizes of one convolution, checked against each other.
struct ConvGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t o = 0, kh = 0, kw = 0;       // weight
  int64_t ho = 0, wo = 0;              // output
  Shape out_shape() const { return {n, o, ho, wo}; }
};

ConvGeometry conv_geometry(const Shape& x, const Tensor& weight, const Tensor* bias,
                           const Conv2dParams& p, const Tensor* residual, const char* op) {
  cpu::check(x.size() == 4 && weight.dim() == 4, op,
             "x " + shape_str(x) + " and weight " + shape_str(weight.shape()) + " must be 4-D");
  ConvGeometry g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = weight.size(0), g.kh = weight.size(2), g.kw = weight.size(3);
  cpu::check(p.groups >= 1 && g.c % p.groups == 0 && g.o % p.groups == 0 &&
                 weight.size(1) == g.c / p.groups,
             op,
             "weight " + shape_str(weight.shape()) + " does not fit x " + shape_str(x) +
                 " with groups " + std::to_string(p.groups));
  cpu::check(!bias || (bias->dim() == 1 && bias->size(0) == g.o), op,
             "bias shape does not match weight " + shape_str(weight.shape()));
  g.ho = conv2d_out_h(p, g.h, g.kh);
  g.wo = conv2d_out_w(p, g.w, g.kw);
  cpu::check(g.ho > 0 && g.wo > 0, op, "empty output for input " + shape_str(x));
  cpu::check(!residual || residual->shape() == g.out_shape(), op,
             "residual " + (residual ? shape_str(residual->shape()) : std::string()) +
                 " does not match the output " + shape_str(g.out_shape()));
  return g;
}

// A stage's channel_add is [n, o] for the convolution's output.
void check_channel_add(const Tensor* channel_add, const ConvGeometry& g, const char* op) {
  cpu::check(!channel_add || (channel_add->dim() == 2 && channel_add->size(0) == g.n &&
                              channel_add->size(1) == g.o),
             op,
             "channel_add " + (channel_add ? shape_str(channel_add->shape()) : std::string()) +
                 " is not [N, C] of the output " + shape_str(g.out_shape()));
}

// Input rows [b.in_row, b.in_row + b.in_rows) of the plain x (sizes `g`) in
// the layout `wanted`: a view of x's storage when that is the layout, else a
// reordered copy.
OwnedMemory input_rows(const Tensor& x, const ConvGeometry& g, const ConvBand& b,
                       const dnnl::memory::desc& wanted, dnnl::stream& s) {
  const dnnl::memory view(rows_view(g.n, g.c, g.h, g.w, b.in_rows), cpu_engine(),
                          const_cast<float*>(x.data()) + b.in_row * g.w);
  return as_layout(OwnedMemory{view, nullptr}, wanted, s);
}

// The block `block` names (as channel_block gives it), else 1 when `d` is
// the plain layout of an [n, c, h, w] tensor, else 0.
int64_t block_or_plain(int64_t block, const dnnl::memory::desc& d, int64_t n, int64_t c,
                       int64_t h, int64_t w) {
  if (block != 0) return block;
  return d == dnnl::memory::desc({n, c, h, w}, dt::f32, tag::nchw) ? 1 : 0;
}

// Runs primitive `e` from `src` (already in its layout) into `dst`, with the
// weights in the layout it wants (cached, see reordered_weights); waits for it.
void execute_conv(const ConvEntry& e, const dnnl::memory& src, const Tensor& weight,
                  const Tensor* bias, const dnnl::memory& dst, dnnl::stream& s) {
  dnnl::memory user_w(e.user_weights, cpu_engine(), const_cast<float*>(weight.data()));
  dnnl::memory wts = reordered_weights(weight, user_w, e.pd.weights_desc(), s);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_DST, dst}};
  if (bias)
    args.emplace(DNNL_ARG_BIAS,
                 dnnl::memory(e.user_bias, cpu_engine(), const_cast<float*>(bias->data())));
  e.prim.execute(s, args);
  s.wait();
}

// add_unblocking from a source in oneDNN's layout `block` (channel_block's
// value; 1: plain, in place in out).
template <class Addend>
void add_unblocking_any(const float* blocked, int64_t block, const Addend& addend, float* out,
                        int64_t n, int64_t c, int64_t hw, int64_t plane) {
  if (block == 8) {
    add_unblocking<8>(blocked, addend, out, n, c, hw, plane);
  } else if (block == 16) {
    add_unblocking<16>(blocked, addend, out, n, c, hw, plane);
  } else if (block > 1) {  // channels last
    add_unblocking<0>(blocked, addend, out, n, c, hw, plane, block);
  } else {
    add_unblocking<1>(out, addend, out, n, c, hw, plane);
  }
}

// What an output band takes on its way out of oneDNN's layout: nothing, or
// one of the plain `residual` (the output's shape), `channel_add` ([n, o]) and
// `band` (the band's own rows in a oneDNN layout, see BlockedAddend).
struct BandAddend {
  const Tensor* residual = nullptr;
  const Tensor* channel_add = nullptr;
  const float* band = nullptr;
  int64_t band_block = 0;
  bool any() const { return residual || channel_add || band; }
};

// Runs primitive `e` on `src` (already in its layout) and writes output rows
// [b.out_row, b.out_row + b.out_rows) of the plain `out`, plus `addend`: the
// sum is formed while the output is moved out of oneDNN's layout (or in place
// when oneDNN writes the plain layout itself), one float addition per element
// exactly as add_channel_bias / add(residual, conv2d(...)) do, so the bits are
// the same. (oneDNN's sum post-op is not used: it adds the residual into the
// accumulator before the products, which rounds differently.)
void run_into_plain(const ConvEntry& e, OwnedMemory src, const Tensor& weight,
                    const Tensor* bias, const ConvGeometry& g, const ConvBand& b,
                    const BandAddend& addend, float* out_data, dnnl::stream& s) {
  float* band_out = out_data + b.out_row * g.wo;
  const dnnl::memory::desc dst_view = rows_view(g.n, g.o, g.ho, g.wo, b.out_rows);
  dnnl::memory user_dst(dst_view, cpu_engine(), band_out);
  const bool direct_dst = e.pd.dst_desc() == dst_view;
  OwnedMemory owned_dst = direct_dst ? OwnedMemory{user_dst, nullptr} : new_memory(e.pd.dst_desc());
  dnnl::memory& dst = owned_dst.mem;
  execute_conv(e, src.mem, weight, bias, dst, s);
  // The blocked copy of the input is gone before the plain output's pages are
  // written (the caller handed it over).
  src = OwnedMemory{};
  const int64_t hw = b.out_rows * g.wo;
  const int64_t block =
      addend.any() && !direct_dst ? channel_block(e.pd.dst_desc(), g.n, g.o, b.out_rows, g.wo) : 0;
  if (!direct_dst && block == 0) dnnl::reorder(dst, user_dst).execute(s, dst, user_dst);
  s.wait();
  if (!addend.any()) return;
  const float* blocked = static_cast<const float*>(dst.get_data_handle());
  const int64_t plane = g.ho * g.wo;
  auto unblock = [&](const auto& a) {
    add_unblocking_any(blocked, block, a, band_out, g.n, g.o, hw, plane);
  };
  if (addend.residual) {
    unblock(ResidualAddend{addend.residual->data() + b.out_row * g.wo, plane});
  } else if (addend.channel_add) {
    unblock(ChannelAddend{addend.channel_add->data()});
  } else {
    unblock(BlockedAddend{addend.band, g.o, hw, addend.band_block});
  }
}

// conv2d, plus `residual` (same shape as the output) when given, in bands of
// output rows (see conv_bands).
Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor* bias,
                   const Conv2dParams& p, const Tensor* residual, const char* op) {
  const ConvGeometry g = conv_geometry(x.shape(), weight, bias, p, residual, op);
  Tensor out = Tensor::uninitialized(g.out_shape());
  float* out_data = out.data();
  dnnl::stream s(cpu_engine());
  const std::vector<ConvBand> bands = conv_bands(g.n, g.c, g.h, g.w, g.o, g.ho, g.wo, g.kh, p);
  g_bands_run += static_cast<long long>(bands.size());
  for (const ConvBand& b : bands) {
    const std::shared_ptr<const ConvEntry> e =
        conv_entry(g.n, g.c, g.w, g.o, g.kh, g.kw, g.wo, p, b, bias);
    OwnedMemory src = input_rows(x, g, b, e->pd.src_desc(), s);
    run_into_plain(*e, std::move(src), weight, bias, g, b, BandAddend{residual}, out_data, s);
  }
  return out;
}

// ---- stacks of convolutions in oneDNN's layout ----
// Between two convolutions of a stack the tensor stays in the blocked layout
// oneDNN computes in (nChw8c / nChw16c), and the activation runs there (an
// element-wise function does not care about the order of the elements): no
// reorder to the plain layout and back per convolution. A stack whose tensors
// between stages exceed g_stack_bytes runs in bands of output rows, all its
// stages band by band (halo rows computed again for each band that reads
// them). Measured on 2 cores, three 64-channel 3x3 convolutions with ReLU
// against the same run stage by stage: whole 0.84x at 180x320; in bands
// with at most 64 MiB between stages 1.14x at 720x1280 (bands that large run
// slower than the 16 MiB ones), 16 MiB 0.64x there and 0.57x at 360x640,
// 2 MiB 1.35x (the halo rows cost more than they save).
std::atomic<size_t> g_stack_bytes{size_t{16} << 20};
std::atomic<long long> g_stacks_blocked{0};

// `a` over `count` floats, as CpuBackend::activation computes it.
void activate(Activation a, float* data, int64_t count) {
  dnnl::algorithm alg;
  float alpha;
  if (a == Activation::kNone) return;
  if (cpu::eltwise_for(a, alg, alpha)) {
    cpu::activation_span(a, data, count);  // one oneDNN primitive over all threads
    return;
  }
  cpu::check(a == Activation::kReLU, "conv2d_stack", "unknown activation");
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) data[i] = cpu::relu(data[i]);
}

// ---- a convolution of a group-normalised input ----
// The normalised (and activated) input is written straight into the layout
// the convolution reads, band by band (a band's halo rows are normalised for
// each band that reads them), instead of into a plain tensor that each band
// then reorders: one pass over the tensor less, and the plain normalised
// tensor (about 1 GB at a 1440p frame's full-resolution layers) never exists.
std::atomic<bool> g_normed_direct_on{true};
std::atomic<long long> g_normed_convs_direct{0};

// A ResNet's shortcut convolution, computed band by band beside the normalised
// convolution: each band of its output stays in oneDNN's layout until the
// normalised convolution's band takes it as its addend, so the plain shortcut
// output (the block's output size) never exists.
std::atomic<long long> g_shortcuts_banded{0};

struct Shortcut {
  const Tensor* input = nullptr;
  const ConvStage* conv = nullptr;
  ConvGeometry g;
};

// One band of a convolution whose input is written here (normalised or
// upsampled): its rows, its primitive and the block its input is written in;
// with a shortcut, the shortcut's rows and primitive and the channel block of
// its output (1: plain).
struct WrittenBand {
  ConvBand band;
  std::shared_ptr<const ConvEntry> entry;
  int64_t block = 0;
  ConvBand shortcut_band;
  std::shared_ptr<const ConvEntry> shortcut_entry;
  int64_t shortcut_block = 0;
};

// The bands of a convolution whose input is written here (a norm's output,
// an upsampled tensor) and of the shortcut beside it, or false where a band's
// layouts are not ones written or read here: the written input must be
// oneDNN's channel blocks without padded channels or plain; the shortcut's
// output any channel blocks or plain.
bool plan_written_bands(const ConvGeometry& g, const ConvStage& conv, const Shortcut* shortcut,
                       std::vector<WrittenBand>& plan) {
  size_t extra_row_bytes = 0;
  if (shortcut) {
    const ConvGeometry& gs = shortcut->g;
    extra_row_bytes = static_cast<size_t>(gs.n * (gs.c * gs.w * shortcut->conv->params.stride_h +
                                                  gs.o * gs.wo)) *
                      sizeof(float);
  }
  for (const ConvBand& b :
       conv_bands(g.n, g.c, g.h, g.w, g.o, g.ho, g.wo, g.kh, conv.params, extra_row_bytes)) {
    WrittenBand p;
    p.band = b;
    p.entry = conv_entry(g.n, g.c, g.w, g.o, g.kh, g.kw, g.wo, conv.params, b, conv.bias);
    const dnnl::memory::desc& d = p.entry->pd.src_desc();
    p.block = block_or_plain(whole_channel_block(d, g.n, g.c, b.in_rows, g.w), d, g.n, g.c,
                             b.in_rows, g.w);
    if (p.block == 0) return false;
    if (shortcut) {
      const ConvGeometry& gs = shortcut->g;
      const ConvStage& sc = *shortcut->conv;
      p.shortcut_band = band_of_rows(b.out_row, b.out_rows, gs.h, gs.ho, gs.kh, sc.params);
      if (p.shortcut_band.in_rows <= 0) return false;  // rows of padding only
      p.shortcut_entry = conv_entry(gs.n, gs.c, gs.w, gs.o, gs.kh, gs.kw, gs.wo, sc.params,
                                    p.shortcut_band, sc.bias);
      const dnnl::memory::desc& sd = p.shortcut_entry->pd.dst_desc();
      p.shortcut_block = block_or_plain(channel_block(sd, gs.n, gs.o, b.out_rows, gs.wo), sd,
                                        gs.n, gs.o, b.out_rows, gs.wo);
      if (p.shortcut_block == 0) return false;
    }
    plan.push_back(std::move(p));
  }
  return true;
}

// The shortcut's output rows of band `p`, in its primitive's own layout.
OwnedMemory shortcut_band_output(const Shortcut& sc, const WrittenBand& p, dnnl::stream& s) {
  const ConvGeometry& gs = sc.g;
  const ConvBand& b = p.shortcut_band;
  const ConvEntry& e = *p.shortcut_entry;
  OwnedMemory src = input_rows(*sc.input, gs, b, e.pd.src_desc(), s);
  OwnedMemory dst = new_memory(e.pd.dst_desc());
  execute_conv(e, src.mem, *sc.conv->weight, sc.conv->bias, dst.mem, s);
  return dst;
}

// conv(act(norm(x))) plus `residual` or the shortcut's output (not both), or
// nothing where plan_written_bands finds no plan.
std::optional<Tensor> normed_conv(const Tensor& x, const GroupNormAct& norm, const ConvStage& conv,
                                  const ConvGeometry& g, const Tensor* residual,
                                  const Shortcut* shortcut, const char* op) {
  std::vector<WrittenBand> plan;
  if (!plan_written_bands(g, conv, shortcut, plan)) return std::nullopt;
  const cpu::GroupNormAffine affine =
      cpu::group_norm_affine(x, norm.groups, norm.gamma, norm.beta, norm.eps, op);
  ++g_normed_convs_direct;
  if (shortcut) ++g_shortcuts_banded;
  g_bands_run += static_cast<long long>(plan.size() * (shortcut ? 2 : 1));
  Tensor out = Tensor::uninitialized(g.out_shape());
  dnnl::stream s(cpu_engine());
  for (const WrittenBand& p : plan) {
    OwnedMemory skip;  // kept until the band's output has taken it
    BandAddend addend{residual, conv.channel_add};
    if (shortcut) {
      skip = shortcut_band_output(*shortcut, p, s);
      addend.band = static_cast<const float*>(skip.mem.get_data_handle());
      addend.band_block = p.shortcut_block;
    }
    OwnedMemory src = new_memory(p.entry->pd.src_desc());
    cpu::group_norm_act_rows(x, affine, norm.act, p.band.in_row, p.band.in_rows, p.block,
                             static_cast<float*>(src.storage.get()));
    run_into_plain(*p.entry, std::move(src), *conv.weight, conv.bias, g, p.band, addend,
                   out.data(), s);
  }
  return out;
}

}  // namespace

Tensor CpuBackend::group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm,
                                         const ConvStage& conv, const Tensor* residual) {
  if (!g_normed_direct_on.load()) return Backend::group_norm_act_conv2d(x, norm, conv, residual);
  const char* op = "group_norm_act_conv2d";
  cpu::check(conv.weight != nullptr, op, "no convolution weights");
  cpu::check(cpu::activation_span_knows(norm.act), op, "unknown activation");
  const ConvGeometry g = conv_geometry(x.shape(), *conv.weight, conv.bias, conv.params, residual, op);
  check_channel_add(conv.channel_add, g, op);
  // The output takes one addend on its way out of oneDNN's layout; a time
  // embedding and a skip connection together (no model has both) run op by op.
  if (conv.channel_add && residual) return Backend::group_norm_act_conv2d(x, norm, conv, residual);
  std::optional<Tensor> out = normed_conv(x, norm, conv, g, residual, nullptr, op);
  // Layouts not written here: the norm writes a plain tensor as usual.
  if (!out) return Backend::group_norm_act_conv2d(x, norm, conv, residual);
  return activation_in_place(std::move(*out), conv.act);
}

Tensor CpuBackend::group_norm_act_conv2d_shortcut(const Tensor& h, const GroupNormAct& norm,
                                                  const ConvStage& conv, const Tensor& skip_input,
                                                  const ConvStage& shortcut) {
  const char* op = "group_norm_act_conv2d_shortcut";
  auto op_by_op = [&] {
    return Backend::group_norm_act_conv2d_shortcut(h, norm, conv, skip_input, shortcut);
  };
  if (!g_normed_direct_on.load()) return op_by_op();
  cpu::check(conv.weight != nullptr && shortcut.weight != nullptr, op, "no convolution weights");
  cpu::check(cpu::activation_span_knows(norm.act), op, "unknown activation");
  const ConvGeometry g = conv_geometry(h.shape(), *conv.weight, conv.bias, conv.params, nullptr, op);
  const Shortcut sc{&skip_input, &shortcut,
                    conv_geometry(skip_input.shape(), *shortcut.weight, shortcut.bias,
                                  shortcut.params, nullptr, op)};
  cpu::check(sc.g.out_shape() == g.out_shape(), op,
             "shortcut output " + shape_str(sc.g.out_shape()) + " does not match the output " +
                 shape_str(g.out_shape()));
  check_channel_add(conv.channel_add, g, op);
  check_channel_add(shortcut.channel_add, sc.g, op);
  // The output takes one addend (the shortcut's output band); anything
  // on top of it (no model has it) runs op by op.
  if (conv.channel_add || shortcut.channel_add || shortcut.act != Activation::kNone)
    return op_by_op();
  std::optional<Tensor> out = normed_conv(h, norm, conv, g, nullptr, &sc, op);
  if (!out) return op_by_op();
  return activation_in_place(std::move(*out), conv.act);
}

// ---- a convolution of a nearest-upsampled input ----
// The upsampled rows a band reads are written straight into the layout its
// convolution reads, as the norm does above, instead of into a plain tensor
// four times the input that each band then reorders: at a 1440p frame's last
// decoder stage that tensor is about 1 GB.
std::atomic<bool> g_upsampled_direct_on{true};
std::atomic<long long> g_upsampled_convs_direct{0};

Tensor CpuBackend::upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                           const ConvStage& conv) {
  const char* op = "upsample_nearest_conv2d";
  auto op_by_op = [&] { return Backend::upsample_nearest_conv2d(x, out_h, out_w, conv); };
  if (!g_upsampled_direct_on.load()) return op_by_op();
  cpu::check_resize(x, out_h, out_w, op);
  cpu::check(conv.weight != nullptr, op, "no convolution weights");
  const ConvGeometry g = conv_geometry({x.size(0), x.size(1), out_h, out_w}, *conv.weight,
                                       conv.bias, conv.params, nullptr, op);
  check_channel_add(conv.channel_add, g, op);
  std::vector<WrittenBand> plan;
  if (x.numel() == 0 || !plan_written_bands(g, conv, nullptr, plan)) return op_by_op();
  ++g_upsampled_convs_direct;
  g_bands_run += static_cast<long long>(plan.size());
  Tensor out = Tensor::uninitialized(g.out_shape());
  dnnl::stream s(cpu_engine());
  for (const WrittenBand& p : plan) {
    OwnedMemory src = new_memory(p.entry->pd.src_desc());
    cpu::upsample_nearest_rows(x, out_h, out_w, p.band.in_row, p.band.in_rows, p.block,
                               static_cast<float*>(src.storage.get()));
    run_into_plain(*p.entry, std::move(src), *conv.weight, conv.bias, g, p.band,
                   BandAddend{nullptr, conv.channel_add}, out.data(), s);
  }
  return activation_in_place(std::move(out), conv.act);
}

// One band of a stack: for every stage, the convolution band that computes
// the rows the next stage reads (the last stage: the band's output rows).
struct StackBand {
  std::vector<ConvBand> stage;
  std::vector<std::shared_ptr<const ConvEntry>> entry;
};

// Plans the stack in bands of `rows` output rows of its last stage. Each
// stage's band computes exactly the rows (halo included, clipped to the image)
// the next stage's band reads, so every value is the same sum as in the whole
// convolution. False when a tensor between two stages would not be in a
// channel-blocked layout without padded channels (the activation runs there
// and must touch real values only), or a band would read no input row at all.
bool plan_stack(const std::vector<ConvStage>& stages, const std::vector<ConvGeometry>& geometry,
                int64_t rows, std::vector<StackBand>& plan) {
  const size_t count = stages.size();
  const int64_t ho = geometry.back().ho;
  for (int64_t y = 0; y < ho; y += rows) {
    StackBand band;
    band.stage.resize(count);
    band.entry.resize(count);
    int64_t out_row = y, out_rows = std::min(rows, ho - y);
    for (size_t k = count; k-- > 0;) {
      const ConvGeometry& g = geometry[k];
      band.stage[k] = band_of_rows(out_row, out_rows, g.h, g.ho, g.kh, stages[k].params);
      if (band.stage[k].in_rows <= 0) return false;  // rows of padding only (pad > kernel)
      out_row = band.stage[k].in_row;
      out_rows = band.stage[k].in_rows;
    }
    for (size_t k = 0; k < count; ++k) {
      const ConvGeometry& g = geometry[k];
      const ConvBand& b = band.stage[k];
      band.entry[k] = conv_entry(g.n, g.c, g.w, g.o, g.kh, g.kw, g.wo, stages[k].params, b,
                                 stages[k].bias);
      if (k + 1 == count) break;
      if (whole_channel_block(band.entry[k]->pd.dst_desc(), g.n, g.o, b.out_rows, g.wo) == 0)
        return false;
    }
    plan.push_back(std::move(band));
  }
  return true;
}

// Output rows per band such that no tensor between two stages exceeds
// `budget` bytes (the largest band is an inner one, with halos on both sides);
// the last stage's ho when the whole stack fits, 0 when not even one row does.
int64_t stack_band_rows(const std::vector<ConvStage>& stages,
                        const std::vector<ConvGeometry>& geometry, size_t budget) {
  auto largest_between = [&](int64_t rows) {
    size_t largest = 0;
    int64_t need = rows;  // output rows of stage k
    for (size_t k = stages.size() - 1; k-- > 0;) {
      const ConvGeometry& next = geometry[k + 1];
      const Conv2dParams& p = stages[k + 1].params;
      need = std::min(next.h, (need - 1) * p.stride_h + p.dilation_h * (next.kh - 1) + 1);
      const ConvGeometry& g = geometry[k];
      largest = std::max(largest, static_cast<size_t>(g.n * g.o * need * g.wo) * sizeof(float));
    }
    return largest;
  };
  const int64_t ho = geometry.back().ho;
  if (largest_between(ho) <= budget) return ho;
  if (largest_between(1) > budget) return 0;
  int64_t lo = 1, hi = ho;  // largest_between(lo) fits, (hi) does not
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (largest_between(mid) <= budget ? lo : hi) = mid;
  }
  const int64_t bands = (ho + lo - 1) / lo;  // equal bands: fewer distinct primitives
  return (ho + bands - 1) / bands;
}

Tensor CpuBackend::conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                                const Tensor* residual) {
  cpu::check(!stages.empty(), "conv2d_stack", "no stages");
  std::vector<ConvGeometry> geometry;
  Shape shape = x.shape();
  for (size_t k = 0; k < stages.size(); ++k) {
    cpu::check(stages[k].weight != nullptr, "conv2d_stack", "stage without weights");
    const bool last = k + 1 == stages.size();
    geometry.push_back(conv_geometry(shape, *stages[k].weight, stages[k].bias, stages[k].params,
                                     last ? residual : nullptr, "conv2d_stack"));
    check_channel_add(stages[k].channel_add, geometry.back(), "conv2d_stack");
    shape = geometry.back().out_shape();
    // Only the last stage's output takes an addend (one, as it leaves oneDNN's
    // layout); other stacks (no model has them) run stage by stage.
    if (stages[k].channel_add && (!last || residual))
      return Backend::conv2d_stack(x, stages, residual);
  }
  // The tensors between two stages stay blocked, each at most the budget: the
  // whole stack at once when it fits, else in bands of output rows. Where that
  // cannot be (one stage, no budget, padded channel blocks) the stages run one
  // by one.
  const int64_t rows =
      stages.size() >= 2 ? stack_band_rows(stages, geometry, g_stack_bytes.load()) : 0;
  std::vector<StackBand> plan;
  if (rows == 0 || !plan_stack(stages, geometry, rows, plan))
    return Backend::conv2d_stack(x, stages, residual);

  ++g_stacks_blocked;
  g_bands_run += static_cast<long long>(stages.size() * plan.size());
  dnnl::stream s(cpu_engine());
  const ConvGeometry& g0 = geometry[0];
  const ConvGeometry& gl = geometry.back();
  const ConvStage& last = stages.back();
  Tensor out = Tensor::uninitialized(gl.out_shape());
  for (const StackBand& band : plan) {
    const ConvBand& b0 = band.stage[0];
    OwnedMemory src = input_rows(x, g0, b0, band.entry[0]->pd.src_desc(), s);
    for (size_t k = 0; k + 1 < stages.size(); ++k) {
      const ConvEntry& e = *band.entry[k];
      const ConvStage& st = stages[k];
      OwnedMemory dst = new_memory(e.pd.dst_desc());
      execute_conv(e, src.mem, *st.weight, st.bias, dst.mem, s);
      src = OwnedMemory{};  // the stage's input is given back before the next output exists
      activate(st.act, static_cast<float*>(dst.storage.get()),
               static_cast<int64_t>(e.pd.dst_desc().get_size() / sizeof(float)));
      // The next stage reads it as it is when it wants this layout (it usually does).
      src = as_layout(std::move(dst), band.entry[k + 1]->pd.src_desc(), s);
    }
    run_into_plain(*band.entry.back(), std::move(src), *last.weight, last.bias, gl,
                   band.stage.back(), BandAddend{residual, last.channel_add}, out.data(), s);
  }
  return activation_in_place(std::move(out), last.act);
}

Tensor CpuBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                          const Conv2dParams& p) {
  return conv2d_impl(x, weight, bias, p, nullptr, "conv2d");
}

Tensor CpuBackend::conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                              const Conv2dParams& p, const Tensor& residual) {
  return conv2d_impl(x, weight, bias, p, &residual, "conv2d_add");
}

void set_conv_weight_cache_mb(long long mb) { g_weights_cache_mb.store(mb < 0 ? 0 : mb); }

void set_conv_band_bytes(size_t bytes) { g_band_bytes.store(bytes); }

size_t set_conv_stack_bytes(size_t bytes) { return g_stack_bytes.exchange(bytes); }

long long conv_stacks_blocked() { return g_stacks_blocked.load(); }

bool set_normed_convs_direct(bool on) { return g_normed_direct_on.exchange(on); }

long long normed_convs_direct() { return g_normed_convs_direct.load(); }

bool set_upsampled_convs_direct(bool on) { return g_upsampled_direct_on.exchange(on); }

long long upsampled_convs_direct() { return g_upsampled_convs_direct.load(); }

long long shortcuts_banded() { return g_shortcuts_banded.load(); }

long long conv_bands_run() { return g_bands_run.load(); }

}  // namespace sdvsr
