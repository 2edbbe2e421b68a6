/* tests/unit/test_ops_conv.c — the CPU backend's image ops (kernels/cpu/cpu_conv.c):
 * conv2d, group_norm, upsample2x against naive references on random inputs with odd
 * shapes (non-square images and kernels, channel counts that are not multiples of 8,
 * kernels 1 and 3, strides 1 and 2, asymmetric padding, one-channel groups).
 *
 * conv2d is checked twice: against an fp64 loop (accuracy, with the fp32 summation
 * bound as tolerance) and against the naive fp32 loop in the documented order
 * (b + Σ_k w·x, k = (ci,dy,dx)), which it must equal bit for bit, for every micro-kernel
 * the CPU has (BAGEL_CPU_ISA) and for 1 and 2 threads.
 *
 * The ops are called directly (not through bk_cpu_new's table) so this test links
 * only the code under test. */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

static BkBackend *test_backend(int threads) {
  BkBackend *be = g_new0(BkBackend, 1);
  CpuImpl *impl = g_new0(CpuImpl, 1);
  impl->n_threads = threads;
  be->impl = impl;
  return be;
}

static void test_backend_free(BkBackend *be) {
  g_free(be->impl);
  g_free(be);
}

/* deterministic uniform values in [lo, hi) */
static float *random_floats(GRand *r, int64_t n, double lo, double hi) {
  float *v = g_new(float, n ? n : 1);
  for (int64_t i = 0; i < n; i++) v[i] = (float)g_rand_double_range(r, lo, hi);
  return v;
}

/* ---- conv2d ------------------------------------------------------------------------ */

typedef struct {
  int cin, h, w, cout, kh, kw, stride;
  int pad[4];   /* top, left, bottom, right */
  bool bias;
} ConvCase;

static const ConvCase conv_cases[] = {
  {3, 7, 11, 5, 3, 3, 1, {1, 1, 1, 1}, true},       /* conv_in-like, tiny */
  {13, 9, 6, 37, 3, 3, 2, {0, 0, 1, 1}, true},      /* FLUX Downsample: pad right/bottom */
  {29, 5, 17, 19, 1, 1, 1, {0, 0, 0, 0}, true},     /* 1×1 (nin_shortcut, attention) */
  {6, 8, 13, 10, 3, 3, 1, {2, 0, 1, 3}, false},     /* asymmetric padding, no bias */
  {5, 10, 9, 7, 2, 3, 2, {1, 2, 0, 1}, true},       /* non-square kernel, stride 2 */
  {70, 33, 35, 45, 3, 3, 1, {1, 1, 1, 1}, true},    /* K = 630: several K-blocks, tiles */
  {1, 1, 1, 3, 3, 3, 1, {1, 1, 1, 1}, true},        /* one pixel, all taps but one padded */
  {40, 4, 70, 33, 3, 3, 2, {0, 0, 1, 1}, true},     /* wide rows, strips cross rows */
};

static int64_t conv_out(int in, int pa, int pb, int k, int s) { return (in + pa + pb - k) / s + 1; }

/* fp64 reference, and the Σ|b| + Σ|w·x| of each output (the scale of its fp32 error) */
static void conv_ref64(const ConvCase *c, const float *x, const float *w, const float *b,
                       double *y, double *absy) {
  int64_t ho = conv_out(c->h, c->pad[0], c->pad[2], c->kh, c->stride);
  int64_t wo = conv_out(c->w, c->pad[1], c->pad[3], c->kw, c->stride);
  for (int co = 0; co < c->cout; co++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        double s = b ? b[co] : 0.0, a = b ? fabs(b[co]) : 0.0;
        for (int ci = 0; ci < c->cin; ci++)
          for (int dy = 0; dy < c->kh; dy++)
            for (int dx = 0; dx < c->kw; dx++) {
              int64_t iy = oy * c->stride + dy - c->pad[0], ix = ox * c->stride + dx - c->pad[1];
              if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
              double t = (double)w[((co * c->cin + ci) * c->kh + dy) * c->kw + dx] *
                         x[(ci * c->h + iy) * c->w + ix];
              s += t;
              a += fabs(t);
            }
        y[(co * ho + oy) * wo + ox] = s;
        absy[(co * ho + oy) * wo + ox] = a;
      }
}

