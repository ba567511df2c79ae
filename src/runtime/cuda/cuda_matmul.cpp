// linear and batched matmul through cuBLAS sgemm (pedantic float32: no TF32).
// cuBLAS is column-major: a row-major [M, N] = [M, K] x [K, N] product is
// computed as its transpose, C^T = B^T A^T, which needs no copies.
// A float16 / bfloat16 backend rounds both operands to 16 bits (weights once,
// cached; activations per call) and runs cublasGemmEx with float32
// accumulation and a float32 result, the same transposed geometry.
// The bias, a skip connection or the GEGLU follow in one pass (cuda_epilogue.cu).
#include <algorithm>
#include <string>

#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/cuda_context.h"

namespace sdvsr {

Tensor CudaBackend::product_rows(const Tensor& x_in, const Tensor& w_in, const char* op) {
  cuda::require(x_in.dim() >= 1 && w_in.dim() == 2 && x_in.size(-1) == w_in.size(1), op,
                "x " + shape_str(x_in.shape()) + " does not fit weight " + shape_str(w_in.shape()));
  const int64_t in = w_in.size(1), out_f = w_in.size(0);
  cuda::Context& c = *ctx_;
  const bool reduced = dtype_ != ComputeDtype::kFloat32;
  // A reduced backend reads the weight's 16-bit copy only (no float32 upload kept).
  const Tensor x = c.input(x_in), w = reduced ? Tensor() : c.input(w_in);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = c.empty(out_shape);
  const int64_t rows = out_f > 0 ? out.numel() / out_f : 0;  // also when in == 0
  if (rows == 0) return out;
  if (in == 0) {
    cuda::check(cudaMemsetAsync(out.raw_data(), 0, out.numel() * sizeof(float), c.stream), op);
  } else if (reduced) {
    const cuda::Reduced w16 = c.reduced(w_in, /*weight=*/true), x16 = c.reduced(x, false);
    const cudaDataType_t t16 = cuda::cublas_type(dtype_);
    const float one = 1.f, zero = 0.f;
    cuda::check(cublasGemmEx(c.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_f),
                             static_cast<int>(rows), static_cast<int>(in), &one, w16.get(), t16,
                             static_cast<int>(in), x16.get(), t16, static_cast<int>(in), &zero,
                             out.raw_data(), CUDA_R_32F, static_cast<int>(out_f),
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "linear (cublasGemmEx)");
  } else {
    // out^T [out_f, rows] = W [out_f, in] (W^T seen column-major) x x^T [in, rows].
    const float one = 1.f, zero = 0.f;
    cuda::check(cublasSgemm(c.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_f),
                            static_cast<int>(rows), static_cast<int>(in), &one, w.raw_data(),
                            static_cast<int>(in), x.raw_data(), static_cast<int>(in), &zero,
                            out.raw_data(), static_cast<int>(out_f)),
                "linear (cublasSgemm)");
  }
  return out;
}

namespace {

// A bias [out] for weight [out, in], checked.
void require_bias(const Tensor* bias, const Tensor& w, const char* op) {
  cuda::require(!bias || (bias->dim() == 1 && w.dim() == 2 && bias->size(0) == w.size(0)), op,
                "bias does not match weight " + shape_str(w.shape()));
}

// y [..., inner] = geglu of `both` [..., 2 * inner], the bias (may be null)
// added to each half first.
Tensor geglu_of(cuda::Context& c, const Tensor& both, const Tensor* bias_in) {
  const int64_t inner = both.size(-1) / 2;
  Shape out_shape = both.shape();
  out_shape.back() = inner;
  Tensor out = c.empty(out_shape);
  Tensor b;
  if (bias_in) b = c.input(*bias_in);
  cuda::geglu_rows(c, both.raw_data(), bias_in ? b.raw_data() : nullptr, out.raw_data(),
                   inner > 0 ? out.numel() / inner : 0, inner);
  return out;
}

}  // namespace

