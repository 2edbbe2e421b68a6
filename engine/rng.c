/* engine/rng.c — torch-compatible CPU random numbers (rng.h). */
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

void tg_seed(TorchGen *g, uint64_t seed) {
  g->mt[0] = (uint32_t)seed;
  for (int i = 1; i < 624; i++)
    g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
  g->idx = 624;
  g->has_cached = 0;
  g->cached = 0;
}

uint32_t tg_u32(TorchGen *g) {
  if (g->idx >= 624) {
    for (int i = 0; i < 624; i++) {
      uint32_t y = (g->mt[i] & 0x80000000u) | (g->mt[(i + 1) % 624] & 0x7fffffffu);
      g->mt[i] = g->mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->idx = 0;
  }
  uint32_t y = g->mt[g->idx++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

static inline float fbits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t ubits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Cephes logf as in ATen's avx_mathfun.h.  The fmaf calls are where GCC contracts the
 * vector mul+add pairs (-ffp-contract=fast, the default torch is built with); this file
 * itself is compiled without contraction, so every other operation rounds separately. */
float tg_cephes_logf(float x) {
  x = fmaxf(x, fbits(0x00800000u)); /* cut off denormals */
  int32_t e0 = (int32_t)(ubits(x) >> 23) - 127;
  float e = (float)e0 + 1.0f;
  x = fbits((ubits(x) & ~0x7f800000u) | ubits(0.5f));
  int below = x < 0.707106781186547524f;
  float tmp = below ? x : 0.0f;
  x = x - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  x = x + tmp;
  float z = x * x;
  float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  y = fmaf(y, z, e * -2.12194440e-4f);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  return fmaf(e, 0.693359375f, x);
}

/* Cephes sincosf as in ATen's avx_mathfun.h (same contraction rule as above). */
void tg_cephes_sincosf(float xin, float *s, float *c) {
  uint32_t sign = ubits(xin) & 0x80000000u;
  float x = fabsf(xin);
  float y = x * 1.27323954473516f; /* 4/π */
  int32_t j = (int32_t)y;
  j = (j + 1) & ~1;
  y = (float)j;
  uint32_t swap_sin = (uint32_t)(j & 4) << 29;
  int poly = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
  uint32_t sign_sin = sign ^ swap_sin;
  float z = x * x;
  float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
  yc = fmaf(yc, z, 4.166664568298827E-002f);
  yc = yc * z;
  yc = fmaf(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
  ys = fmaf(ys, z, -1.6666654611E-1f);
  ys = ys * z;
  ys = fmaf(ys, x, x);
  float vs = poly ? ys : yc, vc = poly ? yc : ys;
  *s = fbits(ubits(vs) ^ sign_sin);
  *c = fbits(ubits(vc) ^ sign_cos);
}

static inline float uniform24(TorchGen *g) {
  return (float)(tg_u32(g) & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

/* Box–Muller on one block of 16 uniforms, in place. */
static void box_muller16(float *x) {
  const float two_pi = (float)(2.0 * M_PI);
  for (int j = 0; j < 8; j++) {
    float radius = sqrtf(-2.0f * tg_cephes_logf(1.0f - x[j]));
    float s, c;
    tg_cephes_sincosf(two_pi * x[j + 8], &s, &c);
    x[j] = radius * c;
    x[j + 8] = radius * s;
  }
}

/* torch's scalar normal_distribution<double>: used for fewer than 16 values. */
static double normal_double(TorchGen *g) {
  if (g->has_cached) {
    g->has_cached = 0;
    return g->cached;
  }
  uint64_t a = tg_u32(g), b = tg_u32(g);
  double u1 = (double)(((a << 32) | b) & ((1ULL << 53) - 1)) * 0x1p-53;
  a = tg_u32(g);
  b = tg_u32(g);
  double u2 = (double)(((a << 32) | b) & ((1ULL << 53) - 1)) * 0x1p-53;
  double r = sqrt(-2.0 * log1p(-u2));
  double theta = 2.0 * M_PI * u1;
  g->cached = r * sin(theta);
  g->has_cached = 1;
  return r * cos(theta);
}

#define TG_CHUNK 4096 /* a multiple of 16 */

void tg_randn_stream(TorchGen *g, uint64_t n, TgEmit emit, void *user) {
  if (n < 16) {
    float v[16];
    for (uint64_t i = 0; i < n; i++) v[i] = (float)normal_double(g);
    if (n) emit(user, 0, v, (size_t)n);
    return;
  }
  const uint64_t nfull = n / 16 * 16, rem = n % 16;
  float *buf = malloc(TG_CHUNK * sizeof(float));
  float held[16];   /* the last full block, held back when a tail block follows */
  uint64_t pos = 0;
  while (pos < nfull) {
    size_t k = (size_t)(nfull - pos < TG_CHUNK ? nfull - pos : TG_CHUNK);
    for (size_t i = 0; i < k; i++) buf[i] = uniform24(g);
    for (size_t i = 0; i < k; i += 16) box_muller16(buf + i);
    if (rem && pos + k == nfull) {
      memcpy(held, buf + k - 16, sizeof held);
      if (k > 16) emit(user, pos, buf, k - 16);
    } else {
      emit(user, pos, buf, k);
    }
    pos += k;
  }
  if (rem) {
    /* torch draws the uniforms of the rem trailing elements, then 16 fresh ones that
     * replace the last 16 outputs */
    for (uint64_t i = 0; i < rem; i++) (void)uniform24(g);
    float tail[16];
    for (int i = 0; i < 16; i++) tail[i] = uniform24(g);
    box_muller16(tail);
    /* outputs [nfull-16, n-16) keep the held block's first rem values */
    emit(user, nfull - 16, held, (size_t)rem);
    emit(user, n - 16, tail, 16);
  }
  free(buf);
}

typedef struct {
  float *out;
} CopyEmit;

static void copy_emit(void *user, uint64_t off, const float *v, size_t k) {
  memcpy(((CopyEmit *)user)->out + off, v, k * sizeof(float));
}

void tg_randn(TorchGen *g, float *out, size_t n) {
  CopyEmit ce = {out};
  tg_randn_stream(g, n, copy_emit, &ce);
}
