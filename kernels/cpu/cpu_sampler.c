/* kernels/cpu/cpu_sampler.c — one CFG combine + Euler step (docs/bagel-spec.md §6 steps
 * 5–6 and the rounding of §13), the CPU reference of the fused CUDA kernel.
 *
 *   s_t ≤ 1 (or no text branch): v = c (bf16).
 *   global / channel: a = u_t + s_t(c − u_t) op by op in bf16; b = u_i + s_i(a − u_i) in
 *     bf16 when s_i > 1, else a; r = clamp(‖c‖/(‖b‖+1e-8), renorm_min, 1) with fp32 norms
 *     (global: over all N×64 values; channel: per token); v = b·r, rounded to bf16 for
 *     global (a 0-dim scale keeps bf16), fp32 for channel (a per-token fp32 tensor).
 *   text_channel: a as above (bf16); per token r = clamp(‖c‖/(‖a‖+1e-8), min, 1);
 *     a' = a·r (fp32); v = u_i + s_i(a' − u_i) in fp32 when s_i > 1, else a'.
 *   Euler: x ← x − v·Δ; the product is rounded to bf16 when v is bf16.
 *
 * The norms are torch.norm's fp32 2-norm (docs/numerics.md, "Reductions"): ATen's
 * vectorised last-dim kernel with 8-lane vectors (it has no AVX512 variant): lane l
 * accumulates v[l]², v[8+l]², … as fused multiply-adds (GCC contracts acc + x·x in that
 * build; the squares of the bf16 values met here are exact anyway), the lanes are added
 * left to right, then any tail elements, then sqrtf.  Replaying the 16 golden CFG steps
 * from the golden branch outputs: 0 mismatching elements; fp64 sums 3833 (text_channel's
 * fp32 velocity), a 16-lane order 4685. */
#include "cpu_internal.h"

#include <stdlib.h>

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ‖v[r0·C … r1·C)‖₂ in torch's order (see above). */
static float norm_rows(const float *v, int64_t r0, int64_t r1, int64_t C) {
  const float *x = v + r0 * C;
  const int64_t n = (r1 - r0) * C;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; l++) acc[l] = fmaf(x[d + l], x[d + l], acc[l]);
  float s = acc[0];
  for (int l = 1; l < 8; l++) s += acc[l];
  for (; d < n; d++) s = fmaf(x[d], x[d], s);
  return sqrtf(s);
}

void cpu_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut,
                   const BkTensor *ui, const BkCfgStep *p, BkTensor *v_out) {
  const int64_t N = bk_rows(x), C = bk_cols(x), n = N * C;
  if (x->dt != BK_F32 || bk_numel(c) != n || (ut && bk_numel(ut) != n) ||
      (ui && bk_numel(ui) != n) || (v_out && (bk_numel(v_out) != n || v_out->dt != BK_F32))) {
    bk_fail(be, "cpu cfg_euler: branch velocities must match x[%lld,%lld] (F32)",
            (long long)N, (long long)C);
    return;
  }
  float *cv = malloc(sizeof(float) * (size_t)n * 2), *v = cv + n;
  for (int64_t i = 0; i < n; i++) cv[i] = ld_f(c, i);
  bool v_bf16;
  if (!ut || p->cfg_text <= 1.0f) {
    memcpy(v, cv, sizeof(float) * (size_t)n);
    v_bf16 = c->dt == BK_BF16;
  } else {
    const float st = p->cfg_text, si = p->cfg_img;
    const bool img = ui && si > 1.0f;
    float *a = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
      float u = ld_f(ut, i);
      a[i] = bk_round_bf16(u + bk_round_bf16(st * bk_round_bf16(cv[i] - u)));
    }
    if (p->renorm == BK_RENORM_TEXT_CHANNEL) {
      for (int64_t t = 0; t < N; t++) {
        float nc = norm_rows(cv, t, t + 1, C);
        float na = norm_rows(a, t, t + 1, C);
        float r = clampf(nc / (na + 1e-8f), p->renorm_min, 1.0f);
        for (int64_t k = t * C; k < (t + 1) * C; k++) {
          float ap = a[k] * r;
          if (img) {
            float u = ld_f(ui, k);
            v[k] = u + si * (ap - u);
          } else {
            v[k] = ap;
          }
        }
      }
      v_bf16 = false;
    } else {
      if (img)
        for (int64_t i = 0; i < n; i++) {
          float u = ld_f(ui, i);
          a[i] = bk_round_bf16(u + bk_round_bf16(si * bk_round_bf16(a[i] - u)));
        }
      if (p->renorm == BK_RENORM_GLOBAL) {
        float nc = norm_rows(cv, 0, N, C);
        float nb = norm_rows(a, 0, N, C);
        float r = clampf(nc / (nb + 1e-8f), p->renorm_min, 1.0f);
        for (int64_t i = 0; i < n; i++) v[i] = bk_round_bf16(a[i] * r);
        v_bf16 = true;
      } else {
        for (int64_t t = 0; t < N; t++) {
          float nc = norm_rows(cv, t, t + 1, C);
          float nb = norm_rows(a, t, t + 1, C);
          float r = clampf(nc / (nb + 1e-8f), p->renorm_min, 1.0f);
          for (int64_t k = t * C; k < (t + 1) * C; k++) v[k] = a[k] * r;
        }
        v_bf16 = false;
      }
    }
    free(a);
  }
  float *xs = x->data;
  for (int64_t i = 0; i < n; i++) {
    float step = v[i] * p->dt;
    if (v_bf16) step = bk_round_bf16(step);
    xs[i] = xs[i] - step;
  }
  if (v_out) memcpy(v_out->data, v, sizeof(float) * (size_t)n);
  free(cv);
}
