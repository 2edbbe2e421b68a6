/* kernels/cpu/cpu_eltwise.c — element-wise and data-movement ops of the CPU reference
 * backend: convert, add, scale_shift, silu_mul, gelu_tanh, gather_rows, transpose,
 * upsample-free layout ops (latent pack/unpack) and RoPE.  Rounding as in kernels/ops.h. */
#include "cpu_internal.h"

#include <stdlib.h>

static bool check_same_numel(BkBackend *be, const char *op, const BkTensor *y,
                             const BkTensor *x) {
  if (bk_numel(y) != bk_numel(x))
    return bk_fail(be, "cpu %s: %lld elements into %lld", op, (long long)bk_numel(x),
                   (long long)bk_numel(y));
  return true;
}

void cpu_convert(BkBackend *be, BkTensor *y, const BkTensor *x) {
  if (!check_same_numel(be, "convert", y, x)) return;
  int64_t n = bk_numel(x);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) st_f(y, i, ld_f(x, i));
}

void cpu_add(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b) {
  int64_t n = bk_numel(a), cols = bk_cols(a);
  bool bcast = bk_numel(b) == cols && bk_rows(a) != 1;
  if (!check_same_numel(be, "add", y, a)) return;
  if (!bcast && bk_numel(b) != n) {
    bk_fail(be, "cpu add: operand of %lld elements for %lld", (long long)bk_numel(b),
            (long long)n);
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) st_f(y, i, ld_f(a, i) + ld_f(b, bcast ? i % cols : i));
}

void cpu_scale_shift(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t) {
  if (!check_same_numel(be, "scale_shift", y, x)) return;
  int64_t n = bk_numel(x);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) st_f(y, i, ld_f(x, i) * s + t);
}

void cpu_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up) {
  if (!check_same_numel(be, "silu_mul", y, gate) ||
      (up && !check_same_numel(be, "silu_mul", y, up)))
    return;
  int64_t n = bk_numel(gate);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = ld_f(gate, i);
    /* act_fn(gate) is stored in the gate's dtype, then multiplied by up.  torch's
     * vectorised SiLU: x / (1 + exp(−x)) in fp32 with SLEEF's exp (cpu_expf). */
    float a = g / (1.0f + cpu_expf(-g));
    if (up) a = round_to(gate->dt, a) * ld_f(up, i);
    st_f(y, i, a);
  }
}

/* GELU-tanh as torch's vectorised kernel: inner = β·(x + κ·x³) with x³ = x·x·x and the
 * multiply-add fused (GCC contracts it in the AVX2 build), 0.5·x·(1 + tanh(inner)).
 * torch's tanh is SLEEF's tanhf_u10, which returns exactly ±1 for |inner| > 8.664339742
 * where glibc's tanhf still gives ±(1 − 2^-24).  With that cutoff reproduced, the
 * bf16-rounded GELU of every bf16 input (all 65,282 non-NaN values) equals torch's
 * (checked against libsleef); without it 4 differ (x ≈ −5.06 … −5.16: −0 vs −2^-23·|x|).
 * Unrounded fp32 outputs can still differ from torch's by an ulp (glibc's tanhf is not
 * SLEEF's); the model only uses bf16 outputs (autocast). */
static float tanhf_sleef_cutoff(float v) {
  return fabsf(v) > 8.664339742f ? copysignf(1.0f, v) : tanhf(v);
}

void cpu_gelu_tanh(BkBackend *be, BkTensor *y, const BkTensor *x) {
  if (!check_same_numel(be, "gelu_tanh", y, x)) return;
  int64_t n = bk_numel(x);
  const float beta = 0.7978845608028654f; /* sqrt(2/π) */
  const float kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float v = ld_f(x, i);
    float inner = beta * fmaf(kappa, v * v * v, v);
    st_f(y, i, 0.5f * v * (1.0f + tanhf_sleef_cutoff(inner)));
  }
}

void cpu_gather_rows(BkBackend *be, BkTensor *y, const BkTensor *table, const int32_t *ids) {
  int64_t rows = bk_rows(y), cols = bk_cols(y), trows = bk_rows(table);
  if (bk_cols(table) != cols) {
    bk_fail(be, "cpu gather_rows: table rows of %lld, output rows of %lld",
            (long long)bk_cols(table), (long long)cols);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    if (ids[r] < 0 || ids[r] >= trows) {
      bk_fail(be, "cpu gather_rows: id %d outside the table's %lld rows", ids[r],
              (long long)trows);
      return;
    }
  }
  if (y->dt == table->dt) {
    size_t rb = (size_t)cols * bk_dtype_size(y->dt);
    for (int64_t r = 0; r < rows; r++)
      memcpy((char *)y->data + r * rb, (const char *)table->data + (size_t)ids[r] * rb, rb);
    return;
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) st_f(y, r * cols + c, ld_f(table, ids[r] * cols + c));
}

