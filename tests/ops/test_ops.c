/* tests/ops/test_ops.c — every op of kernels/ops.h on the CPU backend (the reference)
 * and on the CUDA backend, over a sweep of shapes, compared element by element
 * (llama.cpp's test-backend-ops idea).  Runs on the GPU in the nvcc build (skips with 77
 * when there is none) and on the CUDA emulation in CI (-Dcuda-emu=true).
 *
 * Shapes: the tiny ones of the golden model, odd ones (not multiples of any tile size,
 * single rows/tokens, an empty segment, unaligned row views) and, for the cheap ops, the
 * full-size widths (hidden 3584, MLP 18944, 28 q / 4 KV heads of 128, SigLIP 1152 / 16
 * heads of 72, the VAE's 512-wide attention head).
 *
 * Per case the table gives max|d|, the relative error max|d| / max|ref|, the largest
 * distance in units of the output's last place (bf16 ulp for bf16 outputs, fp32 ulp for
 * fp32), and the share of elements that differ at all.  Tolerances, per op family:
 *  - bf16 outputs: 1 bf16 ulp.  The reference rounds once per op step as the contract
 *    says; a GPU sums in another order (cuBLASLt, tensor cores, tree reductions), which
 *    can flip a rounding tie, never more.
 *  - bf16 attention: max|d| <= 2^-16·max|v| + 2^-8·max|o|.  The tensor-core P·V takes p
 *    as two bf16 terms, hi + lo (the reference keeps p in fp32): each weight moves by at
 *    most 2^-16 of itself and the weights sum to 1, so o moves by at most 2^-16·max|v|;
 *    plus one bf16 rounding of o on each side (the online softmax sums in another order).
 *  - fp32 outputs: max|d| <= 1e-5·max|ref| (linear, conv2d: fp32 sums of up to a few
 *    thousand terms in another order; attention f32: online vs two-pass softmax);
 *    group_norm/layer_norm/rms_norm/rope/cfg_euler/layout ops 4 fp32 ulp (same
 *    arithmetic, double-precision statistics: only a tie can differ).
 * Under the emulation most ops are bit-identical (same fp32 order, no FMA); the
 * tolerances are the ones a GPU needs.  Set TEST_OPS_STRICT=1 to require bit-identity
 * where the emulation should give it (the ops marked exact below), TEST_OPS_REPORT_ONLY=1
 * to print every case without failing.  With BAGEL_CUDA_NUMERICS=exact (the exact-numerics
 * mode, kernels/cuda/exact.cu) linear and attention must match the reference bit for bit:
 * 0 differing elements in every case. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_backend.h"
#include "cuda_probe.h"
#include "ops.h"

static BkBackend *cpu, *gpu;
static GRand *rng;
static gboolean strict, report_only;
/* BAGEL_CUDA_NUMERICS=exact: linear and attention must be bit-identical to the reference
 * (require_identical is set around their comparisons) */
static gboolean exact_numerics, require_identical;

/* ---- buffers on both backends ------------------------------------------------------- */

typedef struct {
  BkTensor c, g;       /* the same tensor on the CPU and on the GPU */
  void *cmem, *gmem;   /* the allocations (views may start later) */
} Pair;

static float frand(float s) { return (float)g_rand_double_range(rng, -s, s); }

static void store_host(void *p, BkDType dt, int64_t i, float v) {
  if (dt == BK_F32) ((float *)p)[i] = v;
  else ((uint16_t *)p)[i] = bk_f32_to_bf16(v);
}
static float load_host(const void *p, BkDType dt, int64_t i) {
  return dt == BK_F32 ? ((const float *)p)[i] : bk_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* A tensor of shape ne on both backends, `skip` extra rows before it (an unaligned view
 * when the row is not a multiple of 16 bytes), filled with uniform(-scale, scale). */
static Pair pair_view(BkDType dt, int nd, const int64_t *ne, float scale, int64_t skip) {
  Pair p;
  BkTensor t = bk_tensor(NULL, dt, nd, ne);
  int64_t row = bk_cols(&t), n = bk_numel(&t) + skip * row;
  size_t bytes = (size_t)n * bk_dtype_size(dt);
  void *host = g_malloc0(bytes + 16);
  for (int64_t i = 0; i < n; i++) store_host(host, dt, i, frand(scale));
  p.cmem = cpu->ops->alloc(cpu, bytes + 16);
  p.gmem = gpu->ops->alloc(gpu, bytes + 16);
  g_assert_nonnull(p.cmem);
  g_assert_nonnull(p.gmem);
  BkTensor whole = bk_tensor(NULL, dt, 1, &n);
  whole.data = p.cmem;
  cpu->ops->upload(cpu, &whole, host);
  whole.data = p.gmem;
  gpu->ops->upload(gpu, &whole, host);
  g_free(host);
  size_t off = (size_t)(skip * row) * bk_dtype_size(dt);
  p.c = t;
  p.c.data = (char *)p.cmem + off;
  p.g = t;
  p.g.data = (char *)p.gmem + off;
  return p;
}
static Pair pair(BkDType dt, int nd, const int64_t *ne, float scale) { return pair_view(dt, nd, ne, scale, 0); }
static Pair pair2(BkDType dt, int64_t r, int64_t c, float scale) { return pair(dt, 2, (int64_t[]){r, c}, scale); }
static Pair pair1(BkDType dt, int64_t n, float scale) { return pair(dt, 1, &n, scale); }

/* An output: zero on the CPU, NaN bytes on the GPU, so an element the GPU never writes
 * shows. */
static Pair out_pair(BkDType dt, int nd, const int64_t *ne) {
  Pair p = pair(dt, nd, ne, 0.0f);
  int64_t n = bk_numel(&p.g);
  void *nan = g_malloc(bk_nbytes(&p.g) + 1);
  memset(nan, 0xff, bk_nbytes(&p.g) + 1);
  (void)n;
  gpu->ops->upload(gpu, &p.g, nan);
  g_free(nan);
  return p;
}
static Pair out2(BkDType dt, int64_t r, int64_t c) { return out_pair(dt, 2, (int64_t[]){r, c}); }

static void pair_free(Pair *p) {
  cpu->ops->free(cpu, p->cmem);
  gpu->ops->free(gpu, p->gmem);
}

/* ---- comparison and the report ---------------------------------------------------------- */

typedef struct {
  char op[20], shape[72];
  const char *dtype;
  int64_t n;
  double max_abs, rel, ulps, mism;
  double tol_ulps, tol_rel;
  gboolean ok;
} Row;

static GArray *rows;

/* distance in units in the last place of dt between two values of dt */
static double ulp_dist(float a, float b, BkDType dt) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
  union { float f; int32_t i; } ua = {a}, ub = {b};
  int64_t ia = ua.i < 0 ? (int64_t)INT32_MIN - ua.i : ua.i, ib = ub.i < 0 ? (int64_t)INT32_MIN - ub.i : ub.i;
  double d = (double)llabs(ia - ib);
  return dt == BK_BF16 ? d / 65536.0 : d;
}

