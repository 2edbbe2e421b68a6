/* kernels/cpu/cpu_attention.c — scaled dot-product attention on the CPU reference
 * backend: one sequence, queries q[Lq,Hq,D] against a cached prefix kc/vc[Lc,Hkv,D] and
 * the block's own keys kn/vn[Lq,Hkv,D]; GQA (query head h uses kv head h/(Hq/Hkv)); full
 * or bottom-right causal masking.  One rounding to o's dtype at the end.
 *
 * Arithmetic (docs/numerics.md, "Attention"): the golden files were produced with
 * torch's math SDPA path (scaled_dot_product_attention with GQA falls back to it on the
 * CPU; bf16 inputs are upcast to fp32 there), so this computes, all in fp32:
 *   sf = sqrt(scale) (in double, then fp32);  q' = q·sf, k' = k·sf (each rounded);
 *   s_j = Σ_d q'_d·k'_jd, d = 0 … D−1 in order;  masked keys get s_j = −∞;
 *   m = max_j s_j;  e_j = exp(s_j − m) with SLEEF's expf_u10 (cpu_expf);
 *   Σ = the 16-lane vector sum of e over the whole row of Lc+Lq keys (cpu_sum16);
 *   p_j = e_j·(1/Σ)  — P is normalised BEFORE the weighted sum and stays fp32;
 *   o_d = Σ_j p_j·v_jd, j = 0 … in order, separate multiply and add (no FMA).
 * Evidence (single-layer replay of all 192 golden LLM calls): this recipe 0 mismatching
 * bf16 elements; normalising at the end (o·(1/Σ) or o/Σ) 51; a sequential or 8-lane Σ
 * 56 / 1; FMA in the weighted sum 10; rounding P to bf16 ~50× more.
 * Memory per thread is one row of scores (Lc+Lq floats) plus the scaled keys, so the
 * score matrix is never materialised. */
#include "cpu_internal.h"

#include <stdlib.h>

static bool shape3(const BkTensor *t, int64_t h, int64_t d) {
  return t->nd == 3 && t->ne[1] == h && t->ne[2] == d && is_float_dt(t->dt);
}

void cpu_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                   const BkTensor *vc, const BkTensor *kn, const BkTensor *vn, BkCausal causal,
                   float scale) {
  if (q->nd != 3 || kn->nd != 3) {
    bk_fail(be, "cpu attention: q and k must be [L, heads, dim]");
    return;
  }
  const int64_t Lq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = kn->ne[1];
  const int64_t Lc = kc ? kc->ne[0] : 0;
  if (Hkv == 0 || Hq % Hkv || !shape3(kn, Hkv, D) || !shape3(vn, Hkv, D) ||
      kn->ne[0] != Lq || vn->ne[0] != Lq || !bk_same_shape(o, q) ||
      (kc && (!vc || !shape3(kc, Hkv, D) || !shape3(vc, Hkv, D) || vc->ne[0] != Lc))) {
    bk_fail(be, "cpu attention: inconsistent shapes (q [%lld,%lld,%lld], new k [%lld,%lld,%lld],"
            " cache %lld)", (long long)Lq, (long long)Hq, (long long)D, (long long)kn->ne[0],
            (long long)kn->ne[1], (long long)kn->ne[2], (long long)Lc);
    return;
  }
  if (Lq == 0) return;
  const int64_t group = Hq / Hkv, Lk = Lc + Lq;
  const float sf = (float)sqrt((double)scale);
  /* k' = k·sf for every key (cache then block), [Lk, Hkv, D] */
  float *ks = malloc(sizeof(float) * (size_t)(Lk * Hkv * D));
  for (int64_t j = 0; j < Lk; j++) {
    const BkTensor *K = j < Lc ? kc : kn;
    const int64_t jj = j < Lc ? j : j - Lc;
    for (int64_t e = 0; e < Hkv * D; e++) ks[j * Hkv * D + e] = ld_f(K, jj * Hkv * D + e) * sf;
  }
#pragma omp parallel
  {
    float *p = malloc(sizeof(float) * (size_t)Lk);
    float *qv = malloc(sizeof(float) * (size_t)D * 3), *acc = qv + D, *vr = qv + 2 * D;
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int64_t i = 0; i < Lq; i++) {
      for (int64_t h = 0; h < Hq; h++) {
        const int64_t hk = h / group;
        const int64_t visible = causal == BK_CAUSAL_BOTTOM_RIGHT ? Lc + i + 1 : Lk;
        for (int64_t d = 0; d < D; d++) qv[d] = ld_f(q, (i * Hq + h) * D + d) * sf;
        float mx = -INFINITY;
        for (int64_t j = 0; j < visible; j++) {
          const float *kr = ks + (j * Hkv + hk) * D;
          float dot = 0;
          for (int64_t d = 0; d < D; d++) dot += qv[d] * kr[d];
          p[j] = dot;
          if (dot > mx) mx = dot;
        }
        /* exp(−∞ − m) = 0 for the masked keys; they still occupy their lanes of Σ */
        for (int64_t j = 0; j < visible; j++) p[j] = cpu_expf(p[j] - mx);
        for (int64_t j = visible; j < Lk; j++) p[j] = 0.0f;
        const float inv = 1.0f / cpu_sum16(p, Lk);
        for (int64_t j = 0; j < visible; j++) p[j] *= inv;
        for (int64_t d = 0; d < D; d++) acc[d] = 0;
        for (int64_t j = 0; j < visible; j++) {
          const BkTensor *V = j < Lc ? vc : vn;
          cpu_load_row(V, (j < Lc ? j : j - Lc) * Hkv + hk, D, vr);
          for (int64_t d = 0; d < D; d++) acc[d] += p[j] * vr[d];
        }
        for (int64_t d = 0; d < D; d++) st_f(o, (i * Hq + h) * D + d, acc[d]);
      }
    }
    free(p);
    free(qv);
  }
  free(ks);
}
