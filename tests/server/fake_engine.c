/* tests/server/fake_engine.c — a TEST DOUBLE of the libbagel engine API (engine/bagel.h)
 * for the bagel-engine server tests and the GIMP plumbing tests, until the real
 * pipelines land.  It loads nothing and computes closed-form, deterministic results that
 * a test can predict exactly:
 *
 *   edit:     the input's size; out[c] = (255 − in[c] + seed) mod 256 for R, G, B
 *   generate: width × height rounded to multiples of 16 (at least 16);
 *             out = ((x + seed) mod 256, (y + seed) mod 256, (x xor y) mod 256)
 *   describe: "fake answer to \"<question>\" about a W×H image"
 *   think:    reasoning "fake reasoning about \"<prompt>\"" (and a "think" stage)
 *   seed < 0: a random seed, reported in the result.
 *
 * Progress: edit/generate report "denoise" steps 1..steps−1, describe "decode" 1..8,
 * sleeping BAGEL_FAKE_STEP_MS (default 0) milliseconds before each, so tests can cancel
 * or kill mid-job; open sleeps BAGEL_FAKE_LOAD_MS.  Backend name: "cpu" for
 * BAGEL_BACKEND_CPU, else "fake"; backend note: BAGEL_FAKE_BACKEND_NOTE or
 * BAGEL_FAKE_BACKEND_NOTE_FILE.
 *
 * Linked only into bagel-engine-fake (tests/server), never installed, never into the
 * product: bagel-engine links libbagel.
 */
#include <stdlib.h>
#include <string.h>

#include "bagel.h"

struct BagelEngine {
  BagelBackendKind backend;
  int step_ms;
  char *note;
};

static int env_ms(const char *name) {
  const char *v = g_getenv(name);
  return v ? atoi(v) : 0;
}

void bagel_engine_options_init(BagelEngineOptions *o) {
  memset(o, 0, sizeof *o);
  o->backend = BAGEL_BACKEND_AUTO;
}

static void common_init(BagelCommon *c) {
  c->think = FALSE;
  c->think_decode = (BagelDecode){.max_tokens = 1000, .sample = FALSE, .temperature = 0.3f};
  c->seed = -1;
}

void bagel_describe_params_init(BagelDescribeParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  p->answer = (BagelDecode){.max_tokens = 512, .sample = FALSE, .temperature = 0.3f};
}

void bagel_generate_params_init(BagelGenerateParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  p->sampler = (BagelSampler){50, 4.0f, 1.0f, {0.4f, 1.0f}, 3.0f, BAGEL_RENORM_GLOBAL, 0.0f};
  p->width = p->height = 1024;
}

void bagel_edit_params_init(BagelEditParams *p) {
  memset(p, 0, sizeof *p);
  common_init(&p->common);
  p->sampler = (BagelSampler){50, 4.0f, 2.0f, {0.0f, 1.0f}, 3.0f, BAGEL_RENORM_TEXT_CHANNEL, 0.0f};
}

void bagel_result_clear(BagelResult *r) {
  g_free(r->text);
  g_free(r->reasoning);
  g_free(r->image.pixels);
  memset(r, 0, sizeof *r);
}

BagelEngine *bagel_engine_open(const char *model_dir, const BagelEngineOptions *opts,
                               GError **error) {
  if (!g_file_test(model_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "fake engine: %s is not a directory",
                model_dir);
    return NULL;
  }
  g_usleep((gulong)env_ms("BAGEL_FAKE_LOAD_MS") * 1000);
  BagelEngine *e = g_new0(BagelEngine, 1);
  e->backend = opts ? opts->backend : BAGEL_BACKEND_AUTO;
  e->step_ms = env_ms("BAGEL_FAKE_STEP_MS");
  /* the backend note: BAGEL_FAKE_BACKEND_NOTE, or the first line of the file named by
   * BAGEL_FAKE_BACKEND_NOTE_FILE when it exists at open (a test inside GIMP, whose
   * environment is fixed at start, switches it that way) */
  const char *note = g_getenv("BAGEL_FAKE_BACKEND_NOTE"), *file = g_getenv("BAGEL_FAKE_BACKEND_NOTE_FILE");
  if (note && *note) e->note = g_strdup(note);
  else if (file && *file && g_file_get_contents(file, &e->note, NULL, NULL)) {
    g_strdelimit(e->note, "\n", '\0');
    if (!*e->note) g_clear_pointer(&e->note, g_free);
  }
  return e;
}

void bagel_engine_free(BagelEngine *e) {
  if (!e) return;
  g_free(e->note);
  g_free(e);
}