/* Compare the GPU's output with the CPU's; tol_ulps in the output dtype's ulps, or
 * tol_rel as max|d| / max|ref|, or tol_abs as max|d| (whichever is given, > 0). */
static void compare_abs(const char *op, const char *shape, const Pair *p, double tol_ulps, double tol_rel,
                        double tol_abs, gboolean exact) {
  const BkTensor *t = &p->c;
  int64_t n = bk_numel(t);
  size_t bytes = bk_nbytes(t);
  void *hc = g_malloc(bytes + 1), *hg = g_malloc(bytes + 1);
  cpu->ops->download(cpu, hc, &p->c);
  gpu->ops->download(gpu, hg, &p->g);
  g_assert_true(bk_ok(cpu));
  if (!bk_ok(gpu)) g_error("%s %s: the CUDA backend failed: %s", op, shape, gpu->error);
  Row r = {0};
  g_strlcpy(r.op, op, sizeof r.op);
  g_strlcpy(r.shape, shape, sizeof r.shape);
  r.dtype = bk_dtype_name(t->dt);
  r.n = n;
  double max_ref = 0;
  int64_t mism = 0;
  for (int64_t i = 0; i < n; i++) {
    float a = load_host(hc, t->dt, i), b = load_host(hg, t->dt, i);
    double d = isnan(a) != isnan(b) ? INFINITY : (isnan(a) ? 0 : fabs((double)a - b));
    max_ref = fmax(max_ref, fabs(a));
    r.max_abs = fmax(r.max_abs, d);
    r.ulps = fmax(r.ulps, ulp_dist(a, b, t->dt));
    if (memcmp((char *)hc + i * bk_dtype_size(t->dt), (char *)hg + i * bk_dtype_size(t->dt), bk_dtype_size(t->dt)))
      mism++;
  }
  r.rel = max_ref > 0 ? r.max_abs / max_ref : r.max_abs;
  r.mism = n ? (double)mism / n : 0;
  r.tol_ulps = tol_ulps;
  r.tol_rel = tol_rel;
  r.ok = (tol_ulps > 0 && r.ulps <= tol_ulps) || (tol_rel > 0 && r.rel <= tol_rel) ||
         (tol_abs > 0 && r.max_abs <= tol_abs);
  if (tol_abs > 0) r.tol_rel = max_ref > 0 ? tol_abs / max_ref : tol_abs;
  if (strict && exact && mism) r.ok = FALSE;
  if (require_identical) {
    r.ok = mism == 0;
    r.tol_ulps = r.tol_rel = 0;
  }
  g_array_append_val(rows, r);
  printf("  %-13s %-46s %-4s n=%-8lld max|d| %.3e  rel %.3e  ulps %-6g differ %5.1f%%  %s\n", r.op, r.shape, r.dtype,
         (long long)n, r.max_abs, r.rel, r.ulps, 100 * r.mism, r.ok ? "ok" : "OVER");
  if (!r.ok && !report_only)
    g_error("%s %s: max|d| %.3e rel %.3e (%g ulps, %lld elements differ) over the tolerance (%g ulps / rel %.1e)%s",
            op, shape, r.max_abs, r.rel, r.ulps, (long long)mism, tol_ulps, r.tol_rel,
            require_identical ? " (BAGEL_CUDA_NUMERICS=exact: must be bit-identical)"
            : strict && exact && mism ? " (strict: must be bit-identical)" : "");
  g_free(hc);
  g_free(hg);
}

static void compare(const char *op, const char *shape, const Pair *p, double tol_ulps, double tol_rel, gboolean exact) {
  compare_abs(op, shape, p, tol_ulps, tol_rel, 0, exact);
}

/* max |value| of a tensor (CPU side) */
static double max_abs_of(const Pair *p) {
  int64_t n = bk_numel(&p->c);
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(load_host(p->c.data, p->c.dt, i)));
  return m;
}

#define TOL_BF16_ULPS 1.0
#define TOL_F32_ULPS 4.0
#define TOL_F32_REL 1e-5

static double tol_ulps_for(BkDType dt) { return dt == BK_F32 ? TOL_F32_ULPS : TOL_BF16_ULPS; }

/* ---- the ops ----------------------------------------------------------------------------- */

