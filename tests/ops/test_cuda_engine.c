/* tests/ops/test_cuda_engine.c — the CUDA backend under the whole engine (public API,
 * tiny checkpoint): what the op parity test cannot see.
 *  /cuda-engine/denoise-no-alloc  after the first denoising step no device memory is
 *     allocated any more (the engine's arena, the backend's caching pool), with all three
 *     CFG branches running; checked with the backend's counters at every step.
 *  /cuda-engine/bad-numerics  BAGEL_CUDA_NUMERICS other than fast/exact: the backend
 *     does not start, and the error names the variable and its value (engine and backend).
 *  /cuda-engine/oom  a job that needs more device memory than there is fails with one
 *     clear error (needed and free bytes), and the engine runs the next job.  Needs a
 *     small device: run on the emulation with CUEMU_MEM_MB (tests/ops/meson.build); on a
 *     real GPU it is skipped.
 * usage: test_cuda_engine TINY_CKPT_DIR */
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "bagel.h"
#include "cuda_backend.h"
#include "cuda_probe.h"
#include "engine_internal.h"

static const char *ckpt;

typedef struct {
  BagelEngine *e;
  int steps_seen;
  uint64_t mallocs_after_first;  /* at the report of step 1 */
  uint64_t mallocs_last;         /* at each later report */
  uint64_t max_later;
} Watch;

static gboolean on_progress(const char *stage, int step, int total, double elapsed, gpointer user) {
  (void)total, (void)elapsed;
  Watch *w = user;
  BkCudaStats st;
  g_assert_true(bk_cuda_stats(w->e->be, &st));
  if (!strcmp(stage, "denoise")) {
    w->steps_seen++;
    if (step == 1) w->mallocs_after_first = st.device_mallocs;
    if (step >= 1) w->max_later = MAX(w->max_later, st.device_mallocs);
  } else if (!strcmp(stage, "vae-decode")) {
    w->max_later = MAX(w->max_later, st.device_mallocs);
  }
  w->mallocs_last = st.device_mallocs;
  return TRUE;
}

