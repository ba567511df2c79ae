#pragma once
// The CUDA backend, float32 with TF32 off (parity with the CPU backend), or,
// created with ComputeDtype::kFloat16 / kBFloat16, with the operands of its
// convolutions, linear layers, matrix products and attention rounded to 16 bits and
// float32 accumulation (tensors between ops stay float32; cuda_reduced.cu):
// cuBLAS for matrix products, cuDNN for convolutions, kernels of our own for
// the rest. One method family per file, mirroring runtime/cpu/:
// cuda_conv.cpp, cuda_matmul.cpp, cuda_norm.cu, cuda_elementwise.cu,
// cuda_resample.cu, cuda_attention.cu, cuda_raft.cu; the pointwise tails of
// products (bias, skip, activation, GEGLU) in cuda_epilogue.cu; recording
// CUDA graphs in cuda_graph.cpp. The fused ops of backend.h that save whole
// passes over a tensor are overridden; the rest compose.
//
// Devices: results are kCuda tensors in memory from a caching allocator
// (cudaMallocAsync's stream-ordered pool, Context::empty). Host inputs are accepted everywhere: borrowed host tensors
// (weights mapped from files) are uploaded once and cached by storage owner;
// other host tensors are uploaded per call. All work runs on one stream per
// backend; to_host() synchronises it.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace sdvsr {

namespace cuda {
struct Context;   // stream, cuBLAS and cuDNN handles, caches (cuda_context.h)
struct Epilogue;  // a product's pointwise tail in one pass (cuda_context.h)
using Reduced = std::shared_ptr<void>;  // 16-bit device values (cuda_context.h)
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index, ComputeDtype dtype = ComputeDtype::kFloat32);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda:" + std::to_string(index_); }
  int index() const { return index_; }
  void set_threads(int) override {}
  int threads() const override { return 1; }
  Device device() const override { return Device::kCuda; }
  Tensor to_host(const Tensor& x) override;
  Tensor to_device(const Tensor& x) override;
  ComputeDtype compute_dtype() const override { return dtype_; }
  // The device's stream-ordered pool (shared by every backend of the device):
  // its high-water mark of memory in use, plus that of the memory CUDA graphs
  // hold for their own allocations. cuBLAS's and cuDNN's own allocations
  // outside the pool are not counted.
  int64_t peak_device_memory_bytes() override;
  void reset_peak_device_memory() override;

  Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Conv2dParams& p) override;
  Tensor conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Conv2dParams& p, const Tensor& residual) override;
  Tensor conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                      const Tensor* residual) override;
  // A reduced backend's norm writes the convolution's 16-bit operand directly
  // (the same values as the composition; float32 backends compose).
  Tensor group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm, const ConvStage& conv,
                               const Tensor* residual) override;
  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor linear_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                    const Tensor& residual) override;
  Tensor linear_geglu(const Tensor& x, const Tensor& weight, const Tensor* bias) override;
  Tensor geglu(const Tensor& x) override;
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
  Tensor group_norm_act(const Tensor& x, int groups, const Tensor* gamma, const Tensor* beta,
                        float eps, Activation a) override;
  Tensor group_norm_act_tokens(const Tensor& x, const GroupNormAct& norm) override;
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
  Tensor tokens_to_nchw_add(const Tensor& tokens, int64_t h, int64_t w,
                            const Tensor& residual) override;
  Tensor permute(const Tensor& x, const std::vector<int>& perm) override;

  Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) override;
  Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w,
                           bool align_corners) override;
  Tensor upsample_bicubic(const Tensor& x, int64_t out_h, int64_t out_w,
                          bool align_corners) override;
  // One pass: the upsampled term is never stored (Backend's composition makes
  // five tensors of x's size).
  Tensor add_bilinear_upsampled(Tensor x, const Tensor& small, float s, const Tensor* residual,
                                Activation a) override;
  Tensor grid_sample(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                     bool align_corners) override;
  Tensor avg_pool2d(const Tensor& x, int kernel, int stride) override;

  Tensor correlation_volume(const Tensor& fmap1, const Tensor& fmap2) override;
  Tensor raft_corr_lookup(const std::vector<Tensor>& pyramid, const Tensor& coords,
                          int radius) override;
  Tensor raft_corr_lookup_direct(const Tensor& fmap1_cl, const std::vector<Tensor>& fmap2_levels,
                                 const Tensor& coords, int radius) override;
  Tensor raft_convex_upsample(const Tensor& flow, const Tensor& mask, int factor) override;

  // CUDA graphs: record() captures the stream's work (cuda_graph.cpp).
  bool can_record() const override { return true; }
  std::unique_ptr<Recording> record(const std::function<void()>& work) override;
  void copy_into(const Tensor& dst, const Tensor& src) override;

  cuda::Context& context() { return *ctx_; }
  // How many 16-bit weight copies this backend has made (each weight once).
  int64_t reduced_weight_copies();
  // How many read-only host tensors (weights) it has uploaded (each once).
  int64_t weight_uploads();

 private:
  // act(conv(x) + bias + channel_add + residual) of one stage (cuda_conv.cpp);
  // `op` names the caller in errors.
  // x16: x already in the 16-bit dtype (a reduced backend; x then gives only
  // the shape), else null.
  Tensor conv2d_fused(const Tensor& x, const ConvStage& stage, const Tensor* residual,
                      const char* op, const cuda::Reduced* x16 = nullptr);
  // conv2d in float16 / bfloat16 with float32 compute into `out`, widened by
  // `epilogue` (cuda_conv.cpp); x16 holds x (shape x_shape) in the 16-bit dtype.
  void conv2d_reduced(const cuda::Reduced& x16, const Shape& x_shape, const Tensor& weight,
                      const Conv2dParams& p, const cuda::Epilogue& epilogue, Tensor& out);
  // x [..., in] times weight [out, in] transposed into out [..., out], no bias
  // (cuda_matmul.cpp).
  Tensor product_rows(const Tensor& x, const Tensor& weight, const char* op);
  // product_rows plus the bias and the residual (each may be null) in one pass
  // (cuda_matmul.cpp).
  Tensor linear_fused(const Tensor& x, const Tensor& weight, const Tensor* bias,
                      const Tensor* residual, const char* op);

  int index_;
  ComputeDtype dtype_;
  std::unique_ptr<cuda::Context> ctx_;
};

// The process-wide backend of CUDA device `index` computing in `dtype`
// (created on first use; one per device and dtype).
// `lane` 1 is a second backend on the same device with its own stream and
// handles, for work that runs beside lane 0's (the next frame's flow).
CudaBackend& cuda_backend(int index, ComputeDtype dtype = ComputeDtype::kFloat32, int lane = 0);

}  // namespace sdvsr