static void test_linear(void) {
  /* M, K, N, x dtype, w dtype, y dtype, bias dtype (-1 none), x view offset */
  struct { int64_t m, k, n; BkDType x, w, y; int b; int skip; } cs[] = {
    {1, 7, 5, BK_BF16, BK_BF16, BK_BF16, BK_BF16, 0},
    {3, 64, 17, BK_BF16, BK_BF16, BK_BF16, -1, 0},
    {5, 33, 129, BK_BF16, BK_BF16, BK_BF16, BK_BF16, 1},   /* rows of 66 bytes: unaligned view */
    {2, 300, 40, BK_F32, BK_BF16, BK_BF16, BK_BF16, 0},    /* fp32 x under autocast (ViT) */
    {7, 256, 64, BK_F32, BK_BF16, BK_BF16, BK_BF16, 0},    /* time embedder 256 -> D */
    {6, 64, 48, BK_F32, BK_BF16, BK_F32, BK_BF16, 0},      /* fp32 out, bf16 bias widened */
    {4, 48, 24, BK_BF16, BK_F32, BK_F32, BK_F32, 0},       /* fp32 weights */
    {4, 48, 24, BK_F32, BK_F32, BK_BF16, BK_F32, 0},       /* fp32 weights, bf16 out */
    {3, 40, 20, BK_BF16, BK_BF16, BK_BF16, BK_F32, 0},     /* fp32 bias, bf16 out: own epilogue */
    {5, 24, 16, BK_BF16, BK_F16, BK_BF16, BK_BF16, 0},     /* fp16 weights: the fallback kernel */
    {1, 3584, 512, BK_BF16, BK_BF16, BK_BF16, BK_BF16, 0}, /* decode k_proj */
    {2, 3584, 3584, BK_BF16, BK_BF16, BK_BF16, -1, 0},     /* o_proj */
    {1, 18944, 64, BK_BF16, BK_BF16, BK_BF16, -1, 0},      /* down_proj width */
    {3, 1152, 4304, BK_BF16, BK_BF16, BK_BF16, BK_BF16, 0},/* SigLIP fc1 */
    {9, 588, 1152, BK_F32, BK_BF16, BK_BF16, BK_BF16, 0},  /* SigLIP patch embedding */
    /* fp32 outputs show every fp32 ulp of the sum: the exact mode's order (odd K, a long K) */
    {5, 33, 40, BK_BF16, BK_BF16, BK_F32, -1, 0},
    {70, 3584, 24, BK_BF16, BK_BF16, BK_F32, BK_BF16, 0},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    Pair x = pair_view(cs[i].x, 2, (int64_t[]){cs[i].m, cs[i].k}, 2, cs[i].skip);
    Pair w = pair2(cs[i].w, cs[i].n, cs[i].k, 1.0f / sqrtf((float)cs[i].k));
    Pair b = pair1(cs[i].b < 0 ? BK_BF16 : (BkDType)cs[i].b, cs[i].n, 0.5f);
    Pair y = out2(cs[i].y, cs[i].m, cs[i].n);
    cpu->ops->linear(cpu, &y.c, &x.c, &w.c, cs[i].b < 0 ? NULL : &b.c);
    gpu->ops->linear(gpu, &y.g, &x.g, &w.g, cs[i].b < 0 ? NULL : &b.g);
    char shape[96];
    g_snprintf(shape, sizeof shape, "%lldx%lld·%lldᵀ x%s w%s b%s%s", (long long)cs[i].m, (long long)cs[i].k,
               (long long)cs[i].n, bk_dtype_name(cs[i].x), bk_dtype_name(cs[i].w),
               cs[i].b < 0 ? "-" : bk_dtype_name((BkDType)cs[i].b), cs[i].skip ? " view" : "");
    require_identical = exact_numerics;
    if (cs[i].y == BK_F32) compare("linear", shape, &y, 0, TOL_F32_REL, TRUE);
    else compare("linear", shape, &y, TOL_BF16_ULPS, 0, TRUE);
    require_identical = FALSE;
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
  }
}

static void test_rms_norm(void) {
  struct { int64_t r, d; BkDType dt; gboolean inplace; } cs[] = {
    {1, 64, BK_BF16, FALSE}, {7, 3584, BK_BF16, FALSE}, {3, 3584, BK_BF16, TRUE},
    {5 * 28, 128, BK_BF16, TRUE},  /* und QK-norm, per head, in place */
    {9 * 4, 128, BK_F32, TRUE},    /* gen QK-norm in fp32 */
    {13 * 4, 16, BK_BF16, TRUE},   /* the tiny model's heads: the whole row read by every lane */
    {6, 20, BK_F32, TRUE}, {5, 5, BK_BF16, TRUE},
    {3, 33, BK_BF16, FALSE}, {2, 1, BK_F32, FALSE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    Pair x = pair2(cs[i].dt, cs[i].r, cs[i].d, 3), w = pair1(BK_BF16, cs[i].d, 1.5f);
    Pair y = cs[i].inplace ? x : out2(cs[i].dt, cs[i].r, cs[i].d);
    cpu->ops->rms_norm(cpu, &y.c, &x.c, &w.c, 1e-6f);
    gpu->ops->rms_norm(gpu, &y.g, &x.g, &w.g, 1e-6f);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld]%s", (long long)cs[i].r, (long long)cs[i].d,
               cs[i].inplace ? " in place" : "");
    compare("rms_norm", shape, &y, tol_ulps_for(cs[i].dt), 0, TRUE);
    pair_free(&x), pair_free(&w);
    if (!cs[i].inplace) pair_free(&y);
  }
}

static void test_layer_norm(void) {
  struct { int64_t r, d; BkDType x, y; } cs[] = {
    {4, 32, BK_BF16, BK_F32}, {9, 1152, BK_BF16, BK_F32}, {3, 33, BK_F32, BK_F32}, {1, 1152, BK_BF16, BK_BF16},
    {5, 13, BK_F32, BK_F32}, {37, 4, BK_F32, BK_F32},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    Pair x = pair2(cs[i].x, cs[i].r, cs[i].d, 2), w = pair1(BK_BF16, cs[i].d, 1.5f), b = pair1(BK_BF16, cs[i].d, 0.5f);
    Pair y = out2(cs[i].y, cs[i].r, cs[i].d);
    cpu->ops->layer_norm(cpu, &y.c, &x.c, &w.c, &b.c, 1e-6f);
    gpu->ops->layer_norm(gpu, &y.g, &x.g, &w.g, &b.g, 1e-6f);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld] x%s", (long long)cs[i].r, (long long)cs[i].d, bk_dtype_name(cs[i].x));
    compare("layer_norm", shape, &y, tol_ulps_for(cs[i].y), 0, TRUE);
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
  }
}

