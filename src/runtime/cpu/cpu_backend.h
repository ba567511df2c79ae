#pragma once
// The CPU backend: oneDNN for convolutions and matrix products, OpenMP loops
// for everything else. One method family per file (cpu_conv.cpp, cpu_matmul.cpp,
// cpu_norm.cpp, cpu_elementwise.cpp, cpu_resample.cpp, cpu_raft.cpp).
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  void set_threads(int n) override;
  int threads() const override;

  Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Conv2dParams& p) override;
  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_b) override;
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale,
                   bool causal) override;

  Tensor group_norm(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                    float eps) override;
  Tensor layer_norm(const Tensor& x, const Tensor* gamma, const Tensor* beta,
                    float eps) override;
  Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                    const Tensor* gamma, const Tensor* beta, float eps) override;
  Tensor instance_norm(const Tensor& x, float eps) override;
  Tensor softmax(const Tensor& x) override;

  Tensor activation(const Tensor& x, Activation a) override;
  Tensor add(const Tensor& a, const Tensor& b) override;
  Tensor sub(const Tensor& a, const Tensor& b) override;
  Tensor mul(const Tensor& a, const Tensor& b) override;
  Tensor scale(const Tensor& x, float s) override;
  Tensor add_scalar(const Tensor& x, float s) override;
  Tensor add_channel_bias(const Tensor& x, const Tensor& b) override;
  Tensor clamp(const Tensor& x, float lo, float hi) override;
  Tensor concat(const std::vector<Tensor>& xs, int dim) override;
  Tensor slice(const Tensor& x, int dim, int64_t start, int64_t end) override;
  Tensor nchw_to_tokens(const Tensor& x) override;
  Tensor tokens_to_nchw(const Tensor& x, int64_t h, int64_t w) override;
  Tensor group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) override;
  Tensor tokens_to_nchw_add(const Tensor& tokens, int64_t h, int64_t w,
                            const Tensor& residual) override;
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override;

  Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) override;
  Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                           bool align_corners) override;
  Tensor upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                          bool align_corners) override;
  Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                     bool align_corners) override;
  Tensor avg_pool2d(const Tensor& x, int kernel, int stride) override;

  Tensor correlation_volume(const Tensor& fmap1, const Tensor& fmap2) override;
  Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                          int radius) override;
  Tensor raft_corr_lookup_direct(const Tensor& fmap1_cl, const std::vector<Tensor>& fmap2_levels,
                                 const Tensor& coords, int radius) override;
  Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) override;

  // Fused ops, bit-identical to the compositions in backend.h.
  Tensor group_norm_act(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                        float eps, Activation a) override;
  Tensor activation_in_place(Tensor x, Activation a) override;
  Tensor add_in_place(Tensor a, const Tensor& b) override;
  Tensor scale_in_place(Tensor x, float s) override;
  Tensor conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Conv2dParams& p, const Tensor& residual) override;
  Tensor geglu(const Tensor& x) override;
  Tensor linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Tensor& residual) override;
  Tensor conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                      const Tensor* residual) override;
  Tensor group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm, const ConvStage& conv,
                               const Tensor* residual) override;
  Tensor group_norm_act_conv2d_shortcut(const Tensor& h, const GroupNormAct& norm,
                                        const ConvStage& conv, const Tensor& skip_input,
                                        const ConvStage& shortcut) override;
  Tensor upsample_nearest_conv2d(const Tensor& x, int64_t out_h, int64_t out_w,
                                 const ConvStage& conv) override;
  Tensor add_bilinear_upsampled(Tensor x, const Tensor& small, float s, const Tensor* residual,
                                Activation a) override;
};

