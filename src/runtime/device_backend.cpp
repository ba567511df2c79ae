#include "runtime/device_backend.h"

#include <regex>
#include <stdexcept>

#ifdef SDVSR_HAVE_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda/cuda_backend.h"
#endif

namespace sdvsr {

bool cuda_built() {
#ifdef SDVSR_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef SDVSR_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver/device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string compute_dtype_name(ComputeDtype d) {
  switch (d) {
    case ComputeDtype::kFloat32: return "float32";
    case ComputeDtype::kFloat16: return "float16";
    case ComputeDtype::kBFloat16: return "bfloat16";
  }
  return "float32";
}

ComputeDtype parse_compute_dtype(const std::string& s) {
  if (s == "float32" || s == "fp32") return ComputeDtype::kFloat32;
  if (s == "float16" || s == "fp16" || s == "half") return ComputeDtype::kFloat16;
  if (s == "bfloat16" || s == "bf16") return ComputeDtype::kBFloat16;
  throw std::runtime_error("--dtype " + s + ": expected float32, float16 or bfloat16");
}

Backend& backend_for_device(const std::string& device, ComputeDtype dtype) {
  if (device == "cpu") {
    if (dtype != ComputeDtype::kFloat32)
      throw std::runtime_error("--dtype " + compute_dtype_name(dtype) +
                               ": the CPU backend computes in float32 only (use --device cuda)");
    return cpu_backend();
  }
  static const std::regex cuda("cuda(:([0-9]+))?");
  std::smatch m;
  if (!std::regex_match(device, m, cuda))
    throw std::runtime_error("--device " + device + ": expected cpu, cuda or cuda:N");
  if (!cuda_built())
    throw std::runtime_error("--device " + device +
                             ": this binary was built without CUDA (use --device cpu)");
  const int index = m[2].matched ? std::stoi(m[2].str()) : 0;
  const int count = cuda_device_count();
  if (count == 0)
    throw std::runtime_error("--device " + device + ": no CUDA device was found (use --device cpu)");
  if (index >= count)
    throw std::runtime_error("--device " + device + ": no CUDA device " + std::to_string(index) +
                             " (" + std::to_string(count) + " found)");
#ifdef SDVSR_HAVE_CUDA
  return cuda_backend(index, dtype);
#else
  throw std::logic_error("unreachable");
#endif
}

Backend* flow_ahead_backend(Backend& main) {
#ifdef SDVSR_HAVE_CUDA
  if (auto* gpu = dynamic_cast<CudaBackend*>(&main))
    return &cuda_backend(gpu->index(), gpu->compute_dtype(), /*lane=*/1);
#endif
  (void)main;
  return nullptr;
}

}  // namespace sdvsr
