/* tests/golden/golden_util.c — golden tensor access and comparison (golden_util.h). */
#include "golden_util.h"

#include <math.h>
#include <string.h>

#include "ops.h"

Golden *golden_open(const char *data_dir, const char *mode) {
  char *name = g_strdup_printf("%s.safetensors", mode);
  char *path = g_build_filename(data_dir, "golden", "tiny", name, NULL);
  GError *err = NULL;
  Golden *g = g_new0(Golden, 1);
  g->st = st_open(path, &err);
  g_assert_no_error(err);
  g->mode = g_strdup(mode);
  g_free(name);
  g_free(path);
  return g;
}

void golden_close(Golden *g) {
  if (!g) return;
  st_close(g->st);
  g_free(g->mode);
  g_free(g);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const StTensor *golden_find(const Golden *g, const char *suffix, int index) {
  size_t n = st_count(g->st);
  const char **names = g_new(const char *, n);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (g_str_has_suffix(st_get(g->st, i)->name, suffix)) names[k++] = st_get(g->st, i)->name;
  qsort(names, k, sizeof *names, cmp_names);
  const StTensor *t = index >= 0 && (size_t)index < k ? st_find(g->st, names[index]) : NULL;
  g_free(names);
  return t;
}

const StTensor *golden_get(const Golden *g, const char *suffix, int index) {
  const StTensor *t = golden_find(g, suffix, index);
  if (!t) g_error("golden %s: no tensor #%d ending with \"%s\"", g->mode, index, suffix);
  return t;
}

int golden_count(const Golden *g, const char *suffix) {
  int k = 0;
  for (size_t i = 0; i < st_count(g->st); i++)
    if (g_str_has_suffix(st_get(g->st, i)->name, suffix)) k++;
  return k;
}

double golden_value(const StTensor *t, int64_t i) {
  switch (t->dtype) {
  case ST_F32: return ((const float *)t->data)[i];
  case ST_F64: return ((const double *)t->data)[i];
  case ST_BF16: return bk_bf16_to_f32(((const uint16_t *)t->data)[i]);
  case ST_I64: return (double)((const int64_t *)t->data)[i];
  case ST_I32: return ((const int32_t *)t->data)[i];
  case ST_U8: return ((const uint8_t *)t->data)[i];
  default: g_error("golden_value: dtype %s", st_dtype_name(t->dtype));
  }
  return NAN;
}

float *golden_floats(const StTensor *t) {
  int64_t n = st_numel(t);
  float *f = g_new(float, n ? n : 1);
  for (int64_t i = 0; i < n; i++) f[i] = (float)golden_value(t, i);
  return f;
}

GoldenDiff golden_compare_floats(const float *ours, const float *ref, int64_t n) {
  GoldenDiff d = {0};
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double diff = (double)ours[i] - (double)ref[i];
    num += diff * diff;
    den += (double)ref[i] * ref[i];
    d.max_abs = fmax(d.max_abs, fabs(diff));
    d.mean_abs += fabs(diff);
    if (isnan(ours[i]) != isnan(ref[i])) d.max_abs = INFINITY;
  }
  d.n = n;
  d.mean_abs = n ? d.mean_abs / n : 0;
  d.rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
  return d;
}

GoldenDiff golden_compare(const float *ours, const StTensor *ref) {
  float *r = golden_floats(ref);
  GoldenDiff d = golden_compare_floats(ours, r, st_numel(ref));
  g_free(r);
  return d;
}

void golden_assert_close(const char *what, const float *ours, const StTensor *ref, double tol) {
  GoldenDiff d = golden_compare(ours, ref);
  g_test_message("%-28s rel L2 %.3e  max|d| %.3e  mean|d| %.3e  (n=%" G_GINT64_FORMAT
                 ", tol %.0e)", what, d.rel_l2, d.max_abs, d.mean_abs, d.n, tol);
  if (!(d.rel_l2 <= tol))
    g_error("%s: relative L2 error %.3e exceeds %.0e (%s)", what, d.rel_l2, tol, ref->name);
}

void golden_assert_u8(const char *what, const guint8 *ours, const StTensor *ref, int max_tol,
                      double mean_tol) {
  int64_t n = st_numel(ref);
  g_assert_cmpint(ref->dtype, ==, ST_U8);
  const guint8 *r = ref->data;
  int maxd = 0;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    int dd = abs((int)ours[i] - (int)r[i]);
    maxd = MAX(maxd, dd);
    sum += dd;
  }
  double mean = n ? sum / n : 0;
  g_test_message("%-28s max|d| %d  mean|d| %.4f  (n=%" G_GINT64_FORMAT ", tol %d / %.2f)", what,
                 maxd, mean, n, max_tol, mean_tol);
  if (maxd > max_tol || mean > mean_tol)
    g_error("%s: uint8 difference max %d mean %.4f exceeds %d / %.2f", what, maxd, mean, max_tol,
            mean_tol);
}

void golden_assert_shape(const StTensor *ref, int nd, const int64_t *shape) {
  int skip = 0;
  while (ref->ndim - skip > nd && ref->shape[skip] == 1) skip++;
  if (ref->ndim - skip != nd) g_error("%s: %d dims, expected %d", ref->name, ref->ndim, nd);
  for (int i = 0; i < nd; i++)
    if (ref->shape[skip + i] != shape[i])
      g_error("%s: dim %d is %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT, ref->name, i,
              ref->shape[skip + i], shape[i]);
}

const char *golden_take_backend(int *argc, char **argv) {
  const char *name = "cpu";
  for (int i = 1; i + 1 < *argc; i++) {
    if (strcmp(argv[i], "--backend")) continue;
    name = argv[i + 1];
    for (int j = i; j + 2 <= *argc; j++) argv[j] = argv[j + 2];
    *argc -= 2;
    break;
  }
  return name;
}

BkBackend *golden_backend_new(const char *name) {
  if (!strcmp(name, "cpu")) return bk_cpu_new(0);
#ifdef BAGEL_HAVE_CUDA
  if (!strcmp(name, "cuda")) {
    BkBackend *be = bk_cuda_new();
    if (!be || !bk_ok(be)) g_error("--backend cuda: %s", be ? be->error : "out of memory");
    return be;
  }
#endif
  g_error("--backend %s: not a backend of this build", name);
  return NULL;
}
