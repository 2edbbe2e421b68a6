/* kernels/cpu/fast_attention.c — blocked exact-order attention (fast_attention.h). */
#include "fast_attention.h"

#include "cpu_expf16.h"     /* cpu_expf on 16 lanes, bit for bit */
#include "cpu_internal.h"   /* cpu_expf: the reference's exp */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FA_X86 1
#endif

#define FA_ROWS 16     /* (query, head) rows per task */
#define FA_DB 8        /* output vectors (8·16 = 128 values of d) per PV pass */

struct FaWork {
  int n_threads;
  float *kt, *vf;                 /* widened keys (Kᵀ in 16-key chunks) and values */
  size_t kt_cap, vf_cap;
  float **s, **pt;                /* per thread: scores [rows][Lk], Pᵀ [Lk][16] */
  size_t *s_cap, *pt_cap;
};

FaWork *fa_work_new(int n_threads) {
  FaWork *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->n_threads = n_threads > 0 ? n_threads : 1;
  w->s = calloc((size_t)w->n_threads, sizeof *w->s);
  w->pt = calloc((size_t)w->n_threads, sizeof *w->pt);
  w->s_cap = calloc((size_t)w->n_threads, sizeof *w->s_cap);
  w->pt_cap = calloc((size_t)w->n_threads, sizeof *w->pt_cap);
  if (!w->s || !w->pt || !w->s_cap || !w->pt_cap) {
    fa_work_free(w);
    return NULL;
  }
  return w;
}

void fa_work_free(FaWork *w) {
  if (!w) return;
  for (int t = 0; w->s && t < w->n_threads; t++) free(w->s[t]);
  for (int t = 0; w->pt && t < w->n_threads; t++) free(w->pt[t]);
  free(w->s);
  free(w->pt);
  free(w->s_cap);
  free(w->pt_cap);
  free(w->kt);
  free(w->vf);
  free(w);
}

static bool grow(float **p, size_t *cap, size_t nfloats) {
  size_t n = nfloats * sizeof(float);
  if (n <= *cap && *p) return true;
  free(*p);
  n = (n + 4095) & ~(size_t)4095;
  *p = aligned_alloc(64, n);
  *cap = *p ? n : 0;
  return *p != NULL;
}

bool fa_supported(void) {
#ifdef FA_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

static inline float ld(const BkTensor *t, int64_t i) {
  if (t->dt == BK_F32) return ((const float *)t->data)[i];
  union { uint32_t u; float f; } v = { (uint32_t)((const uint16_t *)t->data)[i] << 16 };
  return v.f;
}

static inline void st(BkTensor *t, int64_t i, float v) {
  if (t->dt == BK_F32) ((float *)t->data)[i] = v;
  else ((uint16_t *)t->data)[i] = bk_f32_to_bf16(v);
}

#ifdef FA_X86
#define AVX512 __attribute__((target("avx512f")))
#define FA_INLINE __attribute__((always_inline)) inline

typedef struct {
  const BkTensor *q, *kc, *vc, *kn, *vn;
  BkTensor *o;
  int64_t Lq, Lc, Lk, Hq, Hkv, D, group, nch;
  bool causal;
  float sf;              /* q and k are pre-scaled by √scale (each product rounded) */
  const float *kt, *vf;
} Fa;

/* K value of key j (cache, then block) as fp32. */
static inline float key_at(const Fa *a, const BkTensor *c, const BkTensor *n, int64_t j,
                           int64_t hk, int64_t d) {
  return j < a->Lc ? ld(c, (j * a->Hkv + hk) * a->D + d)
                   : ld(n, ((j - a->Lc) * a->Hkv + hk) * a->D + d);
}

/* s[r][j] = (Σ_d q[r][d]·Kᵀ[d][j]) · scale for the 16 keys of chunk c, R rows. */
AVX512 static FA_INLINE void scores_chunk(int R, int64_t D, const float *qf, const float *ktc,
                                          float *s, int64_t lds, float scale) {
  __m512 acc[FA_ROWS];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; d++) {
    const __m512 k = _mm512_load_ps(ktc + d * 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
      acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_set1_ps(qf[r * D + d]), k));
  }
  const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) _mm512_storeu_ps(s + r * lds, _mm512_mul_ps(acc[r], sc));
}

AVX512 static void scores_chunk_r(int R, int64_t D, const float *qf, const float *ktc,
                                  float *s, int64_t lds, float scale) {
  switch (R) {
#define C(n) case n: scores_chunk(n, D, qf, ktc, s, lds, scale); break;
    C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12) C(13) C(14) C(15) C(16)
#undef C
  }
}

/* acc[2][NV] over keys j < nk: acc += p[j]·v[j][d0 …], then o = acc·inv per row.  NV is
 * a constant in each instance (pv_rows dispatches), so the loops unroll fully. */