const char *bagel_engine_backend_name(const BagelEngine *e) {
  return e->backend == BAGEL_BACKEND_CPU ? "cpu" : "fake";
}

/* The note a real engine gives when it found a GPU it could not use (the server sends it
 * with the first result after a load); set at open, see bagel_engine_open. */
const char *bagel_engine_backend_note(const BagelEngine *e) { return e->note; }

/* Report n steps of a stage; FALSE (and the cancel error) when the callback says stop. */
static gboolean steps(BagelEngine *e, const char *stage, int n, BagelProgressFunc progress,
                      gpointer user_data, gint64 t0, GError **error) {
  for (int i = 1; i <= n; i++) {
    g_usleep((gulong)e->step_ms * 1000);
    if (progress && !progress(stage, i, n, (g_get_monotonic_time() - t0) / 1e6, user_data)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_CANCELLED, "cancelled during %s step %d",
                  stage, i);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean start(BagelEngine *e, const BagelCommon *c, const char *prompt,
                      BagelProgressFunc progress, gpointer user_data, gint64 t0,
                      BagelResult *r, GError **error) {
  memset(r, 0, sizeof *r);
  if (!prompt || !*prompt) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "the prompt is empty");
    return FALSE;
  }
  r->seed = c->seed >= 0 ? c->seed : g_random_int_range(0, G_MAXINT32);
  if (c->think) {
    if (!steps(e, "think", 4, progress, user_data, t0, error)) return FALSE;
    r->reasoning = g_strdup_printf("fake reasoning about \"%s\"", prompt);
  }
  return TRUE;
}

gboolean bagel_describe(BagelEngine *e, const BagelImage *image, const char *question,
                        const BagelDescribeParams *params, BagelProgressFunc progress,
                        gpointer user_data, BagelResult *r, GError **error) {
  gint64 t0 = g_get_monotonic_time();
  if (!start(e, &params->common, question, progress, user_data, t0, r, error) ||
      !steps(e, "decode", 8, progress, user_data, t0, error)) {
    bagel_result_clear(r);
    return FALSE;
  }
  r->text = g_strdup_printf("fake answer to \"%s\" about a %dx%d image", question,
                            image->width, image->height);
  r->timings.decode_tokens = 8;
  r->timings.total = (g_get_monotonic_time() - t0) / 1e6;
  return TRUE;
}

gboolean bagel_generate(BagelEngine *e, const char *prompt, const BagelGenerateParams *params,
                        BagelProgressFunc progress, gpointer user_data, BagelResult *r,
                        GError **error) {
  gint64 t0 = g_get_monotonic_time();
  if (!start(e, &params->common, prompt, progress, user_data, t0, r, error) ||
      !steps(e, "denoise", params->sampler.steps - 1, progress, user_data, t0, error)) {
    bagel_result_clear(r);
    return FALSE;
  }
  int w = MAX(16, (params->width + 8) / 16 * 16), h = MAX(16, (params->height + 8) / 16 * 16);
  guint8 *px = g_malloc((gsize)w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      guint8 *p = px + ((gsize)y * w + x) * 3;
      p[0] = (guint8)((x + r->seed) & 255);
      p[1] = (guint8)((y + r->seed) & 255);
      p[2] = (guint8)((x ^ y) & 255);
    }
  r->image = (BagelRgb){w, h, px};
  r->timings.denoise_steps = params->sampler.steps - 1;
  r->timings.total = (g_get_monotonic_time() - t0) / 1e6;
  return TRUE;
}

gboolean bagel_edit(BagelEngine *e, const BagelImage *image, const char *instruction,
                    const BagelEditParams *params, BagelProgressFunc progress,
                    gpointer user_data, BagelResult *r, GError **error) {
  gint64 t0 = g_get_monotonic_time();
  if (!start(e, &params->common, instruction, progress, user_data, t0, r, error) ||
      !steps(e, "denoise", params->sampler.steps - 1, progress, user_data, t0, error)) {
    bagel_result_clear(r);
    return FALSE;
  }
  int w = image->width, h = image->height;
  guint8 *px = g_malloc((gsize)w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const guint8 *s = image->pixels + (gsize)y * image->stride + (gsize)x * image->channels;
      guint8 *d = px + ((gsize)y * w + x) * 3;
      for (int c = 0; c < 3; c++) d[c] = (guint8)((255 - s[c] + r->seed) & 255);
    }
  r->image = (BagelRgb){w, h, px};
  r->timings.denoise_steps = params->sampler.steps - 1;
  r->timings.total = (g_get_monotonic_time() - t0) / 1e6;
  return TRUE;
}