/* the naive fp32 loop in the order the op documents (zero taps included) */
static void conv_ref32(const ConvCase *c, const float *x, const float *w, const float *b,
                       float *y) {
  int64_t ho = conv_out(c->h, c->pad[0], c->pad[2], c->kh, c->stride);
  int64_t wo = conv_out(c->w, c->pad[1], c->pad[3], c->kw, c->stride);
  for (int co = 0; co < c->cout; co++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        float s = b ? b[co] : 0.0f;
        for (int ci = 0; ci < c->cin; ci++)
          for (int dy = 0; dy < c->kh; dy++)
            for (int dx = 0; dx < c->kw; dx++) {
              int64_t iy = oy * c->stride + dy - c->pad[0], ix = ox * c->stride + dx - c->pad[1];
              float xv = iy < 0 || iy >= c->h || ix < 0 || ix >= c->w
                             ? 0.0f : x[(ci * c->h + iy) * c->w + ix];
              s += w[((co * c->cin + ci) * c->kh + dy) * c->kw + dx] * xv;
            }
        y[(co * ho + oy) * wo + ox] = s;
      }
}

static void run_conv(BkBackend *be, const ConvCase *c, float *x, float *w, float *b, float *y) {
  int64_t ho = conv_out(c->h, c->pad[0], c->pad[2], c->kh, c->stride);
  int64_t wo = conv_out(c->w, c->pad[1], c->pad[3], c->kw, c->stride);
  BkTensor tx = bk_tensor(x, BK_F32, 3, (int64_t[]){c->cin, c->h, c->w});
  BkTensor tw = bk_tensor(w, BK_F32, 4, (int64_t[]){c->cout, c->cin, c->kh, c->kw});
  BkTensor tb = bk_tensor(b, BK_F32, 1, (int64_t[]){c->cout});
  BkTensor ty = bk_tensor(y, BK_F32, 3, (int64_t[]){c->cout, ho, wo});
  memset(y, 0xff, (size_t)bk_nbytes(&ty));  /* NaN: every output must be written */
  cpu_conv2d(be, &ty, &tx, &tw, c->bias ? &tb : NULL, c->stride, c->pad);
  if (!bk_ok(be)) g_error("conv2d failed: %s", be->error);
}

static const char *isa_names[] = {"generic", "avx2", "avx512"};

static void test_conv2d(void) {
  GRand *r = g_rand_new_with_seed(1234);
  for (size_t ci = 0; ci < G_N_ELEMENTS(conv_cases); ci++) {
    const ConvCase *c = &conv_cases[ci];
    int64_t ho = conv_out(c->h, c->pad[0], c->pad[2], c->kh, c->stride);
    int64_t wo = conv_out(c->w, c->pad[1], c->pad[3], c->kw, c->stride);
    int64_t nx = (int64_t)c->cin * c->h * c->w, nw = (int64_t)c->cout * c->cin * c->kh * c->kw;
    int64_t ny = c->cout * ho * wo, k = (int64_t)c->cin * c->kh * c->kw;
    float *x = random_floats(r, nx, -2, 2);
    float *w = random_floats(r, nw, -1, 1);
    float *b = random_floats(r, c->cout, -0.5, 0.5);
    double *ref = g_new(double, ny), *absref = g_new(double, ny);
    float *ref32 = g_new(float, ny), *y = g_new(float, ny);
    conv_ref64(c, x, w, c->bias ? b : NULL, ref, absref);
    conv_ref32(c, x, w, c->bias ? b : NULL, ref32);

    /* accuracy against fp64.  Bound: a recursive fp32 sum of K+1 terms errs by at most
     * γ = (K+1)·u / (1 − (K+1)·u) times Σ|terms| (u = 2^-24, products exact in fp64
     * and rounded once in fp32: one more u).  Typical errors are ~√K·u. */
    BkBackend *be = test_backend(2);
    run_conv(be, c, x, w, b, y);
    double num = 0, den = 0, worst = 0, max_abs = 0;
    for (int64_t i = 0; i < ny; i++) {
      double e = fabs(y[i] - ref[i]);
      num += e * e;
      den += ref[i] * ref[i];
      max_abs = MAX(max_abs, e);
      if (absref[i] > 0) worst = MAX(worst, e / absref[i]);
    }
    double u = ldexp(1.0, -24), bound = (k + 2) * u / (1 - (k + 2) * u);
    double rel = sqrt(num / den);
    g_test_message("conv2d x[%d,%d,%d] w[%d,%d,%d,%d] s%d pad(%d,%d,%d,%d)%s: rel L2 %.2e, "
                   "max |err| %.2e, max |err|/sum|w*x| %.2e (bound %.2e)", c->cin, c->h, c->w,
                   c->cout, c->cin, c->kh, c->kw, c->stride, c->pad[0], c->pad[1], c->pad[2],
                   c->pad[3], c->bias ? "" : " no bias", rel, max_abs, worst, bound);
    g_assert_cmpfloat(worst, <=, bound);
    g_assert_cmpfloat(rel, <=, 1e-6);

    /* the documented order, bit for bit, for every micro-kernel and thread count */
    const char *saved = g_getenv("BAGEL_CPU_ISA");
    char *saved_copy = g_strdup(saved);
    for (size_t ii = 0; ii < G_N_ELEMENTS(isa_names); ii++)
      for (int nt = 1; nt <= 2; nt++) {
        BkBackend *be2 = test_backend(nt);
        g_setenv("BAGEL_CPU_ISA", isa_names[ii], TRUE);
        run_conv(be2, c, x, w, b, y);
        g_assert_cmpint(memcmp(y, ref32, (size_t)ny * sizeof *y), ==, 0);
        test_backend_free(be2);
      }
    if (saved_copy) g_setenv("BAGEL_CPU_ISA", saved_copy, TRUE);
    else g_unsetenv("BAGEL_CPU_ISA");
    g_free(saved_copy);

    test_backend_free(be);
    g_free(x); g_free(w); g_free(b); g_free(ref); g_free(absref); g_free(ref32); g_free(y);
  }
  g_rand_free(r);
}