static BagelEngine *open_cuda(void) {
  BagelEngineOptions o;
  bagel_engine_options_init(&o);
  o.backend = BAGEL_BACKEND_CUDA;
  GError *err = NULL;
  BagelEngine *e = bagel_engine_open(ckpt, &o, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(bagel_engine_backend_name(e), ==, "cuda");
  return e;
}

static void test_denoise_no_alloc(void) {
  BagelEngine *e = open_cuda();
  BagelGenerateParams p;
  bagel_generate_params_init(&p);
  p.width = 64;
  p.height = 96;
  p.sampler.steps = 6;
  p.sampler.cfg_interval[0] = 0.0f;  /* every step runs the three branches */
  p.sampler.cfg_image = 1.5f;
  p.common.seed = 0;
  Watch w = {.e = e};
  BagelResult r = {0};
  GError *err = NULL;
  g_assert_true(bagel_generate(e, "a red square", &p, on_progress, &w, &r, &err));
  g_assert_no_error(err);
  g_assert_cmpint(w.steps_seen, ==, p.sampler.steps - 1);
  BkCudaStats st;
  bk_cuda_stats(e->be, &st);
  g_test_message("cudaMalloc calls: %llu after the first denoising step, %llu at most later; "
                 "%llu pool reuses", (unsigned long long)w.mallocs_after_first,
                 (unsigned long long)w.max_later, (unsigned long long)st.pool_hits);
  g_assert_cmpuint(w.mallocs_after_first, >, 0);
  g_assert_cmpuint(w.max_later, ==, w.mallocs_after_first);
  /* a second job of the same size allocates nothing at all */
  uint64_t before = st.device_mallocs;
  bagel_result_clear(&r);
  Watch w2 = {.e = e};
  g_assert_true(bagel_generate(e, "a red square", &p, on_progress, &w2, &r, &err));
  g_assert_no_error(err);
  bk_cuda_stats(e->be, &st);
  g_test_message("second job: %llu cudaMalloc calls", (unsigned long long)(st.device_mallocs - before));
  g_assert_cmpuint(st.device_mallocs, ==, before);
  bagel_result_clear(&r);
  bagel_engine_free(e);
}

static void test_oom(void) {
  char msg[256];
  bk_cuda_probe(msg, sizeof msg);
  if (!strstr(msg, "emulation")) {
    g_test_skip("needs the emulated device (CUEMU_MEM_MB sets its memory)");
    return;
  }
  BagelEngine *e = open_cuda();
  /* a 1024² edit: the VAE encoder's activations alone are far more than the device has */
  const int W = 1024, H = 1024;
  guint8 *px = g_malloc((gsize)W * H * 3);
  for (gsize i = 0; i < (gsize)W * H * 3; i++) px[i] = (guint8)(i * 2654435761u >> 24);
  BagelImage img = {.width = W, .height = H, .channels = 3, .stride = W * 3, .pixels = px};
  BagelEditParams ep;
  bagel_edit_params_init(&ep);
  ep.sampler.steps = 2;
  ep.common.seed = 0;
  BagelResult r = {0};
  GError *err = NULL;
  g_assert_false(bagel_edit(e, &img, "make it green", &ep, NULL, NULL, &r, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_BACKEND);
  g_test_message("the error: %s", err->message);
  g_assert_nonnull(strstr(err->message, "CUDA out of memory"));
  g_assert_nonnull(strstr(err->message, "needed"));
  g_assert_nonnull(strstr(err->message, "free"));
  g_assert_null(strchr(err->message, '\n'));
  g_clear_error(&err);
  g_free(px);
  /* the engine is still usable */
  BagelGenerateParams gp;
  bagel_generate_params_init(&gp);
  gp.width = gp.height = 64;
  gp.sampler.steps = 3;
  gp.common.seed = 0;
  g_assert_true(bagel_generate(e, "a red square", &gp, NULL, NULL, &r, &err));
  g_assert_no_error(err);
  g_assert_cmpint(r.image.width, ==, 64);
  bagel_result_clear(&r);
  bagel_engine_free(e);
}

static void test_bad_numerics(void) {
  const char *bad[] = {"exactly", "FAST", ""};
  for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_setenv("BAGEL_CUDA_NUMERICS", bad[i], TRUE);
    BkBackend *be = bk_cuda_new();
    g_assert_nonnull(be);
    g_assert_false(bk_ok(be));
    g_test_message("backend: %s", be->error);
    char want[64];
    g_snprintf(want, sizeof want, "BAGEL_CUDA_NUMERICS=\"%s\"", bad[i]);
    g_assert_nonnull(strstr(be->error, want));
    g_assert_nonnull(strstr(be->error, "exact"));
    bk_backend_free(be);
    BagelEngineOptions o;
    bagel_engine_options_init(&o);
    o.backend = BAGEL_BACKEND_CUDA;
    GError *err = NULL;
    BagelEngine *e = bagel_engine_open(ckpt, &o, &err);
    g_assert_null(e);
    g_assert_nonnull(err);
    g_test_message("engine: %s", err->message);
    g_assert_nonnull(strstr(err->message, want));
    g_assert_null(strchr(err->message, '\n'));
    g_clear_error(&err);
  }
  /* the two good values start */
  const char *good[] = {"fast", "exact"};
  for (unsigned i = 0; i < G_N_ELEMENTS(good); i++) {
    g_setenv("BAGEL_CUDA_NUMERICS", good[i], TRUE);
    BkBackend *be = bk_cuda_new();
    g_assert_nonnull(be);
    if (!bk_ok(be)) g_error("BAGEL_CUDA_NUMERICS=%s: %s", good[i], be->error);
    bk_backend_free(be);
  }
  g_unsetenv("BAGEL_CUDA_NUMERICS");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (argc != 2) {
    g_printerr("usage: %s TINY_CKPT_DIR\n", argv[0]);
    return 2;
  }
  ckpt = argv[1];
  char msg[256];
  if (bk_cuda_probe(msg, sizeof msg) <= 0) {
    printf("SKIP: %s\n", msg);
    return 77;
  }
  g_test_add_func("/cuda-engine/denoise-no-alloc", test_denoise_no_alloc);
  g_test_add_func("/cuda-engine/bad-numerics", test_bad_numerics);
  g_test_add_func("/cuda-engine/oom", test_oom);
  return g_test_run();
}
