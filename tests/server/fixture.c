/* tests/server/fixture.c — shared set-up of the bagel-engine tests (fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model_dir.h"
#include "rendezvous.h"

const char *engine_path;

void make_model_dir(const char *dir, const char *skip) {
  g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
  for (const char *const *f = bagel_model_files; *f; f++) {
    if (skip && !strcmp(*f, skip)) continue;
    char *p = g_build_filename(dir, *f, NULL);
    g_assert_true(g_file_set_contents(p, "x", 1, NULL));
    g_free(p);
  }
}

void rm_rf(const char *path) {
  GDir *d = g_dir_open(path, 0, NULL);
  if (d) {
    const char *n;
    while ((n = g_dir_read_name(d))) {
      char *p = g_build_filename(path, n, NULL);
      struct stat st;
      if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
      else g_unlink(p);
      g_free(p);
    }
    g_dir_close(d);
  }
  chmod(path, 0700);
  g_rmdir(path);
}

void fx_setup(Fx *fx, gconstpointer data) {
  fx->runtime = g_dir_make_tmp("bgl-XXXXXX", NULL);
  g_assert_nonnull(fx->runtime);
  fx->model = g_build_filename(fx->runtime, "model", NULL);
  make_model_dir(fx->model, NULL);
  fx->pids = g_array_new(FALSE, FALSE, sizeof(GPid));
  /* GLib isolates the test's own view of the XDG dirs; the engines it starts see the
   * environment, so put the same dirs there. */
  g_setenv("HOME", g_get_home_dir(), TRUE);
  g_setenv("XDG_CONFIG_HOME", g_get_user_config_dir(), TRUE);
  g_setenv("XDG_CACHE_HOME", g_get_user_cache_dir(), TRUE);
  g_setenv("XDG_DATA_HOME", g_get_user_data_dir(), TRUE);
  g_setenv("XDG_RUNTIME_DIR", fx->runtime, TRUE);
  g_setenv("BAGEL_MODEL", fx->model, TRUE);
  g_setenv("BAGEL_BACKEND", "cpu", TRUE);
  g_setenv("BAGEL_IDLE_TIMEOUT", "60", TRUE);  /* a stray engine still goes away */
  g_unsetenv("BAGEL_FAKE_STEP_MS");
  g_unsetenv("HF_HOME");
  g_unsetenv("HF_HUB_CACHE");
}

/* The engine is our child (the client starts it): reap it. */
gboolean engine_alive(GPid pid) {
  int status;
  pid_t r = waitpid(pid, &status, WNOHANG);
  return r == 0 || (r < 0 && errno != ECHILD && kill(pid, 0) == 0);
}

void stop_engine(GPid pid) {
  if (!engine_alive(pid)) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 300 && engine_alive(pid); i++) g_usleep(10000);
  if (engine_alive(pid)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
}

void fx_teardown(Fx *fx, gconstpointer data) {
  for (guint i = 0; i < fx->pids->len; i++) stop_engine(g_array_index(fx->pids, GPid, i));
  g_array_free(fx->pids, TRUE);
  rm_rf(fx->runtime);
  g_free(fx->runtime);
  g_free(fx->model);
}

BagelClient *connect_engine(Fx *fx) {
  GError *e = NULL;
  BagelClient *c = bagel_client_connect(engine_path, NULL, 10000, NULL, &e);
  g_assert_no_error(e);
  g_assert_nonnull(c);
  GPid pid = (GPid)bagel_client_engine_pid(c);
  gboolean known = FALSE;
  for (guint i = 0; i < fx->pids->len; i++) known |= g_array_index(fx->pids, GPid, i) == pid;
  if (!known) g_array_append_val(fx->pids, pid);
  return c;
}

BagelMsg *status(BagelClient *c) {
  GError *e = NULL;
  BagelMsg *s = bagel_client_status(c, &e);
  g_assert_no_error(e);
  return s;
}

guint8 fixture_pixel(int x, int y, int c, int salt) {
  return (guint8)((x * 7 + y * 13 + c * 71 + salt) & 255);
}

BagelMsg *edit_job(int w, int h, int channels, int salt, gint64 seed, int steps) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_JOB);
  m->mode = BAGEL_JOB_EDIT;
  m->prompt = g_strdup("make it fake");
  m->params.set = BAGEL_P_SEED | BAGEL_P_STEPS;
  m->params.seed = seed;
  m->params.steps = steps;
  guint8 *px = g_malloc((gsize)w * h * channels);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++) px[((gsize)y * w + x) * channels + c] = fixture_pixel(x, y, c, salt);
  g_assert_true(bagel_msg_set_image(m, w, h, channels, px, w * channels, NULL));
  g_free(px);
  return m;
}

/* The fake's edit: out = 255 − in + seed (mod 256), RGB. */
void assert_edit_result(const BagelMsg *r, int w, int h, int salt, gint64 seed) {
  g_assert_cmpint(r->type, ==, BAGEL_MSG_RESULT);
  g_assert_cmpint(r->seed, ==, seed);
  g_assert_cmpint(r->image.width, ==, w);
  g_assert_cmpint(r->image.height, ==, h);
  g_assert_cmpint(r->image.channels, ==, 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        g_assert_cmpint(r->image.pixels[((gsize)y * w + x) * 3 + c], ==,
                        (255 - fixture_pixel(x, y, c, salt) + seed) & 255);
}

