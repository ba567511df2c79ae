// The cuDNN calls the CUDA backend makes (the legacy convolution API), on the
// emulated device (emulated_device.h): a host implementation with cuDNN's
// documented semantics, linked in place of libcudnn in tests without a GPU.
//
// Every call checks its arguments at once, on the calling thread, and answers
// bad ones with the status cuDNN documents; device pointers must lie in live
// device allocations (else the test stops: a GPU would fault). The arithmetic
// is queued on the handle's stream and runs in stream order, with the
// descriptors' contents and the scalars read at call time.
//
// What it covers: 4-D NCHW tensors and filters of float32, float16 or
// bfloat16; 2-D convolutions (padding, stride, dilation, groups, cross-
// correlation or true convolution) in the FLOAT, PSEUDO_HALF and
// PSEUDO_BFLOAT16 configurations (float32 compute; anything else answers
// NOT_SUPPORTED). The forward algorithms IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM
// and GEMM all run one direct loop (large ones: see kLargeConvolution): per
// output, a float32 sum over (channel, filter row, filter column), one fused
// multiply-add a step, then
// y = alpha * sum + beta * y (beta == 0: y not read) rounded to y's type.
// The other algorithms are listed by the heuristic as NOT_SUPPORTED.
// Workspace: none for IMPLICIT_GEMM; PRECOMP_GEMM and GEMM need some, the
// former more with tensor-op math than without, so a size asked under one
// math type and run under another is caught (BAD_PARAM, as too small a
// workspace); the call overwrites the part it needs with NaN bytes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "cuda_emulator/emulated_device.h"
#include "cuda_emulator/emulated_elements.h"
#include "runtime/backend.h"
#include "runtime/tensor.h"

// Convolutions of at least this many multiply-adds run through the CPU
// backend (oneDNN) instead of the direct loop, which the golden models'
// sizes would take minutes through; the small ones of the op tests keep the
// loop, which shares no code with the CPU backend they are compared with.
constexpr int64_t kLargeConvolution = int64_t{1} << 20;

// The legacy API is deprecated in cuDNN 9 (its typedefs and functions carry
// the attribute); this file implements it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// The opaque types the cuDNN headers declare.
struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;  // by cudnnSetConvolution2dDescriptor
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  int groups = 1;                            // cuDNN's default
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // cuDNN's default
};

