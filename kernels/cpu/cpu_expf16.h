/* kernels/cpu/cpu_expf16.h — cpu_expf (cpu_internal.h: SLEEF's expf_u10 as torch's
 * vectorised softmax computes it) on 16 lanes with AVX-512: the same operations in the
 * same order, each a single IEEE operation (fused where the scalar uses fmaf, separate
 * where it multiplies and adds), so every lane is bit-identical to cpu_expf.  tests/unit
 * checks it against cpu_expf on a dense sweep of floats and on the special values.
 * Built with -ffp-contract=off like the rest of the project: no product and sum below
 * may be fused by the compiler. */
#ifndef BAGEL_CPU_EXPF16_H
#define BAGEL_CPU_EXPF16_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f"), always_inline)) static inline __m512 cpu_expf16(__m512 x) {
  const __m512 l2e = _mm512_set1_ps(1.442695040888963407359924681001892137426645954152985934135449406931f);
  /* q = rint(x·log2 e): the product rounded, then to the nearest integer, ties to even */
  const __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x, l2e),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 qf = _mm512_cvtepi32_ps(q);
  __m512 s = _mm512_fmadd_ps(qf, _mm512_set1_ps(-0.693145751953125f), x);
  s = _mm512_fmadd_ps(qf, _mm512_set1_ps(-1.428606765330187045e-06f), s);
  __m512 u = _mm512_set1_ps(0.000198527617612853646278381f);
  u = _mm512_fmadd_ps(u, s, _mm512_set1_ps(0.00139304355252534151077271f));
  u = _mm512_fmadd_ps(u, s, _mm512_set1_ps(0.00833336077630519866943359f));
  u = _mm512_fmadd_ps(u, s, _mm512_set1_ps(0.0416664853692054748535156f));
  u = _mm512_fmadd_ps(u, s, _mm512_set1_ps(0.166666671633720397949219f));
  u = _mm512_fmadd_ps(u, s, _mm512_set1_ps(0.5f));
  u = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_mul_ps(s, s), u, s));
  /* u · 2^⌊q/2⌋ · 2^(q−⌊q/2⌋), left to right */
  const __m512i qh = _mm512_srai_epi32(q, 1), ql = _mm512_sub_epi32(q, qh);
  const __m512i bias = _mm512_set1_epi32(0x7f);
  const __m512 p1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(qh, bias), 23));
  const __m512 p2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ql, bias), 23));
  __m512 r = _mm512_mul_ps(_mm512_mul_ps(u, p1), p2);
  /* the scalar's early returns: below −104 → 0, above 100 → +∞, NaN → itself */
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-104.0f), _CMP_LT_OQ),
                         _mm512_setzero_ps());
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_set1_ps(100.0f), _CMP_GT_OQ),
                         _mm512_set1_ps(__builtin_inff()));
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
  return r;
}
#endif

#endif