static void test_rope(void) {
  struct { int64_t l, h, d, pos0; int step; BkDType dt; gboolean inplace; } cs[] = {
    {13, 4, 16, 0, 1, BK_BF16, FALSE}, {5, 28, 128, 100, 1, BK_BF16, TRUE}, {9, 4, 128, 7, 0, BK_BF16, FALSE},
    {6, 28, 128, 4097, 0, BK_F32, TRUE},  /* gen rows (fp32), past the first table size */
    {1, 4, 128, 9000, 1, BK_BF16, FALSE}, {3, 3, 6, 2, 1, BK_F32, FALSE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    int64_t ne[3] = {cs[i].l, cs[i].h, cs[i].d};
    Pair x = pair(cs[i].dt, 3, ne, 2);
    Pair y = cs[i].inplace ? x : out_pair(cs[i].dt, 3, ne);
    cpu->ops->rope(cpu, &y.c, &x.c, cs[i].pos0, cs[i].step, 1e6f);
    gpu->ops->rope(gpu, &y.g, &x.g, cs[i].pos0, cs[i].step, 1e6f);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld,%lld] pos %lld+%d·i%s", (long long)cs[i].l, (long long)cs[i].h,
               (long long)cs[i].d, (long long)cs[i].pos0, cs[i].step, cs[i].inplace ? " in place" : "");
    compare("rope", shape, &y, tol_ulps_for(cs[i].dt), 0, TRUE);
    pair_free(&x);
    if (!cs[i].inplace) pair_free(&y);
  }
}

static void test_eltwise(void) {
  /* convert */
  struct { int64_t r, c; BkDType x, y; } cv[] = {{3, 37, BK_F32, BK_BF16}, {5, 3584, BK_BF16, BK_F32}, {1, 1, BK_F32, BK_BF16}};
  for (unsigned i = 0; i < G_N_ELEMENTS(cv); i++) {
    Pair x = pair2(cv[i].x, cv[i].r, cv[i].c, 4), y = out2(cv[i].y, cv[i].r, cv[i].c);
    cpu->ops->convert(cpu, &y.c, &x.c);
    gpu->ops->convert(gpu, &y.g, &x.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld] %s->%s", (long long)cv[i].r, (long long)cv[i].c,
               bk_dtype_name(cv[i].x), bk_dtype_name(cv[i].y));
    compare("convert", shape, &y, 0.5, 0, TRUE);
    pair_free(&x), pair_free(&y);
  }
  /* add: same shape, broadcast row, mixed dtypes */
  struct { int64_t r, c; BkDType a, b, y; gboolean bcast; } ad[] = {
    {5, 3584, BK_BF16, BK_BF16, BK_BF16, FALSE}, {7, 64, BK_BF16, BK_BF16, BK_BF16, TRUE},
    {3, 33, BK_F32, BK_F32, BK_F32, FALSE}, {4, 70, BK_BF16, BK_F32, BK_BF16, TRUE}, {1, 9, BK_BF16, BK_BF16, BK_BF16, FALSE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(ad); i++) {
    Pair a = pair2(ad[i].a, ad[i].r, ad[i].c, 3), b = pair2(ad[i].b, ad[i].bcast ? 1 : ad[i].r, ad[i].c, 3);
    Pair y = out2(ad[i].y, ad[i].r, ad[i].c);
    cpu->ops->add(cpu, &y.c, &a.c, &b.c);
    gpu->ops->add(gpu, &y.g, &a.g, &b.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld]%s %s+%s", (long long)ad[i].r, (long long)ad[i].c,
               ad[i].bcast ? " + row" : "", bk_dtype_name(ad[i].a), bk_dtype_name(ad[i].b));
    compare("add", shape, &y, tol_ulps_for(ad[i].y), 0, TRUE);
    pair_free(&a), pair_free(&b), pair_free(&y);
  }
  /* scale_shift */
  {
    Pair x = pair2(BK_F32, 16, 33, 3), y = out2(BK_F32, 16, 33);
    cpu->ops->scale_shift(cpu, &y.c, &x.c, 0.3611f, -0.1159f);
    gpu->ops->scale_shift(gpu, &y.g, &x.g, 0.3611f, -0.1159f);
    compare("scale_shift", "[16,33] F32", &y, TOL_F32_ULPS, 0, TRUE);
    pair_free(&x), pair_free(&y);
  }
  /* silu_mul (SwiGLU in place, plain SiLU), gelu_tanh */
  struct { int64_t r, c; BkDType dt; gboolean up; } sm[] = {
    {3, 18944, BK_BF16, TRUE}, {5, 128, BK_BF16, TRUE}, {1, 3584, BK_BF16, FALSE}, {2, 37, BK_F32, FALSE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(sm); i++) {
    Pair g = pair2(sm[i].dt, sm[i].r, sm[i].c, 6), u = pair2(sm[i].dt, sm[i].r, sm[i].c, 3);
    cpu->ops->silu_mul(cpu, &g.c, &g.c, sm[i].up ? &u.c : NULL);
    gpu->ops->silu_mul(gpu, &g.g, &g.g, sm[i].up ? &u.g : NULL);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld]%s in place", (long long)sm[i].r, (long long)sm[i].c,
               sm[i].up ? " ·up" : " silu");
    /* expf differs from glibc's by up to 2 fp32 ulps on a GPU: one bf16 ulp on a tie */
    compare("silu_mul", shape, &g, sm[i].dt == BK_F32 ? 8 : TOL_BF16_ULPS, 0, TRUE);
    pair_free(&g), pair_free(&u);
  }
  struct { int64_t r, c; BkDType dt; } ge[] = {{3, 4304, BK_BF16}, {4, 3584, BK_BF16}, {2, 33, BK_F32}};
  for (unsigned i = 0; i < G_N_ELEMENTS(ge); i++) {
    Pair x = pair2(ge[i].dt, ge[i].r, ge[i].c, 5), y = out2(ge[i].dt, ge[i].r, ge[i].c);
    cpu->ops->gelu_tanh(cpu, &y.c, &x.c);
    gpu->ops->gelu_tanh(gpu, &y.g, &x.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)ge[i].r, (long long)ge[i].c);
    compare("gelu_tanh", shape, &y, ge[i].dt == BK_F32 ? 8 : TOL_BF16_ULPS, 0, TRUE);
    pair_free(&x), pair_free(&y);
  }
}

