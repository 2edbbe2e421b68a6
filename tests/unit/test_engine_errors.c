/* tests/unit/test_engine_errors.c — bad input to the public API: each case gives one
 * clear error (code and a message naming the problem), frees what it allocated, and the
 * same engine then runs a real job.  Also cancellation in every stage, determinism, and a
 * model directory with NaN weights.
 *
 * usage: test_engine_errors TINY_CKPT_DIR */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "bagel-debug.h"
#include "bagel.h"
#include "safetensors.h"

static const char *ckpt_dir;
static BagelEngine *engine;
static BagelDebug small;   /* the golden set's small transforms keep every job fast */

static guint8 *make_image(int w, int h, int channels) {
  guint8 *p = g_malloc((gsize)w * h * channels);
  for (int i = 0; i < w * h * channels; i++) p[i] = (guint8)(i * 37 + (i / 7) * 11);
  return p;
}

static void fast_common(BagelCommon *c) {
  c->seed = 7;
  c->debug = &small;
  c->think_decode.max_tokens = 3;
}

/* A real job after a failure proves the engine is still usable. */
static void engine_still_works(void) {
  BagelEditParams p;
  bagel_edit_params_init(&p);
  fast_common(&p.common);
  p.sampler.steps = 2;
  guint8 *px = make_image(40, 30, 3);
  BagelImage img = {40, 30, 3, 40 * 3, px};
  BagelResult r;
  GError *err = NULL;
  g_assert_true(bagel_edit(engine, &img, "Make it blue.", &p, NULL, NULL, &r, &err));
  g_assert_no_error(err);
  g_assert_nonnull(r.image.pixels);
  g_assert_cmpint(r.image.width % 16, ==, 0);
  bagel_result_clear(&r);
  g_free(px);
}

static void expect(gboolean ok, GError *err, int code, const char *needle) {
  g_assert_false(ok);
  g_assert_nonnull(err);
  g_test_message("error: %s", err->message);
  g_assert_cmpint(err->code, ==, code);
  if (needle && !strstr(err->message, needle))
    g_error("\"%s\" not in \"%s\"", needle, err->message);
  g_error_free(err);
  engine_still_works();
}

/* The call runs first, then its error is checked (argument order is unspecified in C). */
#define EXPECT(call, code, needle)          \
  do {                                      \
    GError *err = NULL;                     \
    gboolean ok_ = (call);                  \
    expect(ok_, err, code, needle);         \
  } while (0)

