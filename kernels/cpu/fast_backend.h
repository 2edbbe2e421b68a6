/* kernels/cpu/fast_backend.h — the CPU backend with the fast kernels (fast_*.c) in place
 * of the reference's heavy ops: linear (fast_gemm), attention (fast_attention).  Every
 * other op, and every case a fast kernel does not cover, is the reference's own
 * (kernels/cpu), and the fast ops reproduce the reference bit for bit
 * (tests/bench/test_fast_ops.c), so the golden suite gives the same results on both. */
#ifndef BAGEL_FAST_BACKEND_H
#define BAGEL_FAST_BACKEND_H

#include "ops.h"

/* n_threads <= 0: all cores.  NULL on out-of-memory. */
BkBackend *bk_cpu_fast_new(int n_threads);

/* "fma" / "dpbf16" / "ref": the GEMM kernel a fast backend uses (for reports). */
const char *bk_cpu_fast_gemm_kernel(const BkBackend *be);

/* Seconds spent so far inside linear and attention (zeros for other backends). */
void bk_cpu_fast_timers(const BkBackend *be, double *linear_s, double *attention_s);

#endif
