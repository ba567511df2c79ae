#pragma once
// The operators the models are written against. One model definition runs on
// every backend; a backend implements these (runtime/cpu/, runtime/cuda/).
// Layout conventions: images are NCHW, token sequences are [B, L, C], all
// tensors contiguous float32. Every op returns a new tensor.
// Devices: every op accepts inputs on the host (weights mapped from files,
// tensors host code built) or on the backend's device, and returns tensors on
// its device (device()). Host code reads results only after to_host().
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sdvsr {

enum class Activation { kNone, kSiLU, kGELU, kGELUTanh, kQuickGELU, kReLU, kTanh, kSigmoid };

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

// A convolution's output height and width for an input of h x w and a
// kh x kw kernel (PyTorch's floor formula; not positive when the kernel does
// not fit).
inline int64_t conv2d_out_h(const Conv2dParams& p, int64_t h, int64_t kh) {
  return (h + 2 * p.pad_h - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
}
inline int64_t conv2d_out_w(const Conv2dParams& p, int64_t w, int64_t kw) {
  return (w + 2 * p.pad_w - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
}

// One convolution of a stack (Backend::conv2d_stack), then activation `act`.
struct ConvStage {
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;  // may be null
  Conv2dParams params;
  Activation act = Activation::kNone;
  // [N, out]: one value per image and output channel added after the bias,
  // before any residual and the activation (a ResNet's time embedding), as
  // add_channel_bias adds it; may be null.
  const Tensor* channel_add = nullptr;
};

// A group normalisation and the activation after it (Backend::group_norm_act's
// arguments), as the first half of Backend::group_norm_act_conv2d.
struct GroupNormAct {
  int groups = 1;
  const Tensor* gamma = nullptr;  // may be null
  const Tensor* beta = nullptr;   // may be null
  float eps = 1e-5f;
  Activation act = Activation::kNone;
};

enum class GridSampleMode { kBilinear, kNearest };

// The precision of a backend's matrix products (convolutions, linear layers,
// matrix products, attention): float32 throughout, or float16 / bfloat16
// operands with float32 accumulation. Tensors between ops stay float32.
enum class ComputeDtype { kFloat32, kFloat16, kBFloat16 };
// "float32", "float16", "bfloat16".
std::string compute_dtype_name(ComputeDtype d);
// float32|fp32, float16|fp16|half, bfloat16|bf16; anything else throws a one-line
// std::runtime_error.
ComputeDtype parse_compute_dtype(const std::string& s);

// Device work recorded once and replayed (a CUDA graph): every op of the
// recording runs again on the storage it was recorded with, reading whatever
// values that storage holds at replay.
class Recording {
 public:
  virtual ~Recording() = default;
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual void set_threads(int n) = 0;
  virtual int threads() const = 0;

  // ---- devices ----
  // Where this backend's results live.
  virtual Device device() const { return Device::kCpu; }
  // A host tensor with x's values (x itself when it is already on the host).
  virtual Tensor to_host(const Tensor& x) { return x; }
  // x on this backend's device (x itself when it is already there).
  virtual Tensor to_device(const Tensor& x) { return x; }
  // The precision of this backend's matrix products.
  virtual ComputeDtype compute_dtype() const { return ComputeDtype::kFloat32; }
  // Device memory in use at most since the last reset, in bytes; -1 where the
  // backend keeps no such count (the CPU: its memory is the process's RSS).
  virtual int64_t peak_device_memory_bytes() { return -1; }
  virtual void reset_peak_device_memory() {}

  // ---- matrix products (cpu: cpu_conv.cpp, cpu_matmul.cpp) ----
  // x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O] or nullptr.
  virtual Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                        const Conv2dParams& p) = 0;
  // x [..., in], weight [out, in] (PyTorch nn.Linear layout), bias [out] or nullptr.
  virtual Tensor linear(const Tensor& x, const Tensor& weight, const Tensor* bias) = 0;
  // Batched a [B, M, K] x b [B, K, N] (or b [B, N, K] when transpose_b) -> [B, M, N].
  virtual Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_b) = 0;
  // Multi-head softmax(q k^T * scale) v. q [B, Lq, heads*d], k, v [B, Lk, heads*d]
  // -> [B, Lq, heads*d]. causal masks key j > query i (CLIP).
  virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads,
                           float scale, bool causal) = 0;

  // ---- normalisation (cpu_norm.cpp) ----
  // x [N, C, ...]; gamma, beta [C] or nullptr for no affine.
  virtual Tensor group_norm(const Tensor& x, int groups, const Tensor* gamma,
                            const Tensor* beta, float eps) = 0;
  // Over the last dimension.
  virtual Tensor layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                            float eps) = 0;
  // Inference batch norm over channel dim 1.
  virtual Tensor batch_norm(const Tensor& x, const Tensor& running_mean,
                            const Tensor& running_var, const Tensor* gamma,
                            const Tensor* beta, float eps) = 0;
  // Per (n, c) over H*W, no affine (InstanceNorm2d(affine=False, track_running_stats=False)).
  virtual Tensor instance_norm(const Tensor& x, float eps) = 0;
  // Softmax over the last dimension.
  virtual Tensor softmax(const Tensor& x) = 0;

  // ---- elementwise (cpu_elementwise.cpp) ----
  virtual Tensor activation(const Tensor& x, Activation a) = 0;
  virtual Tensor add(const Tensor& a, const Tensor& b) = 0;  // equal shapes
  virtual Tensor sub(const Tensor& a, const Tensor& b) = 0;  // equal shapes
  virtual Tensor mul(const Tensor& a, const Tensor& b) = 0;  // equal shapes
  virtual Tensor scale(const Tensor& x, float s) = 0;        // x * s
  virtual Tensor add_scalar(const Tensor& x, float s) = 0;   // x + s
  // x [N, C, H, W] + b [N, C] broadcast over H, W (time embedding into a resnet).
  virtual Tensor add_channel_bias(const Tensor& x, const Tensor& b) = 0;
  virtual Tensor clamp(const Tensor& x, float lo, float hi) = 0;
  // Concatenate along `dim` (all other sizes equal).
  virtual Tensor concat(const std::vector<Tensor>& xs, int dim) = 0;
  // Elements [start, end) along `dim`.
  virtual Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end) = 0;
  // [N, C, H, W] -> [N, H*W, C] and back.
  virtual Tensor nchw_to_tokens(const Tensor& x) = 0;
  virtual Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) = 0;
  // General permutation (perm[i] = source dim of output dim i).
  virtual Tensor permute(const Tensor& x, const std::vector<int>& perm) = 0;

  // ---- resampling (cpu_resample.cpp), PyTorch's exact index rules ----
  virtual Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) = 0;
  virtual Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                                   bool align_corners) = 0;
  // A = -0.75, border-clamped taps, like F.interpolate(mode='bicubic').
  virtual Tensor upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                                  bool align_corners) = 0;
  // x [N, C, H, W], grid [N, Ho, Wo, 2] in [-1, 1] (x, y); zeros padding.
  virtual Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                             bool align_corners) = 0;
  virtual Tensor avg_pool2d(const Tensor& x, int kernel, int stride) = 0;

  // ---- RAFT (cpu_raft.cpp) ----
  // fmap1, fmap2 [N, C, H, W] -> all-pairs correlation [N*H*W, 1, H, W] / sqrt(C).
  virtual Tensor correlation_volume(const Tensor& fmap1, const Tensor& fmap2) = 0;
  // The correlation-pyramid lookup, materialised: pyramid[l] [N*h*w, 1, h_l, w_l],
  // coords [N, 2, h, w] -> [N, L*(2r+1)^2, h, w] (cpu_raft_lookup.h has the rules).
  virtual Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                                  int radius) = 0;
  // The same lookup from channels-last feature maps, without the volume.
  virtual Tensor raft_corr_lookup_direct(const Tensor& fmap1_cl,
                                         const std::vector<Tensor>& fmap2_levels,
                                         const Tensor& coords, int radius) = 0;
  // Convex x`factor` flow upsampling: flow [N, 2, h, w], mask [N, 9*f*f, h, w].
  virtual Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) = 0;

  // ---- fused ops: each returns exactly the bits of the composition it names.
  // These defaults run that composition; a backend overrides one to save passes
  // over memory (cpu: cpu_norm.cpp, cpu_conv.cpp, cpu_elementwise.cpp). ----
  // activation(group_norm(x, groups, gamma, beta, eps), a).
  virtual Tensor group_norm_act(const Tensor& x, int groups, const Tensor* gamma,
                                const Tensor* beta, float eps, Activation a) {
    return activation(group_norm(x, groups, gamma, beta, eps), a);
  }
  // add(residual, conv2d(x, weight, bias, p)): a convolution into a skip connection.
  virtual Tensor conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                            const Conv2dParams& p, const Tensor& residual) {
    return add(residual, conv2d(x, weight, bias, p));
  }
  // Convolutions one after another, each followed by its activation:
  // h = act_k(conv2d(h, ...)) for each stage k, with `residual` (when given)
  // added to the last convolution before its activation, as conv2d_add does
  // (after the stage's channel_add, when it has one).
  // A backend may keep its own layout between the stages (cpu: oneDNN's
  // blocked layout, no reorder to and from the plain one at each stage).
  virtual Tensor conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                              const Tensor* residual) {
    if (stages.empty()) throw std::runtime_error("conv2d_stack: no stages");
    Tensor h = x;
    for (size_t k = 0; k < stages.size(); ++k) {
      const ConvStage& st = stages[k];
      if (!st.weight) throw std::runtime_error("conv2d_stack: stage without weights");
      const bool add_residual = k + 1 == stages.size() && residual;
      if (st.channel_add) {
        h = add_channel_bias(conv2d(h, *st.weight, st.bias, st.params), *st.channel_add);
        if (add_residual) h = add(*residual, h);
      } else {
        h = add_residual ? conv2d_add(h, *st.weight, st.bias, st.params, *residual)
                         : conv2d(h, *st.weight, st.bias, st.params);
      }
      if (st.act != Activation::kNone) h = activation_in_place(std::move(h), st.act);
    }
    return h;
  }
  // A convolution of a normalised input, as in every ResNet block:
  // conv2d_stack(group_norm_act(x, ...), {conv}, residual). A backend may write
  // the normalised tensor straight into the layout its convolution reads (cpu:
  // oneDNN's blocked layout, band by band), so the plain one never exists.
  virtual Tensor group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm,
                                       const ConvStage& conv, const Tensor* residual) {
    return conv2d_stack(group_norm_act(x, norm.groups, norm.gamma, norm.beta, norm.eps, norm.act),
                        {conv}, residual);
  }
  // A ResNet block's second half when its channel count changes:
  // group_norm_act_conv2d(h, norm, conv, &skip) with skip =
  // conv2d_stack(skip_input, {shortcut}, nullptr) the same shape as the output.
  // A backend may compute the shortcut band by band and add it from its own
  // layout (cpu: the plain shortcut output never exists).
  virtual Tensor group_norm_act_conv2d_shortcut(const Tensor& h, const GroupNormAct& norm,
                                                const ConvStage& conv, const Tensor& skip_input,
                                                const ConvStage& shortcut) {
    const Tensor skip = conv2d_stack(skip_input, {shortcut}, nullptr);
    return group_norm_act_conv2d(h, norm, conv, &skip);
  }
  // conv2d_stack(upsample_nearest(x, out_h, out_w), {conv}, nullptr): an
  // upsampler's convolution (diffusers' Upsample2D, the temporal VAE decoder's
  // upsample and conv). A backend may write the upsampled rows straight into
  // the layout its convolution reads (cpu: band by band), so the upsampled
  // tensor, four times its input, never exists.
  virtual Tensor upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                         const ConvStage& conv) {
    return conv2d_stack(upsample_nearest(x, out_h, out_w), {conv}, nullptr);
  }
  // activation(add(add(x, scale(upsample_bilinear(small, H, W, false), s)),
  // residual), a), x [N, C, H, W], small [N, C, h, w], residual (may be null)
  // x's shape: the temporal VAE block's ending, its temporal term joining the
  // convolutions' output before the skip. A backend may interpolate row by row
  // into the sum (cpu), so the upsampled tensor, x's size, never exists.
  virtual Tensor add_bilinear_upsampled(Tensor x, const Tensor& small, float s,
                                        const Tensor* residual, Activation a) {
    if (x.dim() != 4)
      throw std::runtime_error("add_bilinear_upsampled: x " + shape_str(x.shape()) +
                               " must be [N, C, H, W]");
    Tensor up = scale_in_place(upsample_bilinear(small, x.size(2), x.size(3), false), s);
    x = add_in_place(std::move(x), up);
    up = Tensor();
    if (residual) x = add_in_place(std::move(x), *residual);
    return activation_in_place(std::move(x), a);
  }
  // nchw_to_tokens(group_norm_act(x, ...)): a Transformer2D's normalised input
  // as tokens [N, H*W, C]. A backend may write the tokens straight from the
  // statistics (cpu: the normalised NCHW tensor is never made).
  virtual Tensor group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) {
    return nchw_to_tokens(
        group_norm_act(x, norm.groups, norm.gamma, norm.beta, norm.eps, norm.act));
  }
  // add(tokens_to_nchw(tokens, h, w), residual): a Transformer2D's output and
  // its skip connection, in one pass on the cpu.
  virtual Tensor tokens_to_nchw_add(const Tensor& tokens, int64_t h, int64_t w,
                                    const Tensor& residual) {
    return add(tokens_to_nchw(tokens, h, w), residual);
  }
  // GEGLU on x [..., 2 * inner]: mul(x[..., :inner], activation(x[..., inner:], kGELU)).
  virtual Tensor geglu(const Tensor& x) {
    const int last = static_cast<int>(x.dim()) - 1;
    if (last < 0 || x.size(last) % 2 != 0)
      throw std::runtime_error("geglu: x " + shape_str(x.shape()) +
                               " needs an even last dimension (hidden | gate)");
    const int64_t inner = x.size(last) / 2;
    return mul(slice(x, last, 0, inner),
               activation(slice(x, last, inner, 2 * inner), Activation::kGELU));
  }

  // The feed-forward's projection and GEGLU, weight [2 * inner, in] (rows
  // [0, inner) the hidden half, the rest the gate half), bias [2 * inner] or
  // nullptr -> [..., inner]: each half as its own product,
  // mul(linear(x, hidden rows), activation(linear(x, gate rows), kGELU)).
  // (geglu(linear(x, weight, bias)) up to the GEMM's rounding: oneDNN's AVX2
  // GEMM rounds an N-column product differently from the same columns of a
  // 2N-column one.)
  virtual Tensor linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) {
    if (weight.dim() != 2 || weight.size(0) % 2 != 0)
      throw std::runtime_error("linear_geglu: weight " + shape_str(weight.shape()) +
                               " needs an even output count (hidden | gate)");
    const int64_t inner = weight.size(0) / 2;
    Tensor hidden_bias, gate_bias;
    if (bias) {
      if (bias->dim() != 1 || bias->size(0) != 2 * inner)
        throw std::runtime_error("linear_geglu: bias " + shape_str(bias->shape()) +
                                 " does not match weight " + shape_str(weight.shape()));
      hidden_bias = bias->rows(0, inner);
      gate_bias = bias->rows(inner, 2 * inner);
    }
    Tensor hidden = linear(x, weight.rows(0, inner), bias ? &hidden_bias : nullptr);
    Tensor gate = linear(x, weight.rows(inner, 2 * inner), bias ? &gate_bias : nullptr);
    return mul(hidden, activation_in_place(std::move(gate), Activation::kGELU));
  }
  // add(residual, linear(x, weight, bias)): a projection into a skip connection
  // (attention's to_out, the feed-forward's output).
  virtual Tensor linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                            const Tensor& residual) {
    return add(residual, linear(x, weight, bias));
  }

  // ---- in-place forms: the caller gives its first tensor up (pass a temporary
  // or std::move). When nothing else refers to that storage a backend may
  // write the result there instead of allocating another tensor of the same
  // size (at a 1440p frame's full-resolution layers, 1 GB each). The values
  // are those of the ordinary op; these defaults call it (cpu: in place). ----
  virtual Tensor activation_in_place(Tensor x, Activation a) { return activation(x, a); }
  virtual Tensor add_in_place(Tensor a, const Tensor& b) { return add(a, b); }
  virtual Tensor scale_in_place(Tensor x, float s) { return scale(x, s); }

  // ---- recorded work (cuda: cuda_graph.cpp) ----
  // Whether record() can work here (the CPU runs each op as it is called: no).
  virtual bool can_record() const { return false; }
  // The device work `work` issues on this backend, recorded without running
  // it. `work` must read its inputs from tensors made before (their storage is
  // what a replay reads), write its results with copy_into() into tensors made
  // before, and let every tensor it creates die inside it; ops that need the
  // host mid-way (an upload, a download, a cache filled for the first time)
  // make the recording fail, so run `work` once unrecorded first. Throws a
  // one-line std::runtime_error when the work cannot be recorded.
  virtual std::unique_ptr<Recording> record(const std::function<void()>& work) {
    (void)work;
    throw std::runtime_error(name() + " cannot record work (it runs each op as it is called)");
  }
  // Writes src's values (host or this backend's device) into dst's storage, a
  // tensor of this backend's device with as many elements. The one op that
  // writes into an existing tensor: the fixed buffers a recording reads and
  // writes. This default handles host storage only.
  virtual void copy_into(const Tensor& dst, const Tensor& src);
};

// The process-wide CPU backend.
Backend& cpu_backend();

}  // namespace sdvsr
