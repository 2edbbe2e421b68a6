/* engine/server/main.c — `bagel-engine`: the resident process the GIMP plug-in starts on
 * demand (see server.h for what it does, protocol.h for what it speaks).
 *
 * Settings, first found wins: the command line; the environment (BAGEL_MODEL,
 * BAGEL_BACKEND=auto|cpu|cuda, BAGEL_IDLE_TIMEOUT seconds, BAGEL_THREADS); the [engine]
 * group of ~/.config/gimp-bagel/gimp-bagel.conf (keys model, backend, idle-timeout,
 * threads); the defaults (model found by model_dir.h, backend auto, 900 s).
 */
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bagel-config.h"
#include "server.h"

#define DEFAULT_IDLE_TIMEOUT_S (15 * 60)

static gboolean parse_backend(const char *s, BagelBackendKind *out) {
  if (!strcmp(s, "auto")) *out = BAGEL_BACKEND_AUTO;
  else if (!strcmp(s, "cpu")) *out = BAGEL_BACKEND_CPU;
  else if (!strcmp(s, "cuda")) *out = BAGEL_BACKEND_CUDA;
  else return FALSE;
  return TRUE;
}

/* Fill what the command line left unset from the environment, then the config file. */
static gboolean resolve_config(BagelServerConfig *cfg, char *backend, int *idle, int *threads,
                               GError **error) {
  char *conf = g_build_filename(g_get_user_config_dir(), "gimp-bagel", "gimp-bagel.conf", NULL);
  GKeyFile *kf = g_key_file_new();
  GError *e = NULL;
  if (!g_key_file_load_from_file(kf, conf, G_KEY_FILE_NONE, &e)) {
    if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT) &&
        !g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOTDIR)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: %s", conf, e->message);
      g_error_free(e);
      g_key_file_free(kf);
      g_free(conf);
      return FALSE;
    }
    g_clear_error(&e);
  }
  const char *env;
  if (!cfg->model_dir && (env = g_getenv("BAGEL_MODEL")) && *env) {
    cfg->model_dir = g_strdup(env);
    cfg->model_dir_origin = g_strdup("BAGEL_MODEL");
  }
  if (!cfg->model_dir && (cfg->model_dir = g_key_file_get_string(kf, "engine", "model", NULL)))
    cfg->model_dir_origin = g_strdup_printf("model= in %s", conf);
  if (cfg->model_dir && !*cfg->model_dir) g_clear_pointer(&cfg->model_dir, g_free);

  char *b = backend ? g_strdup(backend) : NULL;
  if (!b && (env = g_getenv("BAGEL_BACKEND")) && *env) b = g_strdup(env);
  if (!b) b = g_key_file_get_string(kf, "engine", "backend", NULL);
  gboolean ok = TRUE;
  if (b && !parse_backend(b, &cfg->engine.backend)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "unknown backend \"%s\" (expected auto, cpu or cuda)", b);
    ok = FALSE;
  }
  g_free(b);

  if (*idle < 0 && (env = g_getenv("BAGEL_IDLE_TIMEOUT")) && *env) *idle = atoi(env);
  if (*idle < 0 && g_key_file_has_key(kf, "engine", "idle-timeout", NULL))
    *idle = g_key_file_get_integer(kf, "engine", "idle-timeout", NULL);
  cfg->idle_timeout_s = *idle < 0 ? DEFAULT_IDLE_TIMEOUT_S : *idle;

  if (*threads <= 0 && (env = g_getenv("BAGEL_THREADS")) && *env) *threads = atoi(env);
  if (*threads <= 0 && g_key_file_has_key(kf, "engine", "threads", NULL))
    *threads = g_key_file_get_integer(kf, "engine", "threads", NULL);
  if (*threads > 0) cfg->engine.n_threads = *threads;

  g_key_file_free(kf);
  g_free(conf);
  return ok;
}

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  signal(SIGPIPE, SIG_IGN);  /* a vanished client is an error return, not a death */
  char *model = NULL, *backend = NULL;
  int idle = -1, threads = 0;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "BAGEL-7B-MoT checkpoint directory", "DIR"},
    {"backend", 'b', 0, G_OPTION_ARG_STRING, &backend, "auto, cpu or cuda", "NAME"},
    {"idle-timeout", 0, 0, G_OPTION_ARG_INT, &idle,
     "exit after this many seconds without a job (0: never; default 900)", "SECONDS"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &threads, "CPU backend threads", "N"},
    {"version", 0, 0, G_OPTION_ARG_NONE, &version, "print the version and exit", NULL},
    {NULL},
  };
  GOptionContext *ctx = g_option_context_new("— the BAGEL engine the GIMP plug-in talks to");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(ctx,
      "Started on demand by the gimp-bagel plug-in; listens on a Unix socket in\n"
      "$XDG_RUNTIME_DIR/gimp-bagel (or ~/.cache/gimp-bagel/run) and exits when idle.\n"
      "Environment: BAGEL_MODEL, BAGEL_BACKEND, BAGEL_IDLE_TIMEOUT, BAGEL_THREADS.\n"
      "Config file: ~/.config/gimp-bagel/gimp-bagel.conf, group [engine].");
  GError *error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "bagel-engine: %s\n", error->message);
    g_error_free(error);
    g_option_context_free(ctx);
    return 2;
  }
  g_option_context_free(ctx);
  if (version) {
    printf("bagel-engine %s\n", BAGEL_VERSION);
    return 0;
  }

  BagelServerConfig cfg = {0};
  bagel_engine_options_init(&cfg.engine);
  if (model) {
    cfg.model_dir = g_strdup(model);
    cfg.model_dir_origin = g_strdup("--model");
  }
  int rc = 0;
  gboolean lost_race = FALSE;
  if (!resolve_config(&cfg, backend, &idle, &threads, &error) ||
      !bagel_server_run(&cfg, &lost_race, &error)) {
    if (lost_race) {
      fprintf(stderr, "bagel-engine: another bagel-engine is already running for this user\n");
    } else {
      fprintf(stderr, "bagel-engine: %s\n", error->message);
      rc = 1;
    }
    g_clear_error(&error);
  }
  g_free(cfg.model_dir);
  g_free(cfg.model_dir_origin);
  g_free(model);
  g_free(backend);
  return rc;
}