void cpu_transpose(BkBackend *be, BkTensor *y, const BkTensor *x) {
  int64_t R = bk_rows(x), C = bk_cols(x);
  if (y->dt != x->dt || bk_numel(y) != R * C) {
    bk_fail(be, "cpu transpose: shape or dtype mismatch");
    return;
  }
  size_t es = bk_dtype_size(x->dt);
  const char *src = x->data;
  char *dst = y->data;
  /* blocked for cache locality */
  const int64_t B = 32;
#pragma omp parallel for collapse(2) schedule(static) if (R * C > 65536)
  for (int64_t r0 = 0; r0 < R; r0 += B)
    for (int64_t c0 = 0; c0 < C; c0 += B)
      for (int64_t r = r0; r < r0 + B && r < R; r++)
        for (int64_t c = c0; c < c0 + B && c < C; c++)
          memcpy(dst + (c * R + r) * es, src + (r * C + c) * es, es);
}

/* tokens[h·w, 4C] <-> z[C, 2h, 2w]: token (r, c), element (py·2 + px)·C + ch. */
static bool latent_shapes(BkBackend *be, const BkTensor *tokens, const BkTensor *z,
                          int64_t *C, int64_t *h, int64_t *w) {
  if (z->nd != 3 || tokens->nd != 2 || z->ne[1] % 2 || z->ne[2] % 2 ||
      tokens->ne[0] != (z->ne[1] / 2) * (z->ne[2] / 2) || tokens->ne[1] != 4 * z->ne[0] ||
      z->dt != BK_F32 || tokens->dt != BK_F32)
    return bk_fail(be, "cpu latent pack: tokens [%lld,%lld] do not match z [%lld,%lld,%lld]",
                   (long long)tokens->ne[0], (long long)tokens->ne[1], (long long)z->ne[0],
                   (long long)z->ne[1], (long long)z->ne[2]);
  *C = z->ne[0];
  *h = z->ne[1] / 2;
  *w = z->ne[2] / 2;
  return true;
}

void cpu_latent_pack(BkBackend *be, BkTensor *tokens, const BkTensor *z) {
  int64_t C, h, w;
  if (!latent_shapes(be, tokens, z, &C, &h, &w)) return;
  const float *zs = z->data;
  float *t = tokens->data;
  for (int64_t r = 0; r < h; r++)
    for (int64_t c = 0; c < w; c++)
      for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++)
          for (int64_t ch = 0; ch < C; ch++)
            t[(r * w + c) * 4 * C + (py * 2 + px) * C + ch] =
              zs[(ch * 2 * h + 2 * r + py) * 2 * w + 2 * c + px];
}

void cpu_latent_unpack(BkBackend *be, BkTensor *z, const BkTensor *tokens) {
  int64_t C, h, w;
  if (!latent_shapes(be, tokens, z, &C, &h, &w)) return;
  float *zs = z->data;
  const float *t = tokens->data;
  for (int64_t r = 0; r < h; r++)
    for (int64_t c = 0; c < w; c++)
      for (int py = 0; py < 2; py++)
        for (int px = 0; px < 2; px++)
          for (int64_t ch = 0; ch < C; ch++)
            zs[(ch * 2 * h + 2 * r + py) * 2 * w + 2 * c + px] =
              t[(r * w + c) * 4 * C + (py * 2 + px) * C + ch];
}

/* RoPE tables for one position (HF Qwen2 "default" rope): inv_freq_k = 1/θ^(2k/D) in
 * fp32 (pow then reciprocal, each rounded), angle = fp32(pos · inv_freq_k), cos/sin in
 * fp32 then rounded to bf16. */
static void rope_row(int64_t pos, int half, int D, float theta, float *cs, float *sn) {
  for (int k = 0; k < half; k++) {
    float expo = (float)(2 * k) / (float)D;
    float inv = 1.0f / powf(theta, expo);
    float ang = (float)pos * inv;
    cs[k] = bk_round_bf16(cosf(ang));
    sn[k] = bk_round_bf16(sinf(ang));
  }
}

void cpu_rope(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int pos_step,
              float theta) {
  if (x->nd != 3 || !bk_same_shape(y, x) || y->dt != x->dt || x->ne[2] % 2) {
    bk_fail(be, "cpu rope: needs x[L,H,D] with even D and y of the same shape and dtype");
    return;
  }
  const int64_t L = x->ne[0], H = x->ne[1];
  const int D = (int)x->ne[2], half = D / 2;
  const bool bf = x->dt == BK_BF16;
#pragma omp parallel if (L * H * D > 32768)
  {
    float *cs = malloc(sizeof(float) * (size_t)half * 2), *sn = cs + half;
    float *tmp = malloc(sizeof(float) * (size_t)D);
    int64_t last_pos = -1;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < L; i++) {
      int64_t pos = pos0 + i * pos_step;
      if (pos != last_pos) {
        rope_row(pos, half, D, theta, cs, sn);
        last_pos = pos;
      }
      for (int64_t h = 0; h < H; h++) {
        int64_t base = (i * H + h) * D;
        for (int d = 0; d < D; d++) tmp[d] = ld_f(x, base + d);
        for (int d = 0; d < D; d++) {
          float c = cs[d % half], s = sn[d % half];
          float rot = d < half ? -tmp[d + half] : tmp[d - half];
          float out;
          if (bf) /* q·cos + rotate_half(q)·sin, op by op in bf16 */
            out = bk_round_bf16(bk_round_bf16(tmp[d] * c) + bk_round_bf16(rot * s));
          else
            out = tmp[d] * c + rot * s;
          st_f(y, base + d, out);
        }
      }
    }
    free(cs);
    free(tmp);
  }
}