static void test_layout(void) {
  /* gather_rows */
  struct { int64_t rows, cols, n; BkDType t, y; } gr[] = {
    {1000, 3584, 9, BK_BF16, BK_BF16}, {4900, 64, 13, BK_BF16, BK_BF16}, {50, 33, 4, BK_BF16, BK_F32}, {7, 5, 1, BK_F32, BK_F32},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(gr); i++) {
    Pair t = pair2(gr[i].t, gr[i].rows, gr[i].cols, 2), y = out2(gr[i].y, gr[i].n, gr[i].cols);
    int32_t *ids = g_new(int32_t, gr[i].n);
    for (int64_t k = 0; k < gr[i].n; k++) ids[k] = g_rand_int_range(rng, 0, (gint32)gr[i].rows);
    ids[0] = (int32_t)gr[i].rows - 1;
    cpu->ops->gather_rows(cpu, &y.c, &t.c, ids);
    gpu->ops->gather_rows(gpu, &y.g, &t.g, ids);
    char shape[64];
    g_snprintf(shape, sizeof shape, "%lld of [%lld,%lld] %s->%s", (long long)gr[i].n, (long long)gr[i].rows,
               (long long)gr[i].cols, bk_dtype_name(gr[i].t), bk_dtype_name(gr[i].y));
    compare("gather_rows", shape, &y, 0.5, 0, TRUE);
    g_free(ids);
    pair_free(&t), pair_free(&y);
  }
  /* transpose */
  struct { int64_t r, c; BkDType dt; } tr[] = {{37, 45, BK_F32}, {33, 70, BK_BF16}, {1, 5, BK_F32}, {128, 96, BK_F32}};
  for (unsigned i = 0; i < G_N_ELEMENTS(tr); i++) {
    Pair x = pair2(tr[i].dt, tr[i].r, tr[i].c, 2), y = out2(tr[i].dt, tr[i].c, tr[i].r);
    cpu->ops->transpose(cpu, &y.c, &x.c);
    gpu->ops->transpose(gpu, &y.g, &x.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld]ᵀ", (long long)tr[i].r, (long long)tr[i].c);
    compare("transpose", shape, &y, 0.5, 0, TRUE);
    pair_free(&x), pair_free(&y);
  }
  /* upsample2x */
  struct { int64_t c, h, w; BkDType dt; } up[] = {{4, 5, 7, BK_F32}, {3, 2, 3, BK_BF16}, {32, 16, 8, BK_F32}};
  for (unsigned i = 0; i < G_N_ELEMENTS(up); i++) {
    Pair x = pair(up[i].dt, 3, (int64_t[]){up[i].c, up[i].h, up[i].w}, 2);
    Pair y = out_pair(up[i].dt, 3, (int64_t[]){up[i].c, 2 * up[i].h, 2 * up[i].w});
    cpu->ops->upsample2x(cpu, &y.c, &x.c);
    gpu->ops->upsample2x(gpu, &y.g, &x.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld,%lld]", (long long)up[i].c, (long long)up[i].h, (long long)up[i].w);
    compare("upsample2x", shape, &y, 0.5, 0, TRUE);
    pair_free(&x), pair_free(&y);
  }
  /* latent pack / unpack */
  struct { int64_t c, h, w; } lt[] = {{16, 6, 8}, {16, 2, 2}, {16, 64, 32}};
  for (unsigned i = 0; i < G_N_ELEMENTS(lt); i++) {
    int64_t h = lt[i].h / 2, w = lt[i].w / 2;
    Pair z = pair(BK_F32, 3, (int64_t[]){lt[i].c, lt[i].h, lt[i].w}, 2), t = out2(BK_F32, h * w, 4 * lt[i].c);
    cpu->ops->latent_pack(cpu, &t.c, &z.c);
    gpu->ops->latent_pack(gpu, &t.g, &z.g);
    char shape[64];
    g_snprintf(shape, sizeof shape, "z[%lld,%lld,%lld]", (long long)lt[i].c, (long long)lt[i].h, (long long)lt[i].w);
    compare("latent_pack", shape, &t, 0.5, 0, TRUE);
    Pair z2 = out_pair(BK_F32, 3, (int64_t[]){lt[i].c, lt[i].h, lt[i].w});
    cpu->ops->latent_unpack(cpu, &z2.c, &t.c);
    gpu->ops->latent_unpack(gpu, &z2.g, &t.g);
    compare("latent_unpack", shape, &z2, 0.5, 0, TRUE);
    pair_free(&z), pair_free(&t), pair_free(&z2);
  }
}

