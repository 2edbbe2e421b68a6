/* kernels/cpu/fast_attention.h — blocked attention on the CPU with the reference op's
 * arithmetic, bit for bit (kernels/cpu/cpu_attention.c).
 *
 * The reference's order is a parameter (FaOrder), so that the kernel follows it when it
 * changes; what every order shares and the kernel keeps:
 *   - each score is one fp32 dot product over d = 0 … D−1 in order (separate multiply
 *     and add), the vector lanes holding 16 different keys, never 16 terms of one score;
 *   - the softmax sum runs over the keys in order, the lanes holding different queries;
 *   - each output element accumulates p_j·v_jd over j in order, the lanes holding d;
 *   - masked keys get p = 0, which leaves every sum unchanged (x + 0 = x).
 * Blocking: one task = one KV head and up to 16 (query, head) rows sharing it (GQA group
 * × queries), keys in 16-wide chunks whose Kᵀ tile (D×16 fp32) stays in L1 while all
 * rows use it; the rows' scores live in one [rows × Lk] buffer (never [Lq × Lk]).
 * Keys and values are widened to fp32 once per call (Kᵀ chunked, V row-major). */
#ifndef BAGEL_FAST_ATTENTION_H
#define BAGEL_FAST_ATTENTION_H

#include <stdbool.h>

#include "ops.h"

typedef enum {
  /* torch's math SDPA, the reference since the parity work (cpu_attention.c,
   * docs/numerics.md): q' = q·√scale, k' = k·√scale; s = Σ_d q'·k' in order;
   * e = SLEEF's expf(s − max) (cpu_expf); Σ = 16-lane sum over the whole row of keys;
   * p = e·(1/Σ) before the weighted sum; o = Σ_j p_j·v_j in order.  What a new order
   * would change is confined to run_task's per-row code. */
  FA_ORDER_SDPA = 0,
} FaOrder;

typedef struct FaWork FaWork;

FaWork *fa_work_new(int n_threads);
void fa_work_free(FaWork *w);
bool fa_supported(void);

/* The op of kernels/ops.h (shapes already checked by the caller); false when it cannot
 * run here (no AVX-512, out of memory): nothing was written, use the reference. */
bool fa_attention(FaWork *w, FaOrder order, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                  const BkTensor *vc, const BkTensor *kn, const BkTensor *vn, BkCausal causal,
                  float scale);

#endif
