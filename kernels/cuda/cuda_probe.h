/* kernels/cuda/cuda_probe.h — GPU presence check (probe.cu). */
#ifndef BAGEL_CUDA_PROBE_H
#define BAGEL_CUDA_PROBE_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Number of usable devices (0 when none); msg gets the device description or the reason. */
int bk_cuda_probe(char *msg, size_t msg_size);
/* "CUDA driver X.Y, runtime X.Y" (0.0 for what is missing). */
void bk_cuda_versions(char *msg, size_t msg_size);
#ifdef __cplusplus
}
#endif
#endif