/* Attention: Lq, Lc, Hq, Hkv, D, dtype, causal, q view offset (rows) */
static void run_attention(int64_t Lq, int64_t Lc, int64_t Hq, int64_t Hkv, int64_t D, BkDType dt, BkCausal causal,
                          int skip, const char *what) {
  Pair q = pair_view(dt, 3, (int64_t[]){Lq, Hq, D}, 2, skip);
  Pair kn = pair(dt, 3, (int64_t[]){Lq, Hkv, D}, 2), vn = pair(dt, 3, (int64_t[]){Lq, Hkv, D}, 2);
  Pair kc = pair(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D}, 2), vc = pair(dt, 3, (int64_t[]){Lc ? Lc : 1, Hkv, D}, 2);
  kc.c.ne[0] = kc.g.ne[0] = vc.c.ne[0] = vc.g.ne[0] = Lc;
  Pair o = out_pair(dt, 3, (int64_t[]){Lq, Hq, D});
  float scale = 1.0f / sqrtf((float)D);
  cpu->ops->attention(cpu, &o.c, &q.c, Lc ? &kc.c : NULL, Lc ? &vc.c : NULL, &kn.c, &vn.c, causal, scale);
  gpu->ops->attention(gpu, &o.g, &q.g, Lc ? &kc.g : NULL, Lc ? &vc.g : NULL, &kn.g, &vn.g, causal, scale);
  char shape[96];
  g_snprintf(shape, sizeof shape, "%s q%lld c%lld %lld/%lld×%lld%s%s", what, (long long)Lq, (long long)Lc,
             (long long)Hq, (long long)Hkv, (long long)D, causal ? " causal" : "", skip ? " view" : "");
  require_identical = exact_numerics;
  if (dt == BK_F32) {
    compare("attention", shape, &o, 0, TOL_F32_REL, FALSE);
  } else {
    /* P·V on tensor cores takes p as two bf16 terms (relative error <= 2^-16 per weight,
     * the weights sum to 1): |Δo| <= 2^-16·max|v|, plus one bf16 rounding of o on each
     * side (<= 2^-8·|o|) */
    double tol = ldexp(fmax(max_abs_of(&vn), max_abs_of(&vc)), -16) + ldexp(max_abs_of(&o), -8);
    compare_abs("attention", shape, &o, 0, 0, tol, FALSE);
  }
  require_identical = FALSE;
  pair_free(&q), pair_free(&kn), pair_free(&vn), pair_free(&kc), pair_free(&vc), pair_free(&o);
}

static void test_attention(void) {
  run_attention(13, 0, 4, 2, 16, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "tiny prefill");
  run_attention(6, 19, 4, 2, 16, BK_BF16, BK_CAUSAL_NONE, 0, "tiny image+cache");
  run_attention(14, 8, 2, 2, 16, BK_BF16, BK_CAUSAL_NONE, 0, "tiny ViT");
  run_attention(5, 37, 28, 4, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "text+cache");
  run_attention(1, 70, 28, 4, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "decode");
  /* few query tiles, many keys: the keys are split over blocks and combined */
  run_attention(1, 600, 7, 1, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "decode, split KV");
  run_attention(3, 500, 14, 2, 64, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "3 tokens, split KV");
  run_attention(20, 33, 28, 4, 128, BK_BF16, BK_CAUSAL_NONE, 1, "image+cache");
  run_attention(75, 0, 28, 4, 128, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "prefill, 525 rows/KV head");
  run_attention(50, 0, 16, 16, 72, BK_BF16, BK_CAUSAL_NONE, 0, "SigLIP");
  run_attention(9, 5, 6, 3, 40, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "odd D 40");
  run_attention(7, 3, 4, 1, 20, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "odd D 20, MQA");
  run_attention(3, 0, 2, 1, 256, BK_BF16, BK_CAUSAL_BOTTOM_RIGHT, 0, "bf16 D 256 (SIMT)");
  run_attention(40, 0, 1, 1, 512, BK_F32, BK_CAUSAL_NONE, 0, "VAE mid 512");
  run_attention(128, 0, 1, 1, 128, BK_F32, BK_CAUSAL_NONE, 0, "tiny VAE 128");
  run_attention(11, 6, 4, 2, 48, BK_F32, BK_CAUSAL_BOTTOM_RIGHT, 0, "f32 causal");
  /* an empty block: nothing to do, no failure */
  {
    Pair q = pair(BK_BF16, 3, (int64_t[]){0, 4, 16}, 1), k = pair(BK_BF16, 3, (int64_t[]){0, 2, 16}, 1);
    gpu->ops->attention(gpu, &q.g, &q.g, NULL, NULL, &k.g, &k.g, BK_CAUSAL_BOTTOM_RIGHT, 0.25f);
    g_assert_true(bk_ok(gpu));
    pair_free(&q), pair_free(&k);
  }
}

static void test_conv(void) {
  static const int pad1[4] = {1, 1, 1, 1}, pad0[4] = {0, 0, 0, 0}, pad_down[4] = {0, 0, 1, 1};
  struct { int64_t cin, h, w, cout, k; int stride; const int *pad; gboolean bias; } cs[] = {
    {3, 13, 11, 8, 3, 1, pad1, TRUE}, {16, 8, 8, 32, 1, 1, pad0, TRUE}, {8, 10, 10, 8, 3, 2, pad_down, TRUE},
    {5, 7, 9, 70, 3, 1, pad1, FALSE}, {32, 16, 8, 32, 3, 1, pad1, TRUE}, {128, 4, 4, 16, 3, 1, pad1, TRUE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    int64_t ho = (cs[i].h + cs[i].pad[0] + cs[i].pad[2] - cs[i].k) / cs[i].stride + 1;
    int64_t wo = (cs[i].w + cs[i].pad[1] + cs[i].pad[3] - cs[i].k) / cs[i].stride + 1;
    Pair x = pair(BK_F32, 3, (int64_t[]){cs[i].cin, cs[i].h, cs[i].w}, 2);
    Pair w = pair(BK_F32, 4, (int64_t[]){cs[i].cout, cs[i].cin, cs[i].k, cs[i].k}, 0.3f);
    Pair b = pair1(BK_F32, cs[i].cout, 0.5f), y = out_pair(BK_F32, 3, (int64_t[]){cs[i].cout, ho, wo});
    cpu->ops->conv2d(cpu, &y.c, &x.c, &w.c, cs[i].bias ? &b.c : NULL, cs[i].stride, cs[i].pad);
    gpu->ops->conv2d(gpu, &y.g, &x.g, &w.g, cs[i].bias ? &b.g : NULL, cs[i].stride, cs[i].pad);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld,%lld] -> %lld k%lld s%d%s", (long long)cs[i].cin, (long long)cs[i].h,
               (long long)cs[i].w, (long long)cs[i].cout, (long long)cs[i].k, cs[i].stride, cs[i].bias ? "" : " no bias");
    compare("conv2d", shape, &y, 0, TOL_F32_REL, TRUE);
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
  }
}

