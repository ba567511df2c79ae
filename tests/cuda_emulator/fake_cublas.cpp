// The cuBLAS calls the CUDA backend makes, on the emulated device
// (emulated_device.h): a host implementation with cuBLAS's documented
// semantics, linked in place of libcublas in tests without a GPU.
//
// Every call checks its arguments at once, on the calling thread, and answers
// bad ones with the status cuBLAS documents; device pointers must lie in live
// device allocations (else the test stops: a GPU would fault). The product
// itself is queued on the handle's stream and runs in stream order, with the
// scalars read at call time (pointer mode host, the only one supported).
//
// Semantics: column-major storage; C = alpha * op(A) * op(B) + beta * C with
// op = N or T (C is T for real types); beta == 0 does not read C, alpha == 0 or
// k == 0 does not read A and B (C = beta * C), as reference BLAS. Each entry of
// the product is one float32 sum in k order, one fused multiply-add a step
// (a GPU's FFMA; large products: oneDNN's sgemm, see kLargeProduct), then
// scaled; 16-bit operands are widened exactly and a 16-bit C is rounded to
// nearest even. The math mode is checked and stored but
// changes nothing: no TF32 or other reduced-precision emulation.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include <dnnl.h>

#include "cuda_emulator/emulated_device.h"
#include "cuda_emulator/emulated_elements.h"

// The opaque handle cublas_api.h declares.
struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

namespace emu = sdvsr::emulated;

// Products of at least this many multiply-adds run through oneDNN's sgemm
// (the golden models' sizes would take minutes through the loop); the op
// tests' small ones keep the loop, one fused multiply-add a step.
constexpr int64_t kLargeProduct = int64_t{1} << 20;

// ---- live handles: a destroyed (or invented) handle stops the test ----

std::mutex& handles_mutex() {
  static std::mutex* m = new std::mutex;  // never destroyed: usable at exit
  return *m;
}
std::unordered_set<const cublasContext*>& live_handles() {
  static auto* s = new std::unordered_set<const cublasContext*>;
  return *s;
}

// cuBLAS answers a null handle with NOT_INITIALIZED; a non-null one it did not
// create (or already destroyed) is a use of freed memory.
cublasStatus_t check_handle(cublasHandle_t h, const char* what) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  std::lock_guard<std::mutex> lock(handles_mutex());
  if (!live_handles().count(h)) {
    char at[32];
    std::snprintf(at, sizeof at, "%p", static_cast<const void*>(h));
    emu::fail(what, std::string("handle ") + at +
                        " is not a live cuBLAS handle (destroyed, or not from cublasCreate)");
  }
  return CUBLAS_STATUS_SUCCESS;
}

// ---- element types ----

using emu::Elem;
using emu::elem_size;
using emu::load;
using emu::store;

const char* elem_name(Elem e) {
  switch (e) {
    case Elem::kF32: return "float32";
    case Elem::kF16: return "float16";
    case Elem::kBF16: return "bfloat16";
  }
  return "?";
}

// The supported element type of a cudaDataType, or false.
bool elem_of(cudaDataType t, Elem* e) {
  switch (t) {
    case CUDA_R_32F: *e = Elem::kF32; return true;
    case CUDA_R_16F: *e = Elem::kF16; return true;
    case CUDA_R_16BF: *e = Elem::kBF16; return true;
    default: return false;
  }
}

// p + elements * size, as an address (elements may be negative: a negative stride).
const void* offset(const void* p, int64_t elements, size_t size) {
  return reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) +
                                       static_cast<uintptr_t>(elements *
                                                              static_cast<int64_t>(size)));
}

// Stops the test unless a batched column-major matrix (rows x cols, leading
// dimension ld, `batch` items `stride` elements apart) lies in one device
// allocation. rows, cols, batch > 0.
void require_device(const char* what, const char* name, const void* base, int64_t rows,
                    int64_t cols, int64_t ld, long long stride, int64_t batch, Elem e) {
  const int64_t span = (cols - 1) * ld + rows;  // elements from the first to one past the last
  int64_t shift = 0;
  const bool overflow = __builtin_mul_overflow(batch - 1, static_cast<int64_t>(stride), &shift);
  const int64_t lo = std::min<int64_t>(0, shift), hi = std::max<int64_t>(0, shift) + span;
  const size_t bytes = static_cast<size_t>(hi - lo) * elem_size(e);
  const std::string shape = std::string(name) + " (" + std::to_string(rows) + " x " +
                            std::to_string(cols) + " " + elem_name(e) + ", ld " +
                            std::to_string(ld) +
                            (batch > 1 ? ", stride " + std::to_string(stride) + ", batch " +
                                             std::to_string(batch)
                                       : std::string()) +
                            ")";
  if (overflow) emu::fail(what, shape + " spans more than the address space");
  const void* start = offset(base, lo, elem_size(e));
  if (!emu::is_device_range(start, bytes)) {
    char at[32];
    std::snprintf(at, sizeof at, "%p", start);
    emu::fail(what, shape + " is not device memory covering " + std::to_string(bytes) +
                        " bytes from " + at);
  }
}

bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

// The checks every gemm documents (INVALID_VALUE): operations N, T or C;
// m, n, k, batchCount >= 0; lda >= max(1, rows of A as stored), ldb likewise,
// ldc >= max(1, m); alpha and beta given.
cublasStatus_t check_gemm_args(cublasHandle_t handle, const char* what, cublasOperation_t transa,
                               cublasOperation_t transb, int m, int n, int k, const void* alpha,
                               int lda, int ldb, const void* beta, int ldc, int batch) {
  if (cublasStatus_t s = check_handle(handle, what); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const int a_rows = transa == CUBLAS_OP_N ? m : k;
  const int b_rows = transb == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

// One (batched) product, arguments already checked: device ranges checked now,
// the product queued on the handle's stream.
cublasStatus_t submit_gemm(cublasHandle_t handle, const char* what, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, float alpha,
                           const void* A, Elem at, int lda, long long stride_a, const void* B,
                           Elem bt, int ldb, long long stride_b, float beta, void* C, Elem ct,
                           int ldc, long long stride_c, int batch) {
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;  // nothing to touch
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  const bool reads_ab = k > 0 && alpha != 0.f;
  if (reads_ab) {
    require_device(what, "A", A, ta ? k : m, ta ? m : k, lda, stride_a, batch, at);
    require_device(what, "B", B, tb ? n : k, tb ? k : n, ldb, stride_b, batch, bt);
  }
  require_device(what, "C", C, m, n, ldc, stride_c, batch, ct);

  cudaStream_t stream = handle->stream;
  auto work = [=] {
    // op(A) row i at ap[i * k], op(B) column j at bp[j * k], widened to float.
    std::vector<float> ap, bp;
    if (reads_ab) {
      ap.resize(static_cast<size_t>(m) * static_cast<size_t>(k));
      bp.resize(static_cast<size_t>(n) * static_cast<size_t>(k));
    }
    for (int64_t b = 0; b < batch; ++b) {
      const void* a = offset(A, b * stride_a, elem_size(at));
      const void* bb = offset(B, b * stride_b, elem_size(bt));
      void* c = const_cast<void*>(offset(C, b * stride_c, elem_size(ct)));
      if (reads_ab) {
        if (!ta) {  // op(A)(i, p) = A[i + p * lda]
          for (int64_t p = 0; p < k; ++p)
            for (int64_t i = 0; i < m; ++i) ap[i * k + p] = load(a, i + p * lda, at);
        } else {  // op(A)(i, p) = A[p + i * lda]
          for (int64_t i = 0; i < m; ++i)
            for (int64_t p = 0; p < k; ++p) ap[i * k + p] = load(a, p + i * lda, at);
        }
        if (!tb) {  // op(B)(p, j) = B[p + j * ldb]
          for (int64_t j = 0; j < n; ++j)
            for (int64_t p = 0; p < k; ++p) bp[j * k + p] = load(bb, p + j * ldb, bt);
        } else {  // op(B)(p, j) = B[j + p * ldb]
          for (int64_t p = 0; p < k; ++p)
            for (int64_t j = 0; j < n; ++j) bp[j * k + p] = load(bb, j + p * ldb, bt);
        }
      }
      if (reads_ab && int64_t{m} * n * k >= kLargeProduct) {
        // ap [m, k] times bp [n, k] transposed, row-major, by oneDNN's sgemm.
        std::vector<float> product(static_cast<size_t>(m) * static_cast<size_t>(n));
        if (dnnl_sgemm('N', 'T', m, n, k, 1.f, ap.data(), k, bp.data(), k, 0.f, product.data(),
                       n) != dnnl_success)
          emu::fail(what, "oneDNN's sgemm failed");
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = 0; i < m; ++i) {
            float r = alpha * product[static_cast<size_t>(i * n + j)];
            const int64_t ci = i + j * static_cast<int64_t>(ldc);
            if (beta != 0.f) r = r + beta * load(c, ci, ct);
            store(c, ci, ct, r);
          }
        continue;
      }
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) {
          float r = 0.f;
          if (reads_ab) {
            const float* ai = ap.data() + i * k;
            const float* bj = bp.data() + j * k;
            float acc = 0.f;
            for (int64_t p = 0; p < k; ++p) acc = std::fma(ai[p], bj[p], acc);
            r = alpha * acc;
          }
          const int64_t ci = i + j * static_cast<int64_t>(ldc);
          if (beta != 0.f) r = r + beta * load(c, ci, ct);  // beta == 0: C not read
          store(c, ci, ct, r);
        }
      }
    }
  };
  emu::enqueue(stream, what, std::move(work));
  return CUBLAS_STATUS_SUCCESS;
}

