/* engine/server/model_dir.c — find the checkpoint directory (see model_dir.h). */
#include "model_dir.h"

#include <string.h>
#include <sys/stat.h>

#include "bagel.h"

const char *const bagel_model_files[] = {
  "llm_config.json", "vit_config.json", "ema.safetensors", "ae.safetensors",
  "vocab.json",      "merges.txt",      "tokenizer_config.json", NULL,
};

char *bagel_model_default_dir(void) {
  return g_build_filename(g_get_user_data_dir(), "gimp-bagel", "BAGEL-7B-MoT", NULL);
}

static char *download_command(const char *dir) {
  return g_strdup_printf("huggingface-cli download " BAGEL_HF_REPO " --local-dir %s", dir);
}

void bagel_model_dir_add_hint(GError *error, const char *dir) {
  if (!error || strstr(error->message, "huggingface-cli download")) return;
  char *cmd = download_command(dir);
  char *msg = g_strdup_printf("%s\nDownload the model (about 29 GB) with:\n  %s", error->message,
                              cmd);
  g_free(error->message);
  error->message = msg;
  g_free(cmd);
}

/* The names of the missing (or empty) files, NULL when the directory is complete. */
static char *missing_files(const char *dir) {
  GString *missing = NULL;
  for (const char *const *f = bagel_model_files; *f; f++) {
    char *p = g_build_filename(dir, *f, NULL);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
      if (!missing) missing = g_string_new(*f);
      else g_string_append_printf(missing, ", %s", *f);
    }
    g_free(p);
  }
  return missing ? g_string_free(missing, FALSE) : NULL;
}

static gboolean check_dir(const char *dir, const char *origin, GError **error) {
  char *cmd = download_command(dir);
  gboolean ok = FALSE;
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL,
                "the BAGEL model directory %s (from %s) does not exist.\n"
                "Download the model (about 29 GB) with:\n  %s", dir, origin, cmd);
  } else {
    char *missing = missing_files(dir);
    if (missing)
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL,
                  "the BAGEL model in %s (from %s) is incomplete: %s missing or empty.\n"
                  "Finish the download with:\n  %s", dir, origin, missing, cmd);
    else
      ok = TRUE;
    g_free(missing);
  }
  g_free(cmd);
  return ok;
}

static char *hf_hub_dir(void) {
  const char *hub = g_getenv("HF_HUB_CACHE");
  if (hub && *hub) return g_strdup(hub);
  const char *home = g_getenv("HF_HOME");
  if (home && *home) return g_build_filename(home, "hub", NULL);
  return g_build_filename(g_get_home_dir(), ".cache", "huggingface", "hub", NULL);
}

/* A complete snapshot of the repo in the HF cache: the one refs/main names, else the
 * most recently modified complete one.  NULL when there is none. */
static char *hf_snapshot(char **looked_in) {
  char *hub = hf_hub_dir();
  char *repo = g_build_filename(hub, "models--ByteDance-Seed--BAGEL-7B-MoT", NULL);
  char *snaps = g_build_filename(repo, "snapshots", NULL);
  *looked_in = g_strdup(snaps);
  char *found = NULL, *ref = NULL;
  char *ref_path = g_build_filename(repo, "refs", "main", NULL);
  if (g_file_get_contents(ref_path, &ref, NULL, NULL)) {
    g_strstrip(ref);
    char *p = g_build_filename(snaps, ref, NULL);
    if (*ref && !strchr(ref, '/') && g_file_test(p, G_FILE_TEST_IS_DIR)) {
      char *missing = missing_files(p);
      if (!missing) found = g_strdup(p);
      g_free(missing);
    }
    g_free(p);
  }
  GDir *d = found ? NULL : g_dir_open(snaps, 0, NULL);
  gint64 best = -1;
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    char *p = g_build_filename(snaps, name, NULL);
    struct stat st;
    char *missing = NULL;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && !(missing = missing_files(p)) &&
        (gint64)st.st_mtime > best) {
      best = st.st_mtime;
      g_free(found);
      found = g_strdup(p);
    }
    g_free(missing);
    g_free(p);
  }
  if (d) g_dir_close(d);
  g_free(ref);
  g_free(ref_path);
  g_free(snaps);
  g_free(repo);
  g_free(hub);
  return found;
}

char *bagel_model_dir_find(const char *configured, const char *origin, GError **error) {
  if (configured && *configured) {
    if (!check_dir(configured, origin ? origin : "the configuration", error)) return NULL;
    return g_strdup(configured);
  }
  char *def = bagel_model_default_dir();
  if (g_file_test(def, G_FILE_TEST_IS_DIR)) {
    if (!check_dir(def, "the default location", error)) {
      g_free(def);
      return NULL;
    }
    return def;
  }
  char *looked_in = NULL;
  char *snap = hf_snapshot(&looked_in);
  if (snap) {
    g_free(def);
    g_free(looked_in);
    return snap;
  }
  char *cmd = download_command(def);
  char *conf = g_build_filename(g_get_user_config_dir(), "gimp-bagel", "gimp-bagel.conf", NULL);
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL,
              "no BAGEL model found: BAGEL_MODEL is not set, %s sets no model, %s does not "
              "exist and the Hugging Face cache has no complete snapshot in %s.\n"
              "Download the model (about 29 GB) with:\n  %s\n"
              "(or set model=<dir> in the [engine] group of %s, or BAGEL_MODEL=<dir>)",
              conf, def, looked_in, cmd, conf);
  g_free(conf);
  g_free(cmd);
  g_free(looked_in);
  g_free(def);
  return NULL;
}
