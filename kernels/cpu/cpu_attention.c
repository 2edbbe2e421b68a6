/* kernels/cpu/cpu_attention.c — scaled dot-product attention on the CPU reference
 * backend: one sequence, queries q[Lq,Hq,D] against a cached prefix kc/vc[Lc,Hkv,D] and
 * the block's own keys kn/vn[Lq,Hkv,D]; GQA; full or bottom-right causal masking.
 * Scores, softmax and the weighted sum are fp32 (q/k/v values as stored); one rounding
 * to o's dtype.  Memory per thread is one row of scores (Lc+Lq floats): the score
 * matrix is never materialised, so the VAE's 16k-position mid-block attention fits. */
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
  const int64_t group = Hq / Hkv, Lk = Lc + Lq;
#pragma omp parallel
  {
    float *s = malloc(sizeof(float) * (size_t)(Lk ? Lk : 1));
    float *qv = malloc(sizeof(float) * (size_t)D * 3), *acc = qv + D, *kv = qv + 2 * D;
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int64_t i = 0; i < Lq; i++) {
      for (int64_t h = 0; h < Hq; h++) {
        const int64_t hk = h / group;
        const int64_t visible = causal == BK_CAUSAL_BOTTOM_RIGHT ? Lc + i + 1 : Lk;
        for (int64_t d = 0; d < D; d++) qv[d] = ld_f(q, (i * Hq + h) * D + d);
        float mx = -INFINITY;
        for (int64_t j = 0; j < visible; j++) {
          const BkTensor *K = j < Lc ? kc : kn;
          int64_t jj = j < Lc ? j : j - Lc;
          float dot = 0;
          for (int64_t d = 0; d < D; d++) dot += qv[d] * ld_f(K, (jj * Hkv + hk) * D + d);
          s[j] = dot * scale;
          if (s[j] > mx) mx = s[j];
        }
        float sum = 0;
        for (int64_t j = 0; j < visible; j++) {
          s[j] = expf(s[j] - mx);
          sum += s[j];
        }
        for (int64_t d = 0; d < D; d++) acc[d] = 0;
        for (int64_t j = 0; j < visible; j++) {
          const BkTensor *V = j < Lc ? vc : vn;
          int64_t jj = j < Lc ? j : j - Lc;
          cpu_load_row(V, jj * Hkv + hk, D, kv);
          for (int64_t d = 0; d < D; d++) acc[d] += s[j] * kv[d];
        }
        float inv = visible ? 1.0f / sum : 0.0f;
        for (int64_t d = 0; d < D; d++) st_f(o, (i * Hq + h) * D + d, acc[d] * inv);
      }
    }
    free(s);
    free(qv);
  }
}