namespace cpu {
// Row-major C[M, N] = alpha * op(A) op(B) + beta * C through dnnl_sgemm;
// throws std::runtime_error naming `what` on failure.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const char* what);
// Throws std::runtime_error("<op>: <message>") unless `ok`.
void check(bool ok, const char* op, const std::string& message);

// group_norm(x) as x[i, ch] * scale[i * C + ch] + shift[i * C + ch], with the
// statistics group_norm computes (so the same bits); `op` names the caller in errors.
struct GroupNormAffine {
  std::vector<float> scale, shift;
};
GroupNormAffine group_norm_affine(const Tensor& x, int groups, const Tensor* gamma,
                                  const Tensor* beta, float eps, const char* op);
// act(group_norm(x)) for rows [row, row + rows) of x [N, C, H, W], written to
// dst as an [N, C, rows, W] tensor in oneDNN's nChw<block>c layout (block 1:
// plain NCHW; block C: channels last, NHWC); C must be a multiple of block.
void group_norm_act_rows(const Tensor& x, const GroupNormAffine& affine, Activation act,
                         int64_t row, int64_t rows, int64_t block, float* dst);
// A resize of x [N, C, H, W] to (out_h, out_w): both sizes positive, as
// PyTorch requires (an empty source has no pixel to take); `op` names the caller.
void check_resize(const Tensor& x, int64_t out_h, int64_t out_w, const char* op);
// Rows [row, row + rows) of upsample_nearest(x, out_h, out_w) (x [N, C, H, W]),
// written to dst as an [N, C, rows, out_w] tensor in the layout
// group_norm_act_rows writes (block 1: plain; C: channels last).
void upsample_nearest_rows(const Tensor& x, int64_t out_h, int64_t out_w, int64_t row,
                           int64_t rows, int64_t block, float* dst);
}  // namespace cpu

// Memory (MiB) for blocked copies of convolution weights that live in ordinary
// memory, kept between calls; 0 (the default, or SDVSR_CONV_WEIGHT_CACHE_MB)
// reorders those on every call. Weights mapped from a file are always cached
// (their mapped pages are given back, see cpu_conv.cpp).
void set_conv_weight_cache_mb(long long mb);

// Bytes of input plus output rows one convolution band covers (default 64 MiB):
// larger convolutions run in bands of output rows, so oneDNN's blocked copies
// are band-sized. 0 turns banding off. Results are the same either way.
void set_conv_band_bytes(size_t bytes);
// Convolution bands run so far (one per unbanded call), for tests.
long long conv_bands_run();

// Bytes of the largest blocked tensor a conv2d_stack keeps between two of its
// convolutions (default 16 MiB; it holds two at once). A larger stack runs in
// bands of output rows, every stage band by band; where not even one row fits
// (or with 0, which turns the blocked stacks off) it runs convolution by
// convolution. Results are the same either way. Returns the previous budget.
size_t set_conv_stack_bytes(size_t bytes);
// conv2d_stack calls that kept oneDNN's layout between their stages, for tests.
long long conv_stacks_blocked();
// Whether group_norm_act_conv2d writes the normalised input straight into the
// convolution's layout (default on; off: the plain tensor, then the
// convolution). Results are the same either way. Returns the previous setting.
bool set_normed_convs_direct(bool on);
// group_norm_act_conv2d calls whose norm wrote the convolution's own input
// layout (no plain normalised tensor), for tests.
long long normed_convs_direct();
// group_norm_act_conv2d_shortcut calls that added the shortcut's output band
// by band from oneDNN's layout (no plain shortcut output), for tests.
long long shortcuts_banded();
// Whether upsample_nearest_conv2d writes the upsampled input straight into the
// convolution's layout (default on; off: the plain upsampled tensor, then the
// convolution). Results are the same either way. Returns the previous setting.
bool set_upsampled_convs_direct(bool on);
// upsample_nearest_conv2d calls that wrote the convolution's own input layout
// (no plain upsampled tensor), for tests.
long long upsampled_convs_direct();

// Whether linear_geglu / linear_add run their GELU, product or sum as oneDNN
// post-ops of the matrix product (default on; off: the separate ops). Results
// are the same either way. Returns the previous setting.
bool set_linear_post_ops(bool on);
// linear_geglu / linear_add calls that ran their GELU, product or sum as
// post-ops of the matrix product (not as the separate ops), for tests.
long long linears_with_post_ops();
// The oneDNN kernel linear() runs for x [rows, in] -> [rows, out] (its
// implementation name, e.g. "gemm:jit" or "brg:avx512_core"), for tests.
std::string linear_kernel(int64_t rows, int64_t in, int64_t out, bool bias);

}  // namespace sdvsr