AVX512 static FA_INLINE void pv_block(const int NV, const Fa *a, int64_t hk, int r0, int nr,
                                      const float *pt, int64_t nk, const float inv[FA_ROWS],
                                      const int64_t row_i[FA_ROWS], const int64_t row_h[FA_ROWS],
                                      int64_t d0) {
  const int64_t D = a->D;
  const int64_t tail = (D - d0) - (int64_t)(NV - 1) * 16;   /* 1..16 lanes in the last */
  const __mmask16 lastm = (__mmask16)(tail >= 16 ? 0xffff : (1u << tail) - 1);
  __m512 acc0[FA_DB], acc1[FA_DB];
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) acc0[v] = acc1[v] = _mm512_setzero_ps();
  const float *vrow = a->vf + (hk * a->Lk) * D + d0;
  const int r1 = r0 + (nr > 1);
  for (int64_t j = 0; j < nk; j++, vrow += D) {
    const __m512 p0 = _mm512_set1_ps(pt[j * 16 + r0]);
    const __m512 p1 = _mm512_set1_ps(pt[j * 16 + r1]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      const __m512 vv = v == NV - 1 ? _mm512_maskz_loadu_ps(lastm, vrow + v * 16)
                                    : _mm512_loadu_ps(vrow + v * 16);
      acc0[v] = _mm512_add_ps(acc0[v], _mm512_mul_ps(p0, vv));
      acc1[v] = _mm512_add_ps(acc1[v], _mm512_mul_ps(p1, vv));
    }
  }
  for (int r = 0; r < nr; r++) {
    float out[FA_DB * 16];
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps(out + v * 16,
                       _mm512_mul_ps(r ? acc1[v] : acc0[v], _mm512_set1_ps(inv[r0 + r])));
    const int64_t base = (row_i[r0 + r] * a->Hq + row_h[r0 + r]) * D + d0;
    const int64_t n = D - d0 < FA_DB * 16 ? D - d0 : FA_DB * 16;
    for (int64_t d = 0; d < n; d++) st(a->o, base + d, out[d]);
  }
}

AVX512 static void pv_rows(const Fa *a, int64_t hk, int r0, int nr, const float *pt, int64_t nk,
                           const float inv[FA_ROWS], const int64_t row_i[FA_ROWS],
                           const int64_t row_h[FA_ROWS]) {
  for (int64_t d0 = 0; d0 < a->D; d0 += FA_DB * 16) {
    const int nv = (int)((a->D - d0 + 15) / 16 < FA_DB ? (a->D - d0 + 15) / 16 : FA_DB);
    switch (nv) {
#define C(n) case n: pv_block(n, a, hk, r0, nr, pt, nk, inv, row_i, row_h, d0); break;
      C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8)
#undef C
    }
  }
}

/* max over s[0 … n) (order-free; no NaN reaches here from finite inputs) */
AVX512 static float row_max(const float *s, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + j));
  float mx = _mm512_reduce_max_ps(m);
  for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

/* Σ of a softmax row the way the reference does (cpu_sum16 over the whole row of Lk keys,
 * of which only the first n can be non-zero): Lk < 16: left to right; else lane l adds
 * x[l], x[16+l], … in order (zeros change nothing), then the lanes fold l+8, l+4, l+2, l+1. */
AVX512 static float row_sum16(const float *e, int64_t n, int64_t Lk) {
  if (Lk < 16) {
    float s = n ? e[0] : 0.0f;
    for (int64_t i = 1; i < n; i++) s += e[i];
    return s;
  }
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(e + j));
  if (j < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - j)) - 1), e + j));
  float a[16];
  _mm512_storeu_ps(a, acc);
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) a[l] += a[l + w];
  return a[0];
}

/* s[j] = cpu_expf(s[j] − mx) for j < n, 16 at a time (the tail masked) */
AVX512 static void exp_row(float *s, int64_t n, float mx) {
  const __m512 m = _mm512_set1_ps(mx);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(s + j, cpu_expf16(_mm512_sub_ps(_mm512_loadu_ps(s + j), m)));
  if (j < n) {
    const __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    _mm512_mask_storeu_ps(s + j, k, cpu_expf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m)));
  }
}