static void test_empty_prompts(void) {
  BagelGenerateParams gp;
  bagel_generate_params_init(&gp);
  fast_common(&gp.common);
  gp.width = gp.height = 32;
  BagelResult r;
  EXPECT(bagel_generate(engine, "", &gp, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG,
         "prompt is empty");
  EXPECT(bagel_generate(engine, " \t\n ", &gp, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, "prompt is empty");
  EXPECT(bagel_generate(engine, "\xff\xfe bad", &gp, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, "UTF-8");
  guint8 *px = make_image(8, 8, 3);
  BagelImage img = {8, 8, 3, 24, px};
  BagelDescribeParams dp;
  bagel_describe_params_init(&dp);
  fast_common(&dp.common);
  EXPECT(bagel_describe(engine, &img, NULL, &dp, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, "question is missing");
  g_free(px);
}

static void test_bad_images(void) {
  BagelEditParams p;
  bagel_edit_params_init(&p);
  fast_common(&p.common);
  p.sampler.steps = 2;
  BagelResult r;
  EXPECT(bagel_edit(engine, NULL, "x", &p, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG,
         "no input image");
  /* 20000 × 20000 is refused before anything is allocated for it */
  static guint8 one[4];
  BagelImage huge = {20000, 20000, 3, 60000, one};
  EXPECT(bagel_edit(engine, &huge, "x", &p, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG,
         "20000x20000");
  BagelImage zero = {0, 10, 3, 0, one};
  EXPECT(bagel_edit(engine, &zero, "x", &p, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG,
         "0x10");
  BagelImage two_ch = {1, 1, 2, 2, one};
  EXPECT(bagel_edit(engine, &two_ch, "x", &p, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, "RGB or RGBA");
  BagelImage short_rows = {10, 10, 3, 20, one};
  EXPECT(bagel_edit(engine, &short_rows, "x", &p, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, "stride");
  /* a 1×1 image works (the resize rule scales it up to the minimum side) */
  guint8 px1[3] = {200, 30, 40};
  BagelImage tiny = {1, 1, 3, 3, px1};
  GError *error = NULL;
  g_assert_true(bagel_edit(engine, &tiny, "Make it green.", &p, NULL, NULL, &r, &error));
  g_assert_no_error(error);
  g_assert_cmpint(r.image.width, ==, 64);   /* the small VAE transform's minimum */
  bagel_result_clear(&r);
  /* alpha only: a fully transparent RGBA image is composited over white and works */
  guint8 *rgba = g_malloc0(20 * 20 * 4);
  BagelImage clear = {20, 20, 4, 80, rgba};
  g_assert_true(bagel_edit(engine, &clear, "Draw a cat.", &p, NULL, NULL, &r, &error));
  g_assert_no_error(error);
  bagel_result_clear(&r);
  g_free(rgba);
}

static void test_bad_knobs(void) {
  BagelGenerateParams gp;
  BagelResult r;
  static const char *needles[] = {"steps", "steps", "cfg-text", "cfg-image", "cfg-interval",
                                  "shift", "renorm-min", "renorm type", "size", "size",
                                  "max tokens", "temperature"};
  for (unsigned i = 0; i < G_N_ELEMENTS(needles); i++) {
    bagel_generate_params_init(&gp);
    fast_common(&gp.common);
    gp.width = gp.height = 32;
    gp.sampler.steps = 2;
    switch (i) {
    case 0: gp.sampler.steps = 1; break;
    case 1: gp.sampler.steps = 100000; break;
    case 2: gp.sampler.cfg_text = -1; break;
    case 3: gp.sampler.cfg_image = 1e9f; break;
    case 4: gp.sampler.cfg_interval[0] = 0.9f; gp.sampler.cfg_interval[1] = 0.1f; break;
    case 5: gp.sampler.timestep_shift = 0; break;
    case 6: gp.sampler.renorm_min = 2; break;
    case 7: gp.sampler.renorm = (BagelRenormType)7; break;
    case 8: gp.width = 0; break;
    case 9: gp.height = 70000; break;
    case 10: gp.common.think = TRUE; gp.common.think_decode.max_tokens = -5; break;
    default: gp.common.think = TRUE; gp.common.think_decode.sample = TRUE;
             gp.common.think_decode.temperature = 0;
    }
    EXPECT(bagel_generate(engine, "a cat", &gp, NULL, NULL, &r, &err), BAGEL_ERROR_INVALID_ARG, needles[i]);
  }
  BagelRenormType t;
  GError *error = NULL;
  g_assert_false(bagel_renorm_from_string("local", &t, &error));
  g_assert_nonnull(strstr(error->message, "unknown renorm type \"local\""));
  g_clear_error(&error);
}

typedef struct {
  char stage[32];
  int calls;
} CancelAt;

static gboolean cancel_at(const char *stage, int step, int total, double elapsed, gpointer u) {
  CancelAt *c = u;
  (void)step; (void)total; (void)elapsed;
  c->calls++;
  return strcmp(stage, c->stage) != 0;
}

static void test_cancel_every_stage(void) {
  const char *stages[] = {"prefill", "vit", "vae-encode", "think", "denoise", "vae-decode"};
  for (unsigned i = 0; i < G_N_ELEMENTS(stages); i++) {
    BagelEditParams p;
    bagel_edit_params_init(&p);
    fast_common(&p.common);
    p.common.think = TRUE;
    p.sampler.steps = 3;
    guint8 *px = make_image(40, 30, 3);
    BagelImage img = {40, 30, 3, 120, px};
    CancelAt c = {0};
    g_strlcpy(c.stage, stages[i], sizeof c.stage);
    BagelResult r;
    GError *err = NULL;
    gboolean ok = bagel_edit(engine, &img, "Make it red.", &p, cancel_at, &c, &r, &err);
    g_test_message("cancel at %s after %d progress calls", stages[i], c.calls);
    g_assert_null(r.image.pixels);
    g_assert_null(r.reasoning);
    expect(ok, err, BAGEL_ERROR_CANCELLED, stages[i]);  /* ok computed before */
    g_free(px);
  }
}

static void test_deterministic(void) {
  BagelEditParams p;
  bagel_edit_params_init(&p);
  fast_common(&p.common);
  p.sampler.steps = 3;
  guint8 *px = make_image(40, 30, 4);
  BagelImage img = {40, 30, 4, 160, px};
  BagelResult a, b, c;
  GError *err = NULL;
  g_assert_true(bagel_edit(engine, &img, "Make it red.", &p, NULL, NULL, &a, &err));
  g_assert_true(bagel_edit(engine, &img, "Make it red.", &p, NULL, NULL, &b, &err));
  p.common.seed = 8;
  g_assert_true(bagel_edit(engine, &img, "Make it red.", &p, NULL, NULL, &c, &err));
  gsize n = (gsize)a.image.width * a.image.height * 3;
  g_assert_cmpmem(a.image.pixels, n, b.image.pixels, n);
  g_assert_true(memcmp(a.image.pixels, c.image.pixels, n) != 0);
  g_assert_cmpint(a.seed, ==, 7);
  bagel_result_clear(&a);
  bagel_result_clear(&b);
  bagel_result_clear(&c);
  /* seed < 0: a random one, reported */
  p.common.seed = -1;
  g_assert_true(bagel_edit(engine, &img, "Make it red.", &p, NULL, NULL, &a, &err));
  g_assert_cmpint(a.seed, >=, 0);
  bagel_result_clear(&a);
  g_free(px);
}

static void test_nan_weights(void) {
  /* a copy of the tiny checkpoint whose ae.safetensors carries one NaN */
  char *dir = g_dir_make_tmp("nan-XXXXXX", NULL);
  const char *files[] = {"ema.safetensors", "llm_config.json", "vit_config.json", "vocab.json",
                         "merges.txt", "tokenizer_config.json"};
  for (unsigned i = 0; i < G_N_ELEMENTS(files); i++) {
    char *src = g_build_filename(ckpt_dir, files[i], NULL);
    char *abs = g_canonicalize_filename(src, NULL);
    char *dst = g_build_filename(dir, files[i], NULL);
    g_assert_cmpint(symlink(abs, dst), ==, 0);
    g_free(src); g_free(abs); g_free(dst);
  }
  char *src = g_build_filename(ckpt_dir, "ae.safetensors", NULL);
  char *dst = g_build_filename(dir, "ae.safetensors", NULL);
  char *data;
  gsize len;
  g_assert_true(g_file_get_contents(src, &data, &len, NULL));
  GError *err = NULL;
  StFile *f = st_parse(data, len, "ae", &err);
  const StTensor *t = st_find(f, "decoder.conv_in.bias");
  ((float *)t->data)[3] = 0.0f / 0.0f;
  st_close(f);
  g_assert_true(g_file_set_contents(dst, data, (gssize)len, NULL));
  g_free(data);
  BagelEngine *e = bagel_engine_open(dir, NULL, &err);
  g_assert_null(e);
  g_test_message("error: %s", err->message);
  g_assert_nonnull(strstr(err->message, "\"decoder.conv_in.bias\" contains NaN or Inf"));
  g_clear_error(&err);
  g_unlink(dst);
  for (unsigned i = 0; i < G_N_ELEMENTS(files); i++) {
    char *p = g_build_filename(dir, files[i], NULL);
    g_unlink(p);
    g_free(p);
  }
  g_rmdir(dir);
  g_free(src); g_free(dst); g_free(dir);
  engine_still_works();
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (argc != 2) {
    g_printerr("usage: %s TINY_CKPT_DIR\n", argv[0]);
    return 2;
  }
  ckpt_dir = argv[1];
  small.has_vae_transform = small.has_vit_transform = TRUE;
  small.vae_transform = (ImgTransform){128, 64, 16, 14 * 14 * 9 * 1024};
  small.vit_transform = (ImgTransform){112, 56, 14, 14 * 14 * 9 * 1024};
  BagelEngineOptions o;
  bagel_engine_options_init(&o);
  o.backend = BAGEL_BACKEND_CPU;
  GError *err = NULL;
  engine = bagel_engine_open(ckpt_dir, &o, &err);
  g_assert_no_error(err);
  g_test_add_func("/engine-errors/empty-prompts", test_empty_prompts);
  g_test_add_func("/engine-errors/bad-images", test_bad_images);
  g_test_add_func("/engine-errors/bad-knobs", test_bad_knobs);
  g_test_add_func("/engine-errors/cancel-every-stage", test_cancel_every_stage);
  g_test_add_func("/engine-errors/deterministic", test_deterministic);
  g_test_add_func("/engine-errors/nan-weights", test_nan_weights);
  int rc = g_test_run();
  bagel_engine_free(engine);
  return rc;
}