// cublasGemmEx's type table, as far as the emulator goes: A and B the same
// type of float32 / float16 / bfloat16, C float32 or the 16-bit input type,
// float32 compute (the default or pedantic kind; the _FAST_ kinds only for an
// all-float32 product, as documented). The scalars are then float.
cublasStatus_t ex_types(cudaDataType a_type, cudaDataType b_type, cudaDataType c_type,
                        cublasComputeType_t compute, cublasGemmAlgo_t algo, Elem* at, Elem* bt,
                        Elem* ct) {
  if (!elem_of(a_type, at) || !elem_of(b_type, bt) || !elem_of(c_type, ct))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (*at != *bt) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (*ct != Elem::kF32 && *ct != *at) return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool all_float = *at == Elem::kF32 && *ct == Elem::kF32;
  switch (compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
      break;
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
      if (!all_float) return CUBLAS_STATUS_NOT_SUPPORTED;
      break;
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const int a = static_cast<int>(algo);
  const bool known_algo = a == CUBLAS_GEMM_DEFAULT ||
                          (a >= CUBLAS_GEMM_ALGO0 && a <= CUBLAS_GEMM_ALGO23) ||
                          (a >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && a <= CUBLAS_GEMM_ALGO15_TENSOR_OP);
  if (!known_algo) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  cublasContext* h = new cublasContext;
  {
    std::lock_guard<std::mutex> lock(handles_mutex());
    live_handles().insert(h);
  }
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  if (cublasStatus_t s = check_handle(handle, "cublasDestroy"); s != CUBLAS_STATUS_SUCCESS)
    return s;
  {
    std::lock_guard<std::mutex> lock(handles_mutex());
    live_handles().erase(handle);
  }
  // Queued work holds no reference to the handle: it may still run later.
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (cublasStatus_t s = check_handle(handle, "cublasSetStream"); s != CUBLAS_STATUS_SUCCESS)
    return s;
  handle->stream = streamId;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (cublasStatus_t s = check_handle(handle, "cublasSetMathMode"); s != CUBLAS_STATUS_SUCCESS)
    return s;
  // A base mode, optionally with the DISALLOW_REDUCED_PRECISION_REDUCTION flag.
  const int base = static_cast<int>(mode) &
                   ~static_cast<int>(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  switch (base) {
    case CUBLAS_DEFAULT_MATH:
    case CUBLAS_TENSOR_OP_MATH:
    case CUBLAS_PEDANTIC_MATH:
    case CUBLAS_TF32_TENSOR_OP_MATH:
    case CUBLAS_FP32_EMULATED_BF16X9_MATH:
    case CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH:
      break;
    default:
      return CUBLAS_STATUS_INVALID_VALUE;
  }
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const float* alpha, const float* A, int lda,
                                           const float* B, int ldb, const float* beta, float* C,
                                           int ldc) {
  const char* what = "cublasSgemm";
  if (cublasStatus_t s =
          check_gemm_args(handle, what, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, 1);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  return submit_gemm(handle, what, transa, transb, m, n, k, *alpha, A, Elem::kF32, lda, 0, B,
                     Elem::kF32, ldb, 0, *beta, C, Elem::kF32, ldc, 0, 1);
}

cublasStatus_t CUBLASWINAPI cublasSgemmStridedBatched(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const float* alpha, const float* A, int lda, long long int strideA, const float* B, int ldb,
    long long int strideB, const float* beta, float* C, int ldc, long long int strideC,
    int batchCount) {
  const char* what = "cublasSgemmStridedBatched";
  if (cublasStatus_t s = check_gemm_args(handle, what, transa, transb, m, n, k, alpha, lda, ldb,
                                         beta, ldc, batchCount);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  return submit_gemm(handle, what, transa, transb, m, n, k, *alpha, A, Elem::kF32, lda, strideA,
                     B, Elem::kF32, ldb, strideB, *beta, C, Elem::kF32, ldc, strideC, batchCount);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb,
                                         const void* beta, void* C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  const char* what = "cublasGemmEx";
  if (cublasStatus_t s =
          check_gemm_args(handle, what, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, 1);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  Elem at, bt, ct;
  if (cublasStatus_t s = ex_types(Atype, Btype, Ctype, computeType, algo, &at, &bt, &ct);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  return submit_gemm(handle, what, transa, transb, m, n, k, *static_cast<const float*>(alpha), A,
                     at, lda, 0, B, bt, ldb, 0, *static_cast<const float*>(beta), C, ct, ldc, 0, 1);
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA,
    const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  const char* what = "cublasGemmStridedBatchedEx";
  if (cublasStatus_t s = check_gemm_args(handle, what, transa, transb, m, n, k, alpha, lda, ldb,
                                         beta, ldc, batchCount);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  Elem at, bt, ct;
  if (cublasStatus_t s = ex_types(Atype, Btype, Ctype, computeType, algo, &at, &bt, &ct);
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  return submit_gemm(handle, what, transa, transb, m, n, k, *static_cast<const float*>(alpha), A,
                     at, lda, strideA, B, bt, ldb, strideB, *static_cast<const float*>(beta), C, ct,
                     ldc, strideC, batchCount);
}

}  // extern "C"
