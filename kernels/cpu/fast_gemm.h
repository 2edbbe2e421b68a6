/* kernels/cpu/fast_gemm.h — the fast bf16 GEMM of the CPU backend:
 *     y[M,N] = round( Σ_k x[m,k]·w[n,k] + b[n] )
 * with bf16 x (already rounded) and bf16 w used in place (w[N,K] row-major, the checkpoint
 * layout; never converted to a copy of the model), fp32 accumulation, bias added after
 * the whole sum, one rounding to y's dtype.
 *
 * Exactness: every output is one fp32 accumulator that walks k in a fixed order, the
 * order of the reference op (kernels/cpu/cpu_linear.c), so the result is bit-identical to
 * it for every ISA, block size and thread count:
 *   FG_ORDER_SEQ    k = 0, 1, …, K−1
 *   FG_ORDER_PAIRS  pairs (0,1), (2,3), …, the odd term of each pair first: the order of
 *                   AVX512_BF16's VDPBF16PS (tests/bench/test_fast_gemm.c checks the
 *                   instruction against a scalar emulation of it)
 * The vector lanes hold 16 different outputs (n), never 16 terms of one sum: the weight
 * panels are transposed on the fly (16 rows × 16 k-pairs per 16×16 dword transpose).
 * A product of two bf16 values is exact in fp32, so an FMA with fp32 copies of the bf16
 * operands rounds exactly like the reference's separate multiply and add, and VDPBF16PS
 * (which rounds after each of its two products) does too; both kernels are exact.
 * Denormals: VDPBF16PS flushes denormal inputs and outputs to zero (as the oneDNN run
 * that produced the golden files did); the FMA kernel keeps them, like the C reference.
 *
 * AMX (TDPBF16PS) accumulates in an order that matches none of the above (measured in
 * docs/performance.md), so it is never picked for exact results. */
#ifndef BAGEL_FAST_GEMM_H
#define BAGEL_FAST_GEMM_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { FG_ORDER_SEQ = 0, FG_ORDER_PAIRS } FgOrder;

typedef enum {
  FG_KERNEL_NONE = 0,   /* no fast kernel on this CPU: use the reference */
  FG_KERNEL_FMA,        /* AVX-512F: fp32 FMA on bf16 values widened to fp32 */
  FG_KERNEL_DPBF16,     /* AVX512_BF16: VDPBF16PS (FG_ORDER_PAIRS only) */
} FgKernel;

typedef struct {
  int64_t M, N, K;
  const uint16_t *x;    /* bf16 [M, ldx]; the k ≥ K tail up to ldx is ignored */
  int64_t ldx;
  const uint16_t *w;    /* bf16 [N, ldw] */
  int64_t ldw;
  const float *bias;    /* [N] fp32 values or NULL */
  void *y;              /* [M, ldy], fp32 or bf16 */
  int64_t ldy;
  bool y_bf16;
} FgGemm;

typedef struct FgWork FgWork;   /* per-backend scratch, grown on demand, reused */

FgWork *fg_work_new(int n_threads);
void fg_work_free(FgWork *w);

/* Whether kernel k runs on this CPU for `order`; fg_pick: the faster of those that do
 * (timed on a cached tile: both give the same bits), BAGEL_CPU_GEMM=fma|dpbf16|ref
 * overrides it. */
bool fg_kernel_supported(FgKernel k, FgOrder order);
FgKernel fg_pick(FgOrder order);
const char *fg_kernel_name(FgKernel k);

/* Run the GEMM; false (nothing written) when the kernel cannot run here or scratch
 * memory cannot be had. */
bool fg_gemm(FgWork *work, const FgGemm *g, FgOrder order, FgKernel kernel);

#endif