// (x W^T + bias) + residual (when given): the tail in one pass after the product.
Tensor CudaBackend::linear_fused(const Tensor& x, const Tensor& w, const Tensor* bias_in,
                                 const Tensor* residual_in, const char* op) {
  require_bias(bias_in, w, op);
  Tensor out = product_rows(x, w, op);
  cuda::require(!residual_in || residual_in->shape() == out.shape(), op,
                "residual " + (residual_in ? shape_str(residual_in->shape()) : std::string()) +
                    " does not match the output " + shape_str(out.shape()));
  if (out.numel() == 0) return out;
  cuda::Context& c = *ctx_;
  Tensor b, residual;
  cuda::Epilogue e;
  if (bias_in) e.bias = (b = c.input(*bias_in)).raw_data();
  if (residual_in) e.residual = (residual = c.input(*residual_in)).raw_data();
  cuda::apply_epilogue(c, out.raw_data(), out.raw_data(), out.numel(), 1, w.size(0), e);
  return out;
}

Tensor CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  return linear_fused(x, w, bias, nullptr, "linear");
}

Tensor CudaBackend::linear_add(const Tensor& x, const Tensor& w, const Tensor* bias,
                               const Tensor& residual) {
  return linear_fused(x, w, bias, &residual, "linear_add");
}

// One product of both halves [..., 2 * inner], then hidden * gelu(gate) with
// each half's bias, in one pass.
Tensor CudaBackend::linear_geglu(const Tensor& x, const Tensor& w, const Tensor* bias) {
  cuda::require(w.dim() == 2 && w.size(0) % 2 == 0, "linear_geglu",
                "weight " + shape_str(w.shape()) + " needs an even output count (hidden | gate)");
  require_bias(bias, w, "linear_geglu");
  return geglu_of(*ctx_, product_rows(x, w, "linear_geglu"), bias);
}

Tensor CudaBackend::geglu(const Tensor& x_in) {
  cuda::require(x_in.dim() >= 1 && x_in.size(-1) % 2 == 0, "geglu",
                "x " + shape_str(x_in.shape()) + " needs an even last dimension (hidden | gate)");
  cuda::Context& c = *ctx_;
  return geglu_of(c, c.input(x_in), nullptr);
}

Tensor CudaBackend::matmul(const Tensor& a_in, const Tensor& b_in, bool transpose_b) {
  cuda::require(a_in.dim() == 3 && b_in.dim() == 3 && a_in.size(0) == b_in.size(0), "matmul",
                "a " + shape_str(a_in.shape()) + " and b " + shape_str(b_in.shape()) +
                    " must be [B, M, K] and [B, K, N] (or [B, N, K])");
  const int64_t batch = a_in.size(0), m = a_in.size(1), k = a_in.size(2);
  const int64_t n = transpose_b ? b_in.size(1) : b_in.size(2);
  cuda::require((transpose_b ? b_in.size(2) : b_in.size(1)) == k, "matmul",
                "inner sizes differ: a " + shape_str(a_in.shape()) + ", b " +
                    shape_str(b_in.shape()));
  cuda::Context& c = *ctx_;
  const bool reduced = dtype_ != ComputeDtype::kFloat32;
  const Tensor a = c.input(a_in), b = reduced ? Tensor() : c.input(b_in);
  Tensor out = c.empty({batch, m, n});
  if (batch == 0 || m == 0 || n == 0) return out;
  if (k == 0) {
    cuda::check(cudaMemsetAsync(out.raw_data(), 0, out.numel() * sizeof(float), c.stream), "matmul");
    return out;
  }
  // C^T [n, m] = op(B^T) [n, k] x A^T [k, m], per batch item.
  const float one = 1.f, zero = 0.f;
  if (reduced) {
    const cuda::Reduced a16 = c.reduced(a, false), b16 = c.reduced(b_in, false);
    const cudaDataType_t t16 = cuda::cublas_type(dtype_);
    cuda::check(cublasGemmStridedBatchedEx(
                    c.cublas, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                    static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one, b16.get(),
                    t16, static_cast<int>(transpose_b ? k : n), k * n, a16.get(), t16,
                    static_cast<int>(k), m * k, &zero, out.raw_data(), CUDA_R_32F,
                    static_cast<int>(n), m * n, static_cast<int>(batch), CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT),
                "matmul (cublasGemmStridedBatchedEx)");
    return out;
  }
  cuda::check(cublasSgemmStridedBatched(
                  c.cublas, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                  static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one,
                  b.raw_data(), static_cast<int>(transpose_b ? k : n), k * n, a.raw_data(),
                  static_cast<int>(k), m * k, &zero, out.raw_data(), static_cast<int>(n), m * n,
                  static_cast<int>(batch)),
              "matmul (cublasSgemmStridedBatched)");
  return out;
}

}  // namespace sdvsr