static void test_conv2d_errors(void) {
  BkBackend *be = test_backend(1);
  float x[2 * 4 * 4] = {0}, w[3 * 2 * 9] = {0}, y[3 * 4 * 4];
  BkTensor tx = bk_tensor(x, BK_F32, 3, (int64_t[]){2, 4, 4});
  BkTensor tw = bk_tensor(w, BK_F32, 4, (int64_t[]){3, 2, 3, 3});
  BkTensor ty = bk_tensor(y, BK_F32, 3, (int64_t[]){3, 3, 4});   /* should be [3,4,4] */
  cpu_conv2d(be, &ty, &tx, &tw, NULL, 1, (const int[]){1, 1, 1, 1});
  g_assert_false(bk_ok(be));
  g_assert_nonnull(strstr(be->error, "conv2d"));
  g_assert_nonnull(strstr(be->error, "expected y[3,4,4]"));
  bk_clear_error(be);
  BkTensor tw16 = tw;
  tw16.dt = BK_BF16;
  ty.ne[1] = 4;
  cpu_conv2d(be, &ty, &tx, &tw16, NULL, 1, (const int[]){1, 1, 1, 1});
  g_assert_false(bk_ok(be));
  g_assert_nonnull(strstr(be->error, "F32"));
  test_backend_free(be);
}

/* One VAE-sized conv (128→128, 3×3, 96×96), for the record: GFLOP/s, not asserted. */
static void test_conv2d_speed(void) {
  const ConvCase c = {128, 96, 96, 128, 3, 3, 1, {1, 1, 1, 1}, true};
  GRand *r = g_rand_new_with_seed(7);
  float *x = random_floats(r, 128 * 96 * 96, -1, 1), *w = random_floats(r, 128 * 128 * 9, -1, 1);
  float *b = random_floats(r, 128, -1, 1), *y = g_new(float, 128 * 96 * 96);
  BkBackend *be = test_backend(2);
  run_conv(be, &c, x, w, b, y);   /* warm-up */
  gint64 t0 = g_get_monotonic_time();
  run_conv(be, &c, x, w, b, y);
  double s = (g_get_monotonic_time() - t0) * 1e-6;
  double flop = 2.0 * 128 * 128 * 9 * 96 * 96;
  g_test_message("conv2d 128->128 3x3 at 96x96 (%.2f GFLOP), 2 threads: %.3f s, %.1f GFLOP/s",
                 flop * 1e-9, s, flop * 1e-9 / s);
  test_backend_free(be);
  g_free(x); g_free(w); g_free(b); g_free(y);
  g_rand_free(r);
}

/* ---- group_norm -------------------------------------------------------------------- */

typedef struct {
  int c, h, w, groups;
  double offset;   /* added to x: a large mean tests the variance's precision */
} GnCase;

static const GnCase gn_cases[] = {
  {6, 7, 5, 3, 0.0},
  {32, 9, 11, 32, 0.0},      /* one channel per group */
  {96, 16, 13, 32, 100.0},   /* mean 100, std ~1: cancellation in a one-pass variance */
  {64, 1, 1, 32, -3.0},      /* two values per group */
  {40, 23, 1, 8, 0.5},
};