/* One task: KV head hk, queries [i0, i0+qb), every head of the group. */
AVX512 static void run_task(const Fa *a, int64_t hk, int64_t i0, int64_t qb, float *s, float *pt) {
  const int64_t D = a->D, Lk = a->Lk;
  const int R = (int)(qb * a->group);
  float qf[FA_ROWS * 512];
  int64_t row_i[FA_ROWS], row_h[FA_ROWS], vis[FA_ROWS];
  int64_t nk = 0;   /* keys any row sees */
  for (int r = 0; r < R; r++) {
    row_i[r] = i0 + r / a->group;
    row_h[r] = hk * a->group + r % a->group;
    vis[r] = a->causal ? a->Lc + row_i[r] + 1 : Lk;
    if (vis[r] > nk) nk = vis[r];
    for (int64_t d = 0; d < D; d++)
      qf[r * D + d] = ld(a->q, (row_i[r] * a->Hq + row_h[r]) * D + d) * a->sf;
  }
  const int64_t nch = (nk + 15) / 16, lds = nch * 16;
  /* scores of the pre-scaled q and k: ·1 leaves them as they are */
  for (int64_t c = 0; c < nch; c++)
    scores_chunk_r(R, D, qf, a->kt + (hk * a->nch + c) * D * 16, s + c * 16, lds, 1.0f);
  /* P, normalised, transposed: pt[j][r] (0 for keys row r does not see) */
  float ones[FA_ROWS];
  for (int r = 0; r < FA_ROWS; r++) {
    ones[r] = 1.0f;
    if (r >= R) {
      for (int64_t j = 0; j < nk; j++) pt[j * 16 + r] = 0.0f;
      continue;
    }
    float *sr = s + r * lds;
    const float mx = row_max(sr, vis[r]);
    exp_row(sr, vis[r], mx);
    const float inv = 1.0f / row_sum16(sr, vis[r], Lk);
    for (int64_t j = 0; j < vis[r]; j++) pt[j * 16 + r] = sr[j] * inv;
    for (int64_t j = vis[r]; j < nk; j++) pt[j * 16 + r] = 0.0f;
  }
  /* o = Σ_j p_j·v_j (·1) */
  for (int r = 0; r < R; r += 2) pv_rows(a, hk, r, R - r < 2 ? 1 : 2, pt, nk, ones, row_i, row_h);
}
#endif /* FA_X86 */

bool fa_attention(FaWork *w, FaOrder order, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                  const BkTensor *vc, const BkTensor *kn, const BkTensor *vn, BkCausal causal,
                  float scale) {
#ifdef FA_X86
  if (order != FA_ORDER_SDPA || !fa_supported()) return false;
  const BkTensor *ts[] = {o, q, kc, vc, kn, vn};
  for (size_t i = 0; i < 6; i++)
    if (ts[i] && ts[i]->dt != BK_F32 && ts[i]->dt != BK_BF16) return false;
  Fa a = {.q = q, .kc = kc, .vc = vc, .kn = kn, .vn = vn, .o = o, .Lq = q->ne[0],
          .Lc = kc ? kc->ne[0] : 0, .Hq = q->ne[1], .Hkv = kn->ne[1], .D = q->ne[2],
          .causal = causal == BK_CAUSAL_BOTTOM_RIGHT, .sf = (float)sqrt((double)scale)};
  a.Lk = a.Lc + a.Lq;
  a.group = a.Hq / a.Hkv;
  a.nch = (a.Lk + 15) / 16;
  if (a.group > FA_ROWS || a.D > 512 || a.Lq == 0) return a.Lq == 0;
  const int nt = w->n_threads;
  if (!grow(&w->kt, &w->kt_cap, (size_t)(a.Hkv * a.nch * a.D * 16)) ||
      !grow(&w->vf, &w->vf_cap, (size_t)(a.Hkv * a.Lk * a.D)))
    return false;
  for (int t = 0; t < nt; t++)
    if (!grow(&w->s[t], &w->s_cap[t], (size_t)(FA_ROWS * a.nch * 16)) ||
        !grow(&w->pt[t], &w->pt_cap[t], (size_t)(a.nch * 16 * 16)))
      return false;
  a.kt = w->kt;
  a.vf = w->vf;
  const int64_t qb = FA_ROWS / a.group;
  const int64_t nqb = (a.Lq + qb - 1) / qb;
#pragma omp parallel num_threads(nt)
  {
    float *kt = w->kt, *vf = w->vf;
#pragma omp for schedule(static)
    for (int64_t hc = 0; hc < a.Hkv * a.nch; hc++) {
      const int64_t hk = hc / a.nch, c = hc % a.nch;
      float *dst = kt + hc * a.D * 16;
      for (int64_t d = 0; d < a.D; d++)
        for (int jj = 0; jj < 16; jj++) {
          const int64_t j = c * 16 + jj;
          dst[d * 16 + jj] = j < a.Lk ? key_at(&a, kc, kn, j, hk, d) * a.sf : 0.0f;
        }
      for (int jj = 0; jj < 16; jj++) {
        const int64_t j = c * 16 + jj;
        if (j >= a.Lk) break;
        float *vr = vf + (hk * a.Lk + j) * a.D;
        for (int64_t d = 0; d < a.D; d++) vr[d] = key_at(&a, vc, vn, j, hk, d);
      }
    }
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < a.Hkv * nqb; task++) {
#ifdef _OPENMP
      const int t = omp_get_thread_num();
#else
      const int t = 0;
#endif
      const int64_t hk = task / nqb, i0 = (task % nqb) * qb;
      run_task(&a, hk, i0, a.Lq - i0 < qb ? a.Lq - i0 : qb, w->s[t], w->pt[t]);
    }
  }
  return true;
#else
  (void)w; (void)order; (void)o; (void)q; (void)kc; (void)vc; (void)kn; (void)vn;
  (void)causal; (void)scale;
  return false;
#endif
}