static void test_group_norm(void) {
  struct { int64_t c, h, w; int groups; gboolean swish; } cs[] = {
    {32, 5, 7, 32, TRUE}, {64, 16, 16, 32, FALSE}, {16, 3, 3, 8, TRUE}, {128, 40, 41, 32, TRUE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    int64_t ne[3] = {cs[i].c, cs[i].h, cs[i].w};
    Pair x = pair(BK_F32, 3, ne, 3), w = pair1(BK_F32, cs[i].c, 1.5f), b = pair1(BK_F32, cs[i].c, 0.5f);
    Pair y = out_pair(BK_F32, 3, ne);
    cpu->ops->group_norm(cpu, &y.c, &x.c, &w.c, &b.c, cs[i].groups, 1e-6f, cs[i].swish);
    gpu->ops->group_norm(gpu, &y.g, &x.g, &w.g, &b.g, cs[i].groups, 1e-6f, cs[i].swish);
    char shape[64];
    g_snprintf(shape, sizeof shape, "[%lld,%lld,%lld] /%d%s", (long long)cs[i].c, (long long)cs[i].h,
               (long long)cs[i].w, cs[i].groups, cs[i].swish ? " swish" : "");
    compare("group_norm", shape, &y, 8, 0, TRUE);  /* expf of the swish: a GPU's is ≤ 2 ulp off */
    pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
  }
}

static void test_cfg_euler(void) {
  struct { int64_t n; float st, si; BkRenorm rn; float rmin; gboolean ut, ui; } cs[] = {
    {24, 4, 1, BK_RENORM_GLOBAL, 0, TRUE, TRUE},   {24, 4, 1.5f, BK_RENORM_GLOBAL, 0, TRUE, TRUE},
    {24, 4, 2, BK_RENORM_TEXT_CHANNEL, 0, TRUE, TRUE}, {24, 4, 1, BK_RENORM_TEXT_CHANNEL, 0, TRUE, FALSE},
    {24, 3, 1.5f, BK_RENORM_CHANNEL, 0.3f, TRUE, TRUE}, {24, 1, 2, BK_RENORM_GLOBAL, 0, TRUE, TRUE},
    {6, 4, 2, BK_RENORM_GLOBAL, 0, FALSE, FALSE}, {4096, 4, 2, BK_RENORM_TEXT_CHANNEL, 0, TRUE, TRUE},
    {1000, 4, 1.5f, BK_RENORM_GLOBAL, 0, TRUE, TRUE},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cs); i++) {
    const int64_t N = cs[i].n;
    Pair x = pair2(BK_F32, N, 64, 1), c = pair2(BK_BF16, N, 64, 1), ut = pair2(BK_BF16, N, 64, 1);
    Pair ui = pair2(BK_BF16, N, 64, 1), v = out2(BK_F32, N, 64);
    BkCfgStep p = {.cfg_text = cs[i].st, .cfg_img = cs[i].si, .renorm = cs[i].rn, .renorm_min = cs[i].rmin,
                   .dt = 0.0213f};
    cpu->ops->cfg_euler(cpu, &x.c, &c.c, cs[i].ut ? &ut.c : NULL, cs[i].ui ? &ui.c : NULL, &p, &v.c);
    gpu->ops->cfg_euler(gpu, &x.g, &c.g, cs[i].ut ? &ut.g : NULL, cs[i].ui ? &ui.g : NULL, &p, &v.g);
    static const char *names[] = {"global", "channel", "text_channel"};
    char shape[64];
    g_snprintf(shape, sizeof shape, "N%lld %s st%g si%g%s%s", (long long)N, names[cs[i].rn], cs[i].st, cs[i].si,
               cs[i].ut ? "" : " no-ut", cs[i].ui ? "" : " no-ui");
    compare("cfg_euler v", shape, &v, TOL_F32_ULPS, 0, TRUE);
    compare("cfg_euler x", shape, &x, TOL_F32_ULPS, 0, TRUE);
    pair_free(&x), pair_free(&c), pair_free(&ut), pair_free(&ui), pair_free(&v);
  }
}

/* Memory: a copy that overlaps itself, fill_zero, and an allocation the device cannot
 * hold, which must fail clearly and leave the backend usable. */
