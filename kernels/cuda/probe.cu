/* kernels/cuda/probe.cu — is there a usable GPU?  One line for the user when not.
 * Used by the engine to choose a backend (BAGEL_BACKEND_AUTO) and to explain why
 * --backend cuda cannot run. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_probe.h"

extern "C" int bk_cuda_probe(char *msg, size_t msg_size) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    snprintf(msg, msg_size, "no usable NVIDIA GPU: %s (%s)", cudaGetErrorString(err),
             cudaGetErrorName(err));
    return 0;
  }
  if (n == 0) {
    snprintf(msg, msg_size, "no usable NVIDIA GPU: the CUDA runtime sees no device");
    return 0;
  }
  cudaDeviceProp prop;
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    snprintf(msg, msg_size, "no usable NVIDIA GPU: %s", cudaGetErrorString(err));
    return 0;
  }
  if (prop.major < 8) {
    snprintf(msg, msg_size, "GPU %s (sm_%d%d) is too old: BAGEL needs bf16 tensor cores (sm_80+)",
             prop.name, prop.major, prop.minor);
    return 0;
  }
  snprintf(msg, msg_size, "%s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  return n;
}

extern "C" void bk_cuda_versions(char *msg, size_t msg_size) {
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  (void)cudaGetLastError();
  snprintf(msg, msg_size, "CUDA driver %d.%d, runtime %d.%d", drv / 1000, drv % 1000 / 10, rt / 1000,
           rt % 1000 / 10);
}