namespace {

namespace emu = sdvsr::emulated;

// ---- live objects: a destroyed (or invented) handle or descriptor stops the test ----

template <class T>
std::string address(const T* p) {
  char at[32];
  std::snprintf(at, sizeof at, "%p", static_cast<const void*>(p));
  return at;
}

template <class T>
struct Live {
  static std::mutex& mutex() {
    static std::mutex* m = new std::mutex;  // never destroyed: usable at exit
    return *m;
  }
  static std::unordered_set<const T*>& set() {
    static auto* s = new std::unordered_set<const T*>;
    return *s;
  }
  static void add(const T* p) {
    std::lock_guard<std::mutex> lock(mutex());
    set().insert(p);
  }
  static bool remove(const T* p) {
    std::lock_guard<std::mutex> lock(mutex());
    return set().erase(p) == 1;
  }
  // p non-null.
  static void require(const T* p, const char* what, const char* kind) {
    std::lock_guard<std::mutex> lock(mutex());
    if (!set().count(p))
      emu::fail(what, std::string(kind) + " " + address(p) +
                          " is not live (destroyed, or not created by cuDNN)");
  }
};

// Null: BAD_PARAM. Non-null but not live: stop the test.
template <class T>
bool usable(const T* p, const char* what, const char* kind) {
  if (!p) return false;
  Live<T>::require(p, what, kind);
  return true;
}

template <class T>
cudnnStatus_t create(T** out) {
  if (!out) return CUDNN_STATUS_BAD_PARAM;
  T* p = new T;
  Live<T>::add(p);
  *out = p;
  return CUDNN_STATUS_SUCCESS;
}

// Destroying a null descriptor is a no-op; one not live is a double free.
template <class T>
cudnnStatus_t destroy(T* p, const char* what, const char* kind) {
  if (!p) return CUDNN_STATUS_SUCCESS;
  if (!Live<T>::remove(p))
    emu::fail(what, std::string(kind) + " " + address(p) +
                        " is not live (destroyed twice, or not created by cuDNN)");
  delete p;
  return CUDNN_STATUS_SUCCESS;
}

// ---- element types ----

using emu::Elem;
using emu::elem_size;
using emu::load;
using emu::store;

Elem elem_of(cudnnDataType_t t) {
  return t == CUDNN_DATA_HALF ? Elem::kF16 : t == CUDNN_DATA_BFLOAT16 ? Elem::kBF16 : Elem::kF32;
}

// A cudnnDataType_t enumerant at all (else BAD_PARAM), and one the emulator
// stores (else NOT_SUPPORTED).
bool valid_type(cudnnDataType_t t) {
  const int v = static_cast<int>(t);
  return v >= CUDNN_DATA_FLOAT && v <= CUDNN_DATA_COMPLEX_FP64;
}
bool emulated_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

cudnnStatus_t check_type_and_format(cudnnDataType_t type, cudnnTensorFormat_t format) {
  const int f = static_cast<int>(format);
  if (!valid_type(type) || f < CUDNN_TENSOR_NCHW || f > CUDNN_TENSOR_NCHW_VECT_C)
    return CUDNN_STATUS_BAD_PARAM;
  if (!emulated_type(type) || format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
  return CUDNN_STATUS_SUCCESS;
}

const char* type_name(cudnnDataType_t t) {
  return t == CUDNN_DATA_HALF ? "float16" : t == CUDNN_DATA_BFLOAT16 ? "bfloat16" : "float32";
}

std::vector<float> widen(const void* p, int64_t count, Elem e) {
  std::vector<float> out(static_cast<size_t>(count));
  if (e == Elem::kF32) {
    std::memcpy(out.data(), p, out.size() * sizeof(float));
  } else {
    for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = load(p, i, e);
  }
  return out;
}

// Stops the test unless [p, p + bytes) lies in one device allocation.
void require_device(const char* what, const std::string& name, const void* p, size_t bytes) {
  if (emu::is_device_range(p, bytes)) return;
  char at[32];
  std::snprintf(at, sizeof at, "%p", p);
  emu::fail(what, name + " is not device memory covering " + std::to_string(bytes) +
                      " bytes from " + at);
}

std::string dims(int a, int b, int c, int d, cudnnDataType_t t) {
  std::string s = "[";  // appended step by step: g++ 12 warns (-Wrestrict) on the chain of +
  for (int v : {a, b, c, d}) s.append(std::to_string(v)).append(", ");
  s.resize(s.size() - 2);
  return s.append("] ").append(type_name(t));
}

cudnnStatus_t check_handle(cudnnHandle_t h, const char* what) {
  return usable(h, what, "cuDNN handle") ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

// ---- convolution geometry ----

struct ConvGeom {
  int64_t n, c, h, w;     // x
  int64_t k, cg, r, s;    // w: [k, cg = c / groups, r, s]
  int64_t p, q;           // y: [n, k, p, q]
  int64_t pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, groups;
  bool flip;              // CUDNN_CONVOLUTION: the filter is flipped
  cudnnDataType_t type;   // of x, w and y
  cudnnMathType_t math;   // the descriptor's, at the time of the call
};

// Checks x, w and conv (and y when given) describe a convolution, and fills g.
// BAD_PARAM as cuDNN documents for the forward pass (null or unset descriptors,
// different data types, channels that do not fit the groups, a filter larger
// than the padded input, y's batch or channels wrong); NOT_SUPPORTED for y's
// spatial size not the output's (documented so) and for configurations the
// emulator does not run (compute type other than float32).
cudnnStatus_t conv_geometry(const char* what, cudnnTensorDescriptor_t x,
                            cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                            cudnnTensorDescriptor_t y, bool need_y, ConvGeom* g) {
  if (!usable(x, what, "tensor descriptor") || !usable(w, what, "filter descriptor") ||
      !usable(conv, what, "convolution descriptor"))
    return CUDNN_STATUS_BAD_PARAM;
  if (need_y && !usable(y, what, "tensor descriptor")) return CUDNN_STATUS_BAD_PARAM;
  if (!x->set || !w->set || !conv->set || (need_y && !y->set)) return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || (need_y && y->type != x->type)) return CUDNN_STATUS_BAD_PARAM;
  const int64_t groups = conv->groups;
  if (int64_t{w->c} * groups != x->c || w->k % groups != 0) return CUDNN_STATUS_BAD_PARAM;
  const int64_t ext_h = int64_t{w->h - 1} * conv->dilation_h + 1;
  const int64_t ext_w = int64_t{w->w - 1} * conv->dilation_w + 1;
  const int64_t in_h = x->h + 2 * int64_t{conv->pad_h}, in_w = x->w + 2 * int64_t{conv->pad_w};
  if (ext_h > in_h || ext_w > in_w) return CUDNN_STATUS_BAD_PARAM;
  *g = ConvGeom{x->n,
                x->c,
                x->h,
                x->w,
                w->k,
                w->c,
                w->h,
                w->w,
                (in_h - ext_h) / conv->stride_h + 1,
                (in_w - ext_w) / conv->stride_w + 1,
                conv->pad_h,
                conv->pad_w,
                conv->stride_h,
                conv->stride_w,
                conv->dilation_h,
                conv->dilation_w,
                groups,
                conv->mode == CUDNN_CONVOLUTION,
                x->type,
                conv->math};
  if (!need_y) return CUDNN_STATUS_SUCCESS;
  if (y->n != x->n || y->c != w->k) return CUDNN_STATUS_BAD_PARAM;
  if (y->h != g->p || y->w != g->q) return CUDNN_STATUS_NOT_SUPPORTED;
  // FLOAT, PSEUDO_HALF and PSEUDO_BFLOAT16 configurations only (TRUE_HALF,
  // double and the integer ones are not emulated).
  if (conv->compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  return CUDNN_STATUS_SUCCESS;
}

bool tensor_ops(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

bool valid_algo(cudnnConvolutionFwdAlgo_t a) {
  const int v = static_cast<int>(a);
  return v >= 0 && v < CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
}

// The algorithms the emulator runs, in the heuristic's order, and the ones it
// lists as NOT_SUPPORTED after them.
constexpr cudnnConvolutionFwdAlgo_t kRunAlgos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
constexpr cudnnConvolutionFwdAlgo_t kRefusedAlgos[] = {
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_CONVOLUTION_FWD_ALGO_FFT,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
    CUDNN_CONVOLUTION_FWD_ALGO_DIRECT};
constexpr int kMaxAlgoResults = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;  // 8

bool runs(cudnnConvolutionFwdAlgo_t a) {
  return std::find(std::begin(kRunAlgos), std::end(kRunAlgos), a) != std::end(kRunAlgos);
}

// The workspace an algorithm the emulator runs needs under a math type:
// IMPLICIT_GEMM none; PRECOMP_GEMM a table of 8 bytes per filter tap (twice
// that with tensor ops); GEMM one image's im2col matrix.
size_t workspace_bytes(const ConvGeom& g, cudnnConvolutionFwdAlgo_t algo, cudnnMathType_t math) {
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      return static_cast<size_t>(g.cg * g.r * g.s) * 8 * (tensor_ops(math) ? 2 : 1);
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
      return static_cast<size_t>(g.c * g.r * g.s * g.p * g.q) * elem_size(elem_of(g.type));
    default:
      return 0;
  }
}

const char* status_name(cudnnStatus_t s) {
  switch (static_cast<int>(s)) {
#define SDVSR_STATUS(name) \
  case name: return #name;
    SDVSR_STATUS(CUDNN_STATUS_SUCCESS)
    SDVSR_STATUS(CUDNN_STATUS_NOT_INITIALIZED)
    SDVSR_STATUS(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_DEPRECATED)
    SDVSR_STATUS(CUDNN_STATUS_LICENSE_ERROR)
    SDVSR_STATUS(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
    SDVSR_STATUS(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
    SDVSR_STATUS(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
    SDVSR_STATUS(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
    SDVSR_STATUS(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_EXECUTION_FAILED)
    SDVSR_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    SDVSR_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
    SDVSR_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
    SDVSR_STATUS(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef SDVSR_STATUS
    case 2001: return "CUDNN_STATUS_INVALID_VALUE";  // deprecated, its own code
    default: return "CUDNN_UNKNOWN_STATUS_FOUND";
  }
}

}  // namespace

extern "C" {

const char* CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status) { return status_name(status); }

// ---- handle ----

cudnnStatus_t CUDNNWINAPI cudnnCreate(cudnnHandle_t* handle) { return create(handle); }

cudnnStatus_t CUDNNWINAPI cudnnDestroy(cudnnHandle_t handle) {
  // Queued work holds no reference to the handle: it may still run later.
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  return destroy(handle, "cudnnDestroy", "cuDNN handle");
}

cudnnStatus_t CUDNNWINAPI cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (cudnnStatus_t s = check_handle(handle, "cudnnSetStream"); s != CUDNN_STATUS_SUCCESS) return s;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

// ---- tensor and filter descriptors ----

cudnnStatus_t CUDNNWINAPI cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) {
  return create(tensorDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
  return destroy(tensorDesc, "cudnnDestroyTensorDescriptor", "tensor descriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                                     cudnnTensorFormat_t format,
                                                     cudnnDataType_t dataType, int n, int c,
                                                     int h, int w) {
  if (!usable(tensorDesc, "cudnnSetTensor4dDescriptor", "tensor descriptor"))
    return CUDNN_STATUS_BAD_PARAM;
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (cudnnStatus_t s = check_type_and_format(dataType, format); s != CUDNN_STATUS_SUCCESS)
    return s;
  *tensorDesc = cudnnTensorStruct{true, dataType, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) {
  return create(filterDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
  return destroy(filterDesc, "cudnnDestroyFilterDescriptor", "filter descriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                                     cudnnDataType_t dataType,
                                                     cudnnTensorFormat_t format, int k, int c,
                                                     int h, int w) {
  if (!usable(filterDesc, "cudnnSetFilter4dDescriptor", "filter descriptor"))
    return CUDNN_STATUS_BAD_PARAM;
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (cudnnStatus_t s = check_type_and_format(dataType, format); s != CUDNN_STATUS_SUCCESS)
    return s;
  *filterDesc = cudnnFilterStruct{true, dataType, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

// ---- convolution descriptor ----

cudnnStatus_t CUDNNWINAPI
cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
  return create(convDesc);
}

cudnnStatus_t CUDNNWINAPI
cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
  return destroy(convDesc, "cudnnDestroyConvolutionDescriptor", "convolution descriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc,
                                                          int pad_h, int pad_w, int u, int v,
                                                          int dilation_h, int dilation_w,
                                                          cudnnConvolutionMode_t mode,
                                                          cudnnDataType_t computeType) {
  if (!usable(convDesc, "cudnnSetConvolution2dDescriptor", "convolution descriptor"))
    return CUDNN_STATUS_BAD_PARAM;
  if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
  if (!valid_type(computeType)) return CUDNN_STATUS_BAD_PARAM;
  convDesc->set = true;
  convDesc->pad_h = pad_h;
  convDesc->pad_w = pad_w;
  convDesc->stride_h = u;
  convDesc->stride_w = v;
  convDesc->dilation_h = dilation_h;
  convDesc->dilation_w = dilation_w;
  convDesc->mode = mode;
  convDesc->compute = computeType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc,
                                                        int groupCount) {
  if (!usable(convDesc, "cudnnSetConvolutionGroupCount", "convolution descriptor") ||
      groupCount < 1)
    return CUDNN_STATUS_BAD_PARAM;
  convDesc->groups = groupCount;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                                      cudnnMathType_t mathType) {
  if (!usable(convDesc, "cudnnSetConvolutionMathType", "convolution descriptor"))
    return CUDNN_STATUS_BAD_PARAM;
  const int m = static_cast<int>(mathType);
  if (m < CUDNN_DEFAULT_MATH || m > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
  convDesc->math = mathType;
  return CUDNN_STATUS_SUCCESS;
}

// ---- algorithm choice and workspace ----

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle,
                                                                      int* count) {
  if (cudnnStatus_t s = check_handle(handle, "cudnnGetConvolutionForwardAlgorithmMaxCount");
      s != CUDNN_STATUS_SUCCESS)
    return s;
  if (!count) return CUDNN_STATUS_BAD_PARAM;
  *count = kMaxAlgoResults;
  return CUDNN_STATUS_SUCCESS;
}

// The heuristic's list: the algorithms the emulator runs (with tensor-op math
// first when the descriptor allows tensor ops, then without: FMA math, or
// DEFAULT when that is the descriptor's), then the others as NOT_SUPPORTED;
// at most requestedAlgoCount and kMaxAlgoResults entries. A configuration the
// emulator does not run lists every algorithm as NOT_SUPPORTED.
cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  const char* what = "cudnnGetConvolutionForwardAlgorithm_v7";
  if (cudnnStatus_t s = check_handle(handle, what); s != CUDNN_STATUS_SUCCESS) return s;
  if (!returnedAlgoCount || !perfResults || requestedAlgoCount <= 0) return CUDNN_STATUS_BAD_PARAM;
  ConvGeom g{};
  const cudnnStatus_t geometry = conv_geometry(what, srcDesc, filterDesc, convDesc, destDesc,
                                               true, &g);
  if (geometry == CUDNN_STATUS_BAD_PARAM) return geometry;

  std::vector<cudnnConvolutionFwdAlgoPerf_t> list;
  auto add = [&](cudnnConvolutionFwdAlgo_t algo, cudnnStatus_t status, cudnnMathType_t math) {
    cudnnConvolutionFwdAlgoPerf_t r;
    std::memset(&r, 0, sizeof r);
    r.algo = algo;
    r.status = status;
    const bool ok = status == CUDNN_STATUS_SUCCESS;
    r.time = ok ? 0.01f * static_cast<float>(list.size() + 1) : -1.f;
    r.memory = ok ? workspace_bytes(g, algo, math) : 0;
    r.determinism = CUDNN_DETERMINISTIC;
    r.mathType = math;
    list.push_back(r);
  };
  const cudnnMathType_t plain =
      convDesc->math == CUDNN_DEFAULT_MATH ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  if (geometry == CUDNN_STATUS_SUCCESS) {
    if (tensor_ops(convDesc->math))
      for (cudnnConvolutionFwdAlgo_t a : kRunAlgos)
        add(a, CUDNN_STATUS_SUCCESS, CUDNN_TENSOR_OP_MATH);
    for (cudnnConvolutionFwdAlgo_t a : kRunAlgos) add(a, CUDNN_STATUS_SUCCESS, plain);
  } else {
    for (cudnnConvolutionFwdAlgo_t a : kRunAlgos) add(a, CUDNN_STATUS_NOT_SUPPORTED, plain);
  }
  for (cudnnConvolutionFwdAlgo_t a : kRefusedAlgos) add(a, CUDNN_STATUS_NOT_SUPPORTED, plain);

  const int returned =
      std::min({requestedAlgoCount, kMaxAlgoResults, static_cast<int>(list.size())});
  std::copy(list.begin(), list.begin() + returned, perfResults);
  *returnedAlgoCount = returned;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc,
    cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  const char* what = "cudnnGetConvolutionForwardWorkspaceSize";
  if (cudnnStatus_t s = check_handle(handle, what); s != CUDNN_STATUS_SUCCESS) return s;
  if (!sizeInBytes || !valid_algo(algo)) return CUDNN_STATUS_BAD_PARAM;
  ConvGeom g{};
  if (cudnnStatus_t s = conv_geometry(what, xDesc, wDesc, convDesc, yDesc, true, &g);
      s != CUDNN_STATUS_SUCCESS)
    return s;
  if (!runs(algo)) return CUDNN_STATUS_NOT_SUPPORTED;
  *sizeInBytes = workspace_bytes(g, algo, g.math);
  return CUDNN_STATUS_SUCCESS;
}

// ---- forward convolution ----

cudnnStatus_t CUDNNWINAPI cudnnConvolutionForward(
    cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnFilterDescriptor_t wDesc, const void* w,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo, void* workSpace,
    size_t workSpaceSizeInBytes, const void* beta, const cudnnTensorDescriptor_t yDesc, void* y) {
  const char* what = "cudnnConvolutionForward";
  if (cudnnStatus_t s = check_handle(handle, what); s != CUDNN_STATUS_SUCCESS) return s;
  if (!alpha || !beta || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
  ConvGeom g{};
  if (cudnnStatus_t s = conv_geometry(what, xDesc, wDesc, convDesc, yDesc, true, &g);
      s != CUDNN_STATUS_SUCCESS)
    return s;
  if (!valid_algo(algo)) return CUDNN_STATUS_BAD_PARAM;
  if (!runs(algo)) return CUDNN_STATUS_NOT_SUPPORTED;
  const size_t needed = workspace_bytes(g, algo, g.math);
  if (workSpaceSizeInBytes < needed) return CUDNN_STATUS_BAD_PARAM;

  const Elem e = elem_of(g.type);
  const size_t es = elem_size(e);
  const int64_t x_count = g.n * g.c * g.h * g.w, w_count = g.k * g.cg * g.r * g.s;
  const int64_t y_count = g.n * g.k * g.p * g.q;
  require_device(what, "x " + dims(xDesc->n, xDesc->c, xDesc->h, xDesc->w, g.type), x,
                 static_cast<size_t>(x_count) * es);
  require_device(what, "w " + dims(wDesc->k, wDesc->c, wDesc->h, wDesc->w, g.type), w,
                 static_cast<size_t>(w_count) * es);
  require_device(what, "y " + dims(yDesc->n, yDesc->c, yDesc->h, yDesc->w, g.type), y,
                 static_cast<size_t>(y_count) * es);
  if (workSpaceSizeInBytes > 0)
    require_device(what, "the workspace (" + std::to_string(workSpaceSizeInBytes) + " bytes)",
                   workSpace, workSpaceSizeInBytes);
  // float32 scalars in the FLOAT and PSEUDO_* configurations.
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);

  auto work = [g, e, x, w, y, workSpace, needed, a, b, x_count, w_count] {
    if (needed > 0) std::memset(workSpace, 0xff, needed);  // the algorithm's scratch
    const std::vector<float> xf = widen(x, x_count, e), wf = widen(w, w_count, e);
    const int64_t y_count = g.n * g.k * g.p * g.q;
    if (y_count * g.cg * g.r * g.s >= kLargeConvolution) {
      // The golden models' convolutions: the CPU backend's oneDNN sum, in float32.
      std::vector<float> wk = wf;
      if (g.flip)
        for (int64_t f = 0; f < g.k * g.cg; ++f)
          std::reverse(wk.begin() + f * g.r * g.s, wk.begin() + (f + 1) * g.r * g.s);
      sdvsr::Conv2dParams params;
      params.stride_h = static_cast<int>(g.stride_h);
      params.stride_w = static_cast<int>(g.stride_w);
      params.pad_h = static_cast<int>(g.pad_h);
      params.pad_w = static_cast<int>(g.pad_w);
      params.dilation_h = static_cast<int>(g.dil_h);
      params.dilation_w = static_cast<int>(g.dil_w);
      params.groups = static_cast<int>(g.groups);
      const sdvsr::Tensor sum = sdvsr::cpu_backend().conv2d(
          sdvsr::Tensor::from_vector({g.n, g.c, g.h, g.w}, xf),
          sdvsr::Tensor::from_vector({g.k, g.cg, g.r, g.s}, wk), nullptr, params);
      if (sum.numel() != y_count)
        emu::fail("cudnnConvolutionForward", "the CPU sum has another size");
      const float* o = sum.data();
      for (int64_t yi = 0; yi < y_count; ++yi) {
        float out = a * o[yi];
        if (b != 0.f) out = out + b * load(y, yi, e);
        store(y, yi, e, out);
      }
      return;
    }
    const int64_t k_per_group = g.k / g.groups;
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t k = 0; k < g.k; ++k) {
        const int64_t group = k / k_per_group;
        const float* wk = wf.data() + k * g.cg * g.r * g.s;
        for (int64_t p = 0; p < g.p; ++p) {
          for (int64_t q = 0; q < g.q; ++q) {
            float acc = 0.f;
            for (int64_t c = 0; c < g.cg; ++c) {
              const float* xc = xf.data() + ((n * g.c + group * g.cg + c) * g.h) * g.w;
              const float* wc = wk + c * g.r * g.s;
              for (int64_t r = 0; r < g.r; ++r) {
                const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
                if (ih < 0 || ih >= g.h) continue;
                const int64_t fr = g.flip ? g.r - 1 - r : r;
                for (int64_t s = 0; s < g.s; ++s) {
                  const int64_t iw = q * g.stride_w - g.pad_w + s * g.dil_w;
                  if (iw < 0 || iw >= g.w) continue;
                  const int64_t fs = g.flip ? g.s - 1 - s : s;
                  acc = std::fma(xc[ih * g.w + iw], wc[fr * g.s + fs], acc);
                }
              }
            }
            const int64_t yi = ((n * g.k + k) * g.p + p) * g.q + q;
            float out = a * acc;
            if (b != 0.f) out = out + b * load(y, yi, e);  // beta == 0: y not read
            store(y, yi, e, out);
          }
        }
      }
    }
  };
  emu::enqueue(handle->stream, what, std::move(work));
  return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"

#pragma GCC diagnostic pop