static void test_memory(void) {
  Pair a = pair2(BK_F32, 10, 16, 1);
  BkTensor src = bk_rows_view(a.g, 0, 8), dst = bk_rows_view(a.g, 2, 8);
  BkTensor srcc = bk_rows_view(a.c, 0, 8), dstc = bk_rows_view(a.c, 2, 8);
  cpu->ops->copy(cpu, &dstc, &srcc);
  gpu->ops->copy(gpu, &dst, &src);
  compare("copy", "overlapping rows", &a, 0.5, 0, TRUE);
  BkTensor z = bk_rows_view(a.g, 3, 2), zc = bk_rows_view(a.c, 3, 2);
  cpu->ops->fill_zero(cpu, &zc);
  gpu->ops->fill_zero(gpu, &z);
  compare("fill_zero", "2 rows", &a, 0.5, 0, TRUE);
  pair_free(&a);

  void *p = gpu->ops->alloc(gpu, (size_t)1 << 50);
  g_assert_null(p);
  g_assert_false(bk_ok(gpu));
  printf("  out of memory: %s\n", gpu->error);
  g_assert_nonnull(strstr(gpu->error, "out of memory"));
  g_assert_nonnull(strstr(gpu->error, "needed 1125899906842624 bytes"));
  g_assert_nonnull(strstr(gpu->error, "free"));
  bk_clear_error(gpu);
  Pair b = pair2(BK_BF16, 3, 8, 1), y = out2(BK_BF16, 3, 8);
  cpu->ops->gelu_tanh(cpu, &y.c, &b.c);
  gpu->ops->gelu_tanh(gpu, &y.g, &b.g);
  compare("gelu_tanh", "after an OOM", &y, TOL_BF16_ULPS, 0, TRUE);
  pair_free(&b), pair_free(&y);
  BkCudaStats st;
  g_assert_true(bk_cuda_stats(gpu, &st));
  printf("  pool: %llu cudaMalloc, %llu reuses, %zu bytes live, %zu cached; %llu GEMM plans, %llu linear fallbacks\n",
         (unsigned long long)st.device_mallocs, (unsigned long long)st.pool_hits, st.live_bytes, st.cached_bytes,
         (unsigned long long)st.gemm_plans, (unsigned long long)st.linear_fallbacks);
  g_assert_false(bk_cuda_stats(cpu, &st));
}

/* Errors of the op boundary: a clear message, no launch. */
static void test_errors(void) {
  Pair x = pair2(BK_BF16, 3, 8, 1), w = pair2(BK_BF16, 5, 9, 1), y = out2(BK_BF16, 3, 5);
  gpu->ops->linear(gpu, &y.g, &x.g, &w.g, NULL);
  g_assert_false(bk_ok(gpu));
  g_assert_nonnull(strstr(gpu->error, "cuda linear"));
  bk_clear_error(gpu);
  int32_t bad = 99;
  Pair row = out2(BK_BF16, 1, 9);
  gpu->ops->gather_rows(gpu, &row.g, &w.g, &bad);
  g_assert_false(bk_ok(gpu));
  g_assert_nonnull(strstr(gpu->error, "id 99"));
  bk_clear_error(gpu);
  pair_free(&x), pair_free(&w), pair_free(&y), pair_free(&row);
}

static void print_summary(void) {
  printf("\n  per op: worst case over its shapes\n  %-13s %6s %10s %10s %8s %8s\n", "op", "cases", "max|d|", "rel",
         "ulps", "differ");
  GPtrArray *seen = g_ptr_array_new();
  for (guint i = 0; i < rows->len; i++) {
    const Row *r0 = &g_array_index(rows, Row, i);
    gboolean done = FALSE;
    for (guint k = 0; k < seen->len; k++) done |= !strcmp(seen->pdata[k], r0->op);
    if (done) continue;
    g_ptr_array_add(seen, (gpointer)r0->op);
    double md = 0, rel = 0, ul = 0, mi = 0;
    unsigned n = 0;
    for (guint j = i; j < rows->len; j++) {
      const Row *r = &g_array_index(rows, Row, j);
      if (strcmp(r->op, r0->op)) continue;
      md = fmax(md, r->max_abs), rel = fmax(rel, r->rel), ul = fmax(ul, r->ulps), mi = fmax(mi, r->mism);
      n++;
    }
    printf("  %-13s %6u %10.3e %10.3e %8g %7.2f%%\n", r0->op, n, md, rel, ul, 100 * mi);
  }
  g_ptr_array_free(seen, TRUE);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  char msg[256];
  if (bk_cuda_probe(msg, sizeof msg) <= 0) {
    printf("SKIP: %s\n", msg);
    return 77;
  }
  printf("device: %s\n", msg);
  strict = g_getenv("TEST_OPS_STRICT") != NULL;
  report_only = g_getenv("TEST_OPS_REPORT_ONLY") != NULL;
  exact_numerics = !g_strcmp0(g_getenv("BAGEL_CUDA_NUMERICS"), "exact");
  if (exact_numerics) printf("BAGEL_CUDA_NUMERICS=exact: linear and attention must be bit-identical\n");
  rng = g_rand_new_with_seed(20251124);
  rows = g_array_new(FALSE, TRUE, sizeof(Row));
  cpu = bk_cpu_new(1);
  gpu = bk_cuda_new();
  g_assert_nonnull(gpu);
  if (!bk_ok(gpu)) g_error("CUDA backend: %s", gpu->error);
  g_test_add_func("/ops/linear", test_linear);
  g_test_add_func("/ops/rms_norm", test_rms_norm);
  g_test_add_func("/ops/layer_norm", test_layer_norm);
  g_test_add_func("/ops/rope", test_rope);
  g_test_add_func("/ops/eltwise", test_eltwise);
  g_test_add_func("/ops/layout", test_layout);
  g_test_add_func("/ops/attention", test_attention);
  g_test_add_func("/ops/conv2d", test_conv);
  g_test_add_func("/ops/group_norm", test_group_norm);
  g_test_add_func("/ops/cfg_euler", test_cfg_euler);
  g_test_add_func("/ops/memory", test_memory);
  g_test_add_func("/ops/errors", test_errors);
  int rc = g_test_run();
  print_summary();
  bk_backend_free(gpu);
  bk_backend_free(cpu);
  g_array_free(rows, TRUE);
  g_rand_free(rng);
  return rc;
}
