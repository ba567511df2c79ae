// 2-D convolution through cuDNN's legacy API (cudnnConvolutionForward), float32
// with FMA math only (no TF32). The algorithm is chosen once per shape from
// cudnnGetConvolutionForwardAlgorithm_v7's list, restricted to the GEMM family
// (Winograd and FFT change the rounding beyond the 1e-5 parity bound).
// A float16 / bfloat16 backend runs cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16
// configuration instead: x, w and y in 16 bits, float32 compute, tensor-op
// math allowed; y is widened to float32 by the epilogue.
// The bias, a time embedding, a skip connection and the activation follow in
// one pass (cuda::Epilogue), so conv2d_add and conv2d_stack cost no extra passes.
#include <algorithm>
#include <memory>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {

namespace {

// RAII holders for the per-call descriptors.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w, cudnnDataType_t type = CUDNN_DATA_FLOAT) {
    cuda::check(cudnnCreateTensorDescriptor(&d), "conv2d (tensor descriptor)");
    cuda::check(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, type, int(n), int(c),
                                           int(h), int(w)),
                "conv2d (tensor descriptor)");
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(int64_t o, int64_t c, int64_t kh, int64_t kw, cudnnDataType_t type = CUDNN_DATA_FLOAT) {
    cuda::check(cudnnCreateFilterDescriptor(&d), "conv2d (filter descriptor)");
    cuda::check(cudnnSetFilter4dDescriptor(d, type, CUDNN_TENSOR_NCHW, int(o), int(c),
                                           int(kh), int(kw)),
                "conv2d (filter descriptor)");
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  // Compute type float32 in both precisions; math FMA (float32 parity) or
  // tensor ops (reduced precision).
  explicit ConvDesc(const Conv2dParams& p, cudnnMathType_t math = CUDNN_FMA_MATH) {
    cuda::check(cudnnCreateConvolutionDescriptor(&d), "conv2d (convolution descriptor)");
    cuda::check(cudnnSetConvolution2dDescriptor(d, p.pad_h, p.pad_w, p.stride_h, p.stride_w,
                                                p.dilation_h, p.dilation_w,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "conv2d (convolution descriptor)");
    cuda::check(cudnnSetConvolutionGroupCount(d, p.groups), "conv2d (group count)");
    cuda::check(cudnnSetConvolutionMathType(d, math), "conv2d (math type)");
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
};

bool gemm_family(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

cuda::ConvAlgo choose_algo(cuda::Context& c, const TensorDesc& x, const FilterDesc& w,
                           const ConvDesc& conv, const TensorDesc& y) {
  int max_count = 0;
  cuda::check(cudnnGetConvolutionForwardAlgorithmMaxCount(c.cudnn, &max_count), "conv2d");
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  cuda::check(cudnnGetConvolutionForwardAlgorithm_v7(c.cudnn, x.d, w.d, conv.d, y.d,
                                                     static_cast<int>(perf.size()), &returned,
                                                     perf.data()),
              "conv2d (cudnnGetConvolutionForwardAlgorithm_v7)");
  for (int i = 0; i < returned; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& r = perf[static_cast<size_t>(i)];
    const bool tensor_ops = r.mathType == CUDNN_TENSOR_OP_MATH ||
                            r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (r.status != CUDNN_STATUS_SUCCESS || !gemm_family(r.algo) || tensor_ops) continue;
    // The descriptor stays at FMA math; ask the workspace for exactly that.
    size_t bytes = 0;
    if (cudnnGetConvolutionForwardWorkspaceSize(c.cudnn, x.d, w.d, conv.d, y.d, r.algo, &bytes) ==
        CUDNN_STATUS_SUCCESS)
      return {r.algo, bytes};
  }
  // IMPLICIT_GEMM supports every configuration and needs no workspace.
  return {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0};
}

bool not_supported(cudnnStatus_t s) {
  const int v = static_cast<int>(s);
  return (v >= CUDNN_STATUS_BAD_PARAM && v < CUDNN_STATUS_NOT_SUPPORTED + 1000);
}

// The reduced-precision candidates: the GEMM family in cuDNN's heuristic
// order, then IMPLICIT_GEMM (documented for every 16-bit config), and only
// then the others it rates usable (Winograd and FFT round differently).
std::vector<cuda::ConvAlgo> reduced_candidates(cuda::Context& c, const TensorDesc& x,
                                               const FilterDesc& w, const ConvDesc& conv,
                                               const TensorDesc& y) {
  int max_count = 0;
  cuda::check(cudnnGetConvolutionForwardAlgorithmMaxCount(c.cudnn, &max_count), "conv2d");
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int returned = 0;
  cuda::check(cudnnGetConvolutionForwardAlgorithm_v7(c.cudnn, x.d, w.d, conv.d, y.d,
                                                     static_cast<int>(perf.size()), &returned,
                                                     perf.data()),
              "conv2d (cudnnGetConvolutionForwardAlgorithm_v7, 16-bit)");
  std::vector<cuda::ConvAlgo> gemm, other;
  for (int i = 0; i < returned; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& r = perf[static_cast<size_t>(i)];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    (gemm_family(r.algo) ? gemm : other).push_back({r.algo, 0, r.mathType});
  }
  gemm.push_back({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0, CUDNN_TENSOR_OP_MATH});
  gemm.push_back({CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, 0, CUDNN_DEFAULT_MATH});
  gemm.insert(gemm.end(), other.begin(), other.end());
  return gemm;
}

}  // namespace

// x, w, y in float16 / bfloat16, float32 compute; y widened into `out` by its epilogue.
void CudaBackend::conv2d_reduced(const cuda::Reduced& x16, const Shape& x_shape,
                                 const Tensor& w_in, const Conv2dParams& p,
                                 const cuda::Epilogue& epilogue, Tensor& out) {
  cuda::Context& c = *ctx_;
  const int64_t n = x_shape[0], ch = x_shape[1], h = x_shape[2], w = x_shape[3];
  const int64_t o = w_in.size(0), kh = w_in.size(2), kw = w_in.size(3);
  const int64_t ho = out.size(2), wo = out.size(3);
  const cudnnDataType_t t16 =
      dtype_ == ComputeDtype::kFloat16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
  const cuda::Reduced w16 = c.reduced(w_in, /*weight=*/true);
  const cuda::Reduced y16 = c.scratch(static_cast<size_t>(out.numel()) * 2);
  const TensorDesc xd(n, ch, h, w, t16), yd(n, o, ho, wo, t16);
  const FilterDesc wd(o, ch / p.groups, kh, kw, t16);
  const ConvDesc cd(p, CUDNN_TENSOR_OP_MATH);
  const float one = 1.f, zero = 0.f;  // float scalars: the compute type is float32
  auto forward = [&](const cuda::ConvAlgo& a) {
    cuda::check(cudnnSetConvolutionMathType(cd.d, a.math), "conv2d (math type)");
    const std::shared_ptr<void> workspace = c.scratch(a.workspace_bytes);
    return cudnnConvolutionForward(c.cudnn, &one, xd.d, x16.get(), wd.d, w16.get(), cd.d, a.algo,
                                   workspace.get(), a.workspace_bytes, &zero, yd.d, y16.get());
  };
  {
    // The same shape key as float32, tagged with the dtype (this backend's
    // context holds one dtype, the tag keeps the key self-describing).
    const std::vector<int64_t> key{n, ch, h, w, o, kh, kw, p.stride_h, p.stride_w, p.pad_h,
                                   p.pad_w, p.dilation_h, p.dilation_w, p.groups,
                                   -1 - static_cast<int64_t>(dtype_)};
    std::lock_guard<std::mutex> lock(c.conv_mutex);
    auto it = c.conv_algos.find(key);
    if (it != c.conv_algos.end()) {
      cuda::check(forward(it->second), "conv2d (cudnnConvolutionForward, 16-bit)");
    } else {
      // First call of this shape: the first candidate that runs is kept (the
      // heuristics may list algorithms the 16-bit config then refuses).
      cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
      bool done = false;
      for (cuda::ConvAlgo a : reduced_candidates(c, xd, wd, cd, yd)) {
        cuda::check(cudnnSetConvolutionMathType(cd.d, a.math), "conv2d (math type)");
        if (cudnnGetConvolutionForwardWorkspaceSize(c.cudnn, xd.d, wd.d, cd.d, yd.d, a.algo,
                                                    &a.workspace_bytes) != CUDNN_STATUS_SUCCESS)
          continue;
        last = forward(a);
        if (last == CUDNN_STATUS_SUCCESS) {
          c.conv_algos.emplace(key, a);
          done = true;
          break;
        }
        if (!not_supported(last)) cuda::check(last, "conv2d (cudnnConvolutionForward, 16-bit)");
      }
      if (!done)
        cuda::check(last, ("conv2d: no cuDNN algorithm runs " + compute_dtype_name(dtype_) +
                           " x " + shape_str(x_shape) + " with weight " +
                           shape_str(w_in.shape()))
                              .c_str());
    }
  }
  cuda::widen_epilogue(c, y16.get(), out.raw_data(), out.numel(), ho * wo, o, epilogue, dtype_);
}

Tensor CudaBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias,
                           const Conv2dParams& p) {
  return conv2d_fused(x, ConvStage{&weight, bias, p}, nullptr, "conv2d");
}

Tensor CudaBackend::conv2d_add(const Tensor& x, const Tensor& weight, const Tensor* bias,
                               const Conv2dParams& p, const Tensor& residual) {
  return conv2d_fused(x, ConvStage{&weight, bias, p}, &residual, "conv2d_add");
}

Tensor CudaBackend::conv2d_stack(const Tensor& x, const std::vector<ConvStage>& stages,
                                 const Tensor* residual) {
  cuda::require(!stages.empty(), "conv2d_stack", "no stages");
  Tensor h = x;
  for (size_t k = 0; k < stages.size(); ++k) {
    cuda::require(stages[k].weight != nullptr, "conv2d_stack", "stage without weights");
    h = conv2d_fused(h, stages[k], k + 1 == stages.size() ? residual : nullptr, "conv2d_stack");
  }
  return h;
}

Tensor CudaBackend::group_norm_act_conv2d(const Tensor& x, const GroupNormAct& norm,
                                          const ConvStage& conv, const Tensor* residual) {
  if (dtype_ == ComputeDtype::kFloat32)
    return Backend::group_norm_act_conv2d(x, norm, conv, residual);
  // The float32 normalised tensor and the pass rounding it are never made.
  const cuda::Reduced x16 = cuda::group_norm_act_reduced(*ctx_, x, norm, "group_norm_act_conv2d");
  return conv2d_fused(x, conv, residual, "group_norm_act_conv2d", &x16);
}

// act(conv(x) + bias + channel_add + residual): cuDNN's convolution, then its
// epilogue in one pass (cuda_epilogue.cu) instead of one op each.
Tensor CudaBackend::conv2d_fused(const Tensor& x_in, const ConvStage& st, const Tensor* residual,
                                 const char* op, const cuda::Reduced* x16) {
  const Tensor& w_in = *st.weight;
  const Tensor* bias_in = st.bias;
  const Conv2dParams& p = st.params;
  cuda::require(x_in.dim() == 4 && w_in.dim() == 4, op,
                "x " + shape_str(x_in.shape()) + " and weight " + shape_str(w_in.shape()) +
                    " must be 4-D");
  const int64_t n = x_in.size(0), ch = x_in.size(1), h = x_in.size(2), w = x_in.size(3);
  const int64_t o = w_in.size(0), kh = w_in.size(2), kw = w_in.size(3);
  cuda::require(p.groups >= 1 && ch % p.groups == 0 && o % p.groups == 0 &&
                    w_in.size(1) == ch / p.groups,
                op,
                "weight " + shape_str(w_in.shape()) + " does not fit x " + shape_str(x_in.shape()) +
                    " with groups " + std::to_string(p.groups));
  cuda::require(!bias_in || (bias_in->dim() == 1 && bias_in->size(0) == o), op,
                "bias shape does not match weight " + shape_str(w_in.shape()));
  const int64_t ho = conv2d_out_h(p, h, kh);
  const int64_t wo = conv2d_out_w(p, w, kw);
  cuda::require(ho > 0 && wo > 0, op, "empty output for input " + shape_str(x_in.shape()));
  const Shape out_shape{n, o, ho, wo};
  cuda::require(!residual || residual->shape() == out_shape, op,
                "residual " + (residual ? shape_str(residual->shape()) : std::string()) +
                    " does not match the output " + shape_str(out_shape));
  cuda::require(!st.channel_add || st.channel_add->shape() == Shape{n, o}, op,
                "channel_add " + (st.channel_add ? shape_str(st.channel_add->shape()) : "") +
                    " is not [N, C] of the output " + shape_str(out_shape));

  cuda::Context& c = *ctx_;
  // Device copies of the epilogue's operands, alive until its launch is queued.
  Tensor b, add, skip;
  cuda::Epilogue e;
  if (bias_in) e.bias = (b = c.input(*bias_in)).raw_data();
  if (st.channel_add) e.channel_add = (add = c.input(*st.channel_add)).raw_data();
  if (residual) e.residual = (skip = c.input(*residual)).raw_data();
  e.act = st.act;
  if (dtype_ != ComputeDtype::kFloat32) {
    Tensor out = c.empty(out_shape);
    if (n > 0 && o > 0)
      conv2d_reduced(x16 ? *x16 : c.reduced(x_in, false), x_in.shape(), w_in, p, e, out);
    return out;
  }
  const Tensor x = c.input(x_in), wt = c.input(w_in);
  Tensor out = c.empty(out_shape);
  if (n == 0) return out;
  const TensorDesc xd(n, ch, h, w), yd(n, o, ho, wo);
  const FilterDesc wd(o, ch / p.groups, kh, kw);
  const ConvDesc cd(p);

  cuda::ConvAlgo algo;
  {
    const std::vector<int64_t> key{n, ch, h, w, o, kh, kw, p.stride_h, p.stride_w, p.pad_h,
                                   p.pad_w, p.dilation_h, p.dilation_w, p.groups};
    std::lock_guard<std::mutex> lock(c.conv_mutex);
    auto it = c.conv_algos.find(key);
    if (it == c.conv_algos.end()) it = c.conv_algos.emplace(key, choose_algo(c, xd, wd, cd, yd)).first;
    algo = it->second;
  }
  const std::shared_ptr<void> workspace = c.scratch(algo.workspace_bytes);
  const float one = 1.f, zero = 0.f;
  cuda::check(cudnnConvolutionForward(c.cudnn, &one, xd.d, x.raw_data(), wd.d, wt.raw_data(), cd.d,
                                      algo.algo, workspace.get(), algo.workspace_bytes, &zero,
                                      yd.d, out.raw_data()),
              "conv2d (cudnnConvolutionForward)");
  cuda::apply_epilogue(c, out.raw_data(), out.raw_data(), out.numel(), ho * wo, o, e);
  return out;
}

}  // namespace sdvsr