static void test_group_norm(void) {
  GRand *r = g_rand_new_with_seed(99);
  for (size_t gi = 0; gi < G_N_ELEMENTS(gn_cases); gi++)
    for (int swish = 0; swish <= 1; swish++) {
      const GnCase *c = &gn_cases[gi];
      int64_t hw = (int64_t)c->h * c->w, n = c->c * hw, cpg = c->c / c->groups;
      float *x = random_floats(r, n, -2, 2);
      for (int64_t i = 0; i < n; i++) x[i] += (float)c->offset;
      float *gamma = random_floats(r, c->c, 0.5, 1.5), *beta = random_floats(r, c->c, -1, 1);
      float *y = g_new(float, n);
      BkTensor tx = bk_tensor(x, BK_F32, 3, (int64_t[]){c->c, c->h, c->w});
      BkTensor ty = bk_tensor(y, BK_F32, 3, (int64_t[]){c->c, c->h, c->w});
      BkTensor tg = bk_tensor(gamma, BK_F32, 1, (int64_t[]){c->c});
      BkTensor tb = bk_tensor(beta, BK_F32, 1, (int64_t[]){c->c});
      BkBackend *be = test_backend(2);
      cpu_group_norm(be, &ty, &tx, &tg, &tb, c->groups, 1e-6f, swish);
      g_assert_true(bk_ok(be));
      double max_rel = 0, max_abs = 0;
      for (int g = 0; g < c->groups; g++) {
        const float *xs = x + g * cpg * hw;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < cpg * hw; i++) mean += xs[i];
        mean /= (double)(cpg * hw);
        for (int64_t i = 0; i < cpg * hw; i++) var += (xs[i] - mean) * (xs[i] - mean);
        var /= (double)(cpg * hw);
        for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ch++)
          for (int64_t j = 0; j < hw; j++) {
            double v = (x[ch * hw + j] - mean) / sqrt(var + 1e-6) * gamma[ch] + beta[ch];
            if (swish) v = v / (1.0 + exp(-v));
            double e = fabs(y[ch * hw + j] - v);
            max_abs = MAX(max_abs, e);
            max_rel = MAX(max_rel, e / MAX(fabs(v), 1e-6));
          }
      }
      /* Normalisation is done in double and rounded once (≤ 0.5 ulp = 6e-8 relative);
       * swish adds fp32 exp, add, divide, multiply: a few ulp.  torch's fp32 kernel
       * errs by ~1e-6 relative to the input scale, so these bounds mean "as good as". */
      double tol = swish ? 1e-6 : 1.5e-7;
      g_test_message("group_norm [%d,%d,%d] %d groups, offset %g%s: max rel err %.2e "
                     "(tol %.1e), max |err| %.2e", c->c, c->h, c->w, c->groups, c->offset,
                     swish ? " +swish" : "", max_rel, tol, max_abs);
      g_assert_cmpfloat(max_rel, <=, tol);
      test_backend_free(be);
      g_free(x); g_free(gamma); g_free(beta); g_free(y);
    }
  g_rand_free(r);
}

static void test_group_norm_errors(void) {
  BkBackend *be = test_backend(1);
  float x[6 * 4], g[6] = {0}, b[6] = {0}, y[6 * 4];
  BkTensor tx = bk_tensor(x, BK_F32, 3, (int64_t[]){6, 2, 2});
  BkTensor ty = bk_tensor(y, BK_F32, 3, (int64_t[]){6, 2, 2});
  BkTensor tg = bk_tensor(g, BK_F32, 1, (int64_t[]){6});
  BkTensor tb = bk_tensor(b, BK_F32, 1, (int64_t[]){6});
  cpu_group_norm(be, &ty, &tx, &tg, &tb, 4, 1e-6f, false);   /* 6 % 4 != 0 */
  g_assert_false(bk_ok(be));
  g_assert_nonnull(strstr(be->error, "group_norm"));
  test_backend_free(be);
}

/* ---- upsample2x -------------------------------------------------------------------- */

static void test_upsample2x(void) {
  GRand *r = g_rand_new_with_seed(5);
  const int c = 5, h = 3, w = 7;
  float *x = random_floats(r, c * h * w, -1, 1), *y = g_new(float, c * 4 * h * w);
  BkTensor tx = bk_tensor(x, BK_F32, 3, (int64_t[]){c, h, w});
  BkTensor ty = bk_tensor(y, BK_F32, 3, (int64_t[]){c, 2 * h, 2 * w});
  BkBackend *be = test_backend(2);
  cpu_upsample2x(be, &ty, &tx);
  g_assert_true(bk_ok(be));
  for (int ch = 0; ch < c; ch++)
    for (int i = 0; i < 2 * h; i++)
      for (int j = 0; j < 2 * w; j++)
        g_assert_true(y[(ch * 2 * h + i) * 2 * w + j] == x[(ch * h + i / 2) * w + j / 2]);
  BkTensor bad = bk_tensor(y, BK_F32, 3, (int64_t[]){c, 2 * h, 2 * w - 1});
  cpu_upsample2x(be, &bad, &tx);
  g_assert_false(bk_ok(be));
  test_backend_free(be);
  g_free(x);
  g_free(y);
  g_rand_free(r);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/ops/conv2d", test_conv2d);
  g_test_add_func("/ops/conv2d/errors", test_conv2d_errors);
  g_test_add_func("/ops/conv2d/speed", test_conv2d_speed);
  g_test_add_func("/ops/group_norm", test_group_norm);
  g_test_add_func("/ops/group_norm/errors", test_group_norm_errors);
  g_test_add_func("/ops/upsample2x", test_upsample2x);
  return g_test_run();
}
