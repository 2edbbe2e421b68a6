/* plugin/engine-link.c — one job on bagel-engine with GIMP progress (see engine-link.h). */
#include "engine-link.h"

#include <libgimp/gimp.h>
#include <string.h>

#include "client.h"
#include "pixels.h"

char *bagel_engine_path(void) {
  const char *env = g_getenv("BAGEL_ENGINE");
  if (env && *env) return g_strdup(env);
  char *self = g_file_read_link("/proc/self/exe", NULL);
  char *dir = self ? g_path_get_dirname(self) : g_strdup(".");
  char *path = g_build_filename(dir, "bagel-engine", NULL);
  g_free(dir);
  g_free(self);
  return path;
}

static const struct {
  const char *stage, *text;
} stage_texts[] = {
  {"load", "loading the model"},   {"vit", "looking at the image"},
  {"vae-encode", "encoding the image"}, {"prefill", "reading the prompt"},
  {"think", "thinking"},           {"decode", "writing"},
  {"denoise", "denoising"},        {"vae-decode", "decoding the image"},
};

typedef struct {
  const char *what;
} ProgressCtx;

static void on_progress(const BagelMsg *m, gpointer data) {
  ProgressCtx *ctx = data;
  if (m->type == BAGEL_MSG_ACCEPTED) {
    if (m->position > 0)
      gimp_progress_set_text_printf("BAGEL: %s — waiting for %d job%s ahead", ctx->what,
                                    m->position, m->position > 1 ? "s" : "");
    return;
  }
  const char *text = m->stage;
  for (unsigned i = 0; i < G_N_ELEMENTS(stage_texts); i++)
    if (!strcmp(stage_texts[i].stage, m->stage)) text = stage_texts[i].text;
  bagel_trace("progress %s %d/%d", m->stage, m->step, m->total);
  if (m->total > 0) {
    gimp_progress_set_text_printf("BAGEL: %s — %s %d/%d", ctx->what, text, m->step, m->total);
    gimp_progress_update((double)m->step / m->total);
  } else {
    gimp_progress_set_text_printf("BAGEL: %s — %s", ctx->what, text);
    gimp_progress_pulse();
  }
}

BagelMsg *bagel_engine_run(BagelMsg *job, const char *what, char **engine, GError **error) {
  char *path = bagel_engine_path();
  if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND,
                "bagel-engine is not installed at %s: install gimp-bagel with `meson install` "
                "(the engine goes next to the plug-in) or point BAGEL_ENGINE at it", path);
    g_free(path);
    return NULL;
  }
  gimp_progress_init_printf("BAGEL: %s — starting the engine", what);
  BagelClient *client = bagel_client_connect(path, NULL, 0, NULL, error);
  g_free(path);
  if (!client) return NULL;
  if (engine) *engine = g_strdup(bagel_client_engine_software(client));
  ProgressCtx ctx = {what};
  gimp_progress_set_text_printf("BAGEL: %s", what);
  BagelMsg *result = bagel_client_run(client, job, on_progress, &ctx, NULL, error);
  bagel_client_free(client);
  gimp_progress_end();
  /* e.g. a GPU the engine found but could not use: it runs on the CPU, say so */
  if (result && result->warning) {
    bagel_trace("engine warning: %s", result->warning);
    gimp_message(result->warning);
  }
  return result;
}
