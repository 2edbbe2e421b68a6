/* tests/emu/test_probe.c — the CUDA backend's own sources (kernels/cuda/probe.cu) built
 * for the host under -Dcuda-emu=true: the engine's GPU probe finds the emulated device. */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_probe.h"

int main(void) {
  char msg[256];
  int n = bk_cuda_probe(msg, sizeof msg);
  printf("bk_cuda_probe: %d device(s): %s\n", n, msg);
  if (n != 1 || !strstr(msg, "CUDA emulation") || !strstr(msg, "sm_80")) {
    fprintf(stderr, "expected the emulated sm_80 device\n");
    return 1;
  }
  return 0;
}
