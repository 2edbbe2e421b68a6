/* tests/server/test_server.c — bagel-engine end to end through the client library:
 * the engine binary under test is bagel-engine-fake (engine/server + the deterministic
 * test double of tests/server/fake_engine.c), started on demand exactly as the plug-in
 * starts the real one.  Checked: results and progress of each mode; FIFO order and
 * integrity with two clients at once; cancel by message and by disconnect keep the model
 * loaded; an engine killed mid-job is an error and the next connect starts a fresh one;
 * the idle timeout; the private socket directory and peer credentials; no TCP; the model
 * directory lookup and its download hint; protocol violations.
 *
 * Each test runs with its own XDG dirs (G_TEST_OPTION_ISOLATE_DIRS) and a short private
 * XDG_RUNTIME_DIR, and stops every engine it started.
 */
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

#include "client.h"
#include "model_dir.h"
#include "rendezvous.h"

static const char *engine_path;

typedef struct {
  char *runtime;            /* XDG_RUNTIME_DIR */
  char *model;              /* a complete (fake) model directory */
  GArray *pids;             /* engines started, stopped at teardown */
} Fx;

static void make_model_dir(const char *dir, const char *skip) {
  g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
  for (const char *const *f = bagel_model_files; *f; f++) {
    if (skip && !strcmp(*f, skip)) continue;
    char *p = g_build_filename(dir, *f, NULL);
    g_assert_true(g_file_set_contents(p, "x", 1, NULL));
    g_free(p);
  }
}

static void rm_rf(const char *path) {
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

static void fx_setup(Fx *fx, gconstpointer data) {
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
static gboolean engine_alive(GPid pid) {
  int status;
  pid_t r = waitpid(pid, &status, WNOHANG);
  return r == 0 || (r < 0 && errno != ECHILD && kill(pid, 0) == 0);
}

static void stop_engine(GPid pid) {
  if (!engine_alive(pid)) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 300 && engine_alive(pid); i++) g_usleep(10000);
  if (engine_alive(pid)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
}

static void fx_teardown(Fx *fx, gconstpointer data) {
  for (guint i = 0; i < fx->pids->len; i++) stop_engine(g_array_index(fx->pids, GPid, i));
  g_array_free(fx->pids, TRUE);
  rm_rf(fx->runtime);
  g_free(fx->runtime);
  g_free(fx->model);
}

static BagelClient *connect_engine(Fx *fx) {
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

static BagelMsg *status(BagelClient *c) {
  GError *e = NULL;
  BagelMsg *s = bagel_client_status(c, &e);
  g_assert_no_error(e);
  return s;
}

static guint8 pixel(int x, int y, int c, int salt) {
  return (guint8)((x * 7 + y * 13 + c * 71 + salt) & 255);
}

static BagelMsg *edit_job(int w, int h, int channels, int salt, gint64 seed, int steps) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_JOB);
  m->mode = BAGEL_JOB_EDIT;
  m->prompt = g_strdup("make it fake");
  m->params.set = BAGEL_P_SEED | BAGEL_P_STEPS;
  m->params.seed = seed;
  m->params.steps = steps;
  guint8 *px = g_malloc((gsize)w * h * channels);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++) px[((gsize)y * w + x) * channels + c] = pixel(x, y, c, salt);
  g_assert_true(bagel_msg_set_image(m, w, h, channels, px, w * channels, NULL));
  g_free(px);
  return m;
}

/* The fake's edit: out = 255 − in + seed (mod 256), RGB. */
static void assert_edit_result(const BagelMsg *r, int w, int h, int salt, gint64 seed) {
  g_assert_cmpint(r->type, ==, BAGEL_MSG_RESULT);
  g_assert_cmpint(r->seed, ==, seed);
  g_assert_cmpint(r->image.width, ==, w);
  g_assert_cmpint(r->image.height, ==, h);
  g_assert_cmpint(r->image.channels, ==, 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        g_assert_cmpint(r->image.pixels[((gsize)y * w + x) * 3 + c], ==,
                        (255 - pixel(x, y, c, salt) + seed) & 255);
}

typedef struct {
  int accepted, position, progress, last_step, last_total;
  gboolean monotonic;
  char *stage;
  /* actions */
  int cancel_after;         /* send cancel after this many denoise steps */
  int kill_after;           /* SIGKILL the engine after this many */
  BagelClient *client;
  GPid engine;
  gint32 job_id;
  GCancellable *cancellable;
  int cancellable_after;
} Progress;

static void on_progress(const BagelMsg *m, gpointer data) {
  Progress *p = data;
  if (m->type == BAGEL_MSG_ACCEPTED) {
    p->accepted++;
    p->position = m->position;
    return;
  }
  if (g_strcmp0(p->stage, m->stage) == 0 && m->step <= p->last_step) p->monotonic = FALSE;
  g_free(p->stage);
  p->stage = g_strdup(m->stage);
  p->last_step = m->step;
  p->last_total = m->total;
  if (strcmp(m->stage, "denoise") != 0) return;
  p->progress++;
  if (p->cancel_after && p->progress == p->cancel_after)
    g_assert_true(bagel_client_send_cancel(p->client, m->id, NULL));
  if (p->kill_after && p->progress == p->kill_after) kill(p->engine, SIGKILL);
  if (p->cancellable_after && p->progress == p->cancellable_after)
    g_cancellable_cancel(p->cancellable);
}

/* ---- modes -------------------------------------------------------------------------- */

static void test_edit(Fx *fx, gconstpointer data) {
  BagelClient *c = connect_engine(fx);
  BagelMsg *job = edit_job(13, 7, 4, 1, 77, 6);
  Progress p = {.monotonic = TRUE};
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, on_progress, &p, NULL, &e);
  g_assert_no_error(e);
  assert_edit_result(r, 13, 7, 1, 77);
  g_assert_cmpint(p.accepted, ==, 1);
  g_assert_cmpint(p.position, ==, 0);
  g_assert_cmpint(p.progress, ==, 5);  /* steps − 1 model evaluations */
  g_assert_cmpint(p.last_total, ==, 5);
  g_assert_true(p.monotonic);
  g_assert_cmpint(r->timings.denoise_steps, ==, 5);
  bagel_msg_free(r);
  bagel_msg_free(job);

  /* a random seed is reported and reproduces */
  job = edit_job(4, 4, 3, 2, -1, 2);
  r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  g_assert_cmpint(r->seed, >=, 0);
  assert_edit_result(r, 4, 4, 2, r->seed);
  bagel_msg_free(r);
  bagel_msg_free(job);

  BagelMsg *s = status(c);
  g_assert_true(s->model_loaded);
  g_assert_cmpint(s->model_loads, ==, 1);
  g_assert_cmpint(s->jobs_done, ==, 2);
  g_assert_cmpint(s->jobs_cancelled, ==, 0);
  g_assert_cmpstr(s->backend, ==, "cpu");  /* BAGEL_BACKEND=cpu */
  g_assert_cmpint(s->pid, ==, bagel_client_engine_pid(c));
  bagel_msg_free(s);
  g_free(p.stage);
  bagel_client_free(c);
}

static void test_generate_describe(Fx *fx, gconstpointer data) {
  BagelClient *c = connect_engine(fx);
  BagelMsg *job = bagel_msg_new(BAGEL_MSG_JOB);
  job->mode = BAGEL_JOB_GENERATE;
  job->prompt = g_strdup("a fake cat");
  job->params.set = BAGEL_P_WIDTH | BAGEL_P_HEIGHT | BAGEL_P_SEED | BAGEL_P_STEPS | BAGEL_P_THINK;
  job->params.width = 50;
  job->params.height = 30;
  job->params.seed = 3;
  job->params.steps = 3;
  job->params.think = TRUE;
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  g_assert_cmpint(r->image.width, ==, 48);
  g_assert_cmpint(r->image.height, ==, 32);
  g_assert_cmpint(r->image.pixels[(5 * 48 + 9) * 3 + 0], ==, 9 + 3);
  g_assert_cmpint(r->image.pixels[(5 * 48 + 9) * 3 + 1], ==, 5 + 3);
  g_assert_cmpint(r->image.pixels[(5 * 48 + 9) * 3 + 2], ==, 9 ^ 5);
  g_assert_cmpstr(r->reasoning, ==, "fake reasoning about \"a fake cat\"");
  bagel_msg_free(r);
  bagel_msg_free(job);

  job = edit_job(20, 10, 3, 0, 0, 2);
  job->mode = BAGEL_JOB_DESCRIBE;
  job->params.set = BAGEL_P_MAX_TOKENS;
  job->params.max_tokens = 16;
  g_free(job->prompt);
  job->prompt = g_strdup("What is this?");
  Progress p = {.monotonic = TRUE};
  r = bagel_client_run(c, job, on_progress, &p, NULL, &e);
  g_assert_no_error(e);
  g_assert_cmpstr(r->text, ==, "fake answer to \"What is this?\" about a 20x10 image");
  g_assert_null(r->reasoning);
  g_assert_null(r->image.pixels);
  g_assert_cmpstr(p.stage, ==, "decode");
  g_assert_cmpint(p.last_step, ==, 8);
  g_free(p.stage);
  bagel_msg_free(r);
  bagel_msg_free(job);

  /* an engine error comes back with its code and message */
  job = edit_job(2, 2, 3, 0, 0, 2);
  g_free(job->prompt);
  job->prompt = g_strdup("");
  r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_null(r);
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&e);
  bagel_msg_free(job);
  bagel_client_free(c);
}

/* ---- queueing, cancel, disconnect, kill ------------------------------------------ */

typedef struct {
  Fx *fx;
  int salt;
  gint64 seed;
  int steps;
  Progress p;
  gint64 done_at;
  gint *started;            /* set once accepted */
} Worker;

static void worker_progress(const BagelMsg *m, gpointer data) {
  Worker *w = data;
  on_progress(m, &w->p);
  if (m->type == BAGEL_MSG_ACCEPTED && w->started) g_atomic_int_set(w->started, 1);
}

static gpointer worker_run(gpointer data) {
  Worker *w = data;
  GError *e = NULL;
  BagelClient *c = bagel_client_connect(engine_path, NULL, 10000, NULL, &e);
  g_assert_no_error(e);
  BagelMsg *job = edit_job(31, 17, 3, w->salt, w->seed, w->steps);
  BagelMsg *r = bagel_client_run(c, job, worker_progress, w, NULL, &e);
  w->done_at = g_get_monotonic_time();
  g_assert_no_error(e);
  assert_edit_result(r, 31, 17, w->salt, w->seed);
  bagel_msg_free(r);
  bagel_msg_free(job);
  bagel_client_free(c);
  return NULL;
}

static void test_clients_fifo(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_STEP_MS", "20", TRUE);
  BagelClient *probe = connect_engine(fx);  /* start the engine once, for all */
  /* a runs; b and c arrive while it runs, in that order, and must run in that order
   * although c is the shortest */
  gint a_started = 0, b_started = 0;
  Worker a = {fx, 10, 1000, 12, {.monotonic = TRUE}, 0, &a_started};
  Worker b = {fx, 20, 2000, 5, {.monotonic = TRUE}, 0, &b_started};
  Worker c = {fx, 30, 3000, 2, {.monotonic = TRUE}, 0, NULL};
  GThread *ta = g_thread_new("a", worker_run, &a);
  while (!g_atomic_int_get(&a_started)) g_usleep(1000);
  GThread *tb = g_thread_new("b", worker_run, &b);
  while (!g_atomic_int_get(&b_started)) g_usleep(1000);
  GThread *tc = g_thread_new("c", worker_run, &c);
  g_thread_join(ta);
  g_thread_join(tb);
  g_thread_join(tc);
  g_assert_cmpint(a.p.position, ==, 0);
  g_assert_cmpint(b.p.position, ==, 1);
  g_assert_cmpint(c.p.position, ==, 2);
  g_assert_cmpint(a.done_at, <, b.done_at);
  g_assert_cmpint(b.done_at, <, c.done_at);
  /* each got its own progress and its own pixels (checked in worker_run) */
  g_assert_cmpint(a.p.progress, ==, 11);
  g_assert_cmpint(b.p.progress, ==, 4);
  g_assert_cmpint(c.p.progress, ==, 1);
  BagelMsg *s = status(probe);
  g_assert_cmpint(s->jobs_done, ==, 3);
  g_assert_cmpint(s->model_loads, ==, 1);
  bagel_msg_free(s);
  g_free(a.p.stage);
  g_free(b.p.stage);
  g_free(c.p.stage);
  bagel_client_free(probe);
}

static void test_cancel_message(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_STEP_MS", "10", TRUE);
  BagelClient *c = connect_engine(fx);
  BagelMsg *job = edit_job(8, 8, 3, 0, 1, 500);  /* 5 s if not cancelled */
  Progress p = {.monotonic = TRUE, .cancel_after = 3, .client = c};
  GError *e = NULL;
  gint64 t0 = g_get_monotonic_time();
  BagelMsg *r = bagel_client_run(c, job, on_progress, &p, NULL, &e);
  double dt = (g_get_monotonic_time() - t0) / 1e6;
  g_assert_null(r);
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_CANCELLED);
  g_clear_error(&e);
  g_assert_cmpfloat(dt, <, 1.0);
  g_assert_cmpint(p.progress, <=, 5);
  BagelMsg *s = status(c);
  g_assert_cmpint(s->jobs_cancelled, ==, 1);
  g_assert_true(s->model_loaded);
  bagel_msg_free(s);
  /* the same connection and the loaded model serve the next job */
  bagel_msg_free(job);
  job = edit_job(5, 5, 3, 3, 9, 3);
  r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  assert_edit_result(r, 5, 5, 3, 9);
  s = status(c);
  g_assert_cmpint(s->model_loads, ==, 1);
  g_assert_cmpint(s->jobs_done, ==, 1);
  bagel_msg_free(s);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(p.stage);
  bagel_client_free(c);
}

/* The client's own cancellable: the job stops, the engine is told. */
static void test_cancel_cancellable(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_STEP_MS", "10", TRUE);
  BagelClient *c = connect_engine(fx);
  BagelMsg *job = edit_job(8, 8, 3, 0, 1, 500);
  GCancellable *cancel = g_cancellable_new();
  Progress p = {.monotonic = TRUE, .cancellable = cancel, .cancellable_after = 2};
  GError *e = NULL;
  g_assert_null(bagel_client_run(c, job, on_progress, &p, cancel, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_CANCELLED);
  g_clear_error(&e);
  bagel_client_free(c);  /* the connection may be mid-frame: drop it */
  c = connect_engine(fx);
  BagelMsg *s = NULL;
  for (int i = 0; i < 200; i++) {
    bagel_msg_free(s);
    s = status(c);
    if (s->jobs_cancelled == 1 && s->queued == 0) break;
    g_usleep(10000);
  }
  g_assert_cmpint(s->jobs_cancelled, ==, 1);
  g_assert_cmpint(s->queued, ==, 0);
  bagel_msg_free(s);
  g_object_unref(cancel);
  g_free(p.stage);
  bagel_msg_free(job);
  bagel_client_free(c);
}

typedef struct {
  BagelClient *client;
  int steps_seen;
} Dropper;

static gpointer disconnect_mid_job(gpointer data) {
  Dropper *d = data;
  BagelMsg *job = edit_job(8, 8, 3, 0, 1, 500);
  Progress p = {.monotonic = TRUE, .cancellable = g_cancellable_new(), .cancellable_after = 2};
  GError *e = NULL;
  g_assert_null(bagel_client_run(d->client, job, on_progress, &p, p.cancellable, &e));
  g_clear_error(&e);
  d->steps_seen = p.progress;
  g_object_unref(p.cancellable);
  g_free(p.stage);
  bagel_msg_free(job);
  return NULL;
}

static void test_disconnect_cancels(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_STEP_MS", "10", TRUE);
  /* A client that vanishes without a word (like a plug-in GIMP kills): close the socket
   * under a running job, without the cancel message. */
  BagelClient *a = connect_engine(fx);
  GError *e = NULL;
  BagelMsg *job = edit_job(8, 8, 3, 0, 1, 500);
  Progress p = {.monotonic = TRUE, .kill_after = 0};
  /* send the job by hand so that nothing but the close tells the engine */
  job->id = 1;
  GSocketClient *sc = g_socket_client_new();
  char *sock = g_build_filename(fx->runtime, "gimp-bagel", BAGEL_SOCKET_NAME, NULL);
  GSocketAddress *addr = g_unix_socket_address_new(sock);
  GSocketConnection *raw = g_socket_client_connect(sc, G_SOCKET_CONNECTABLE(addr), NULL, &e);
  g_assert_no_error(e);
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(raw));
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(raw));
  BagelMsg *hello = bagel_msg_new(BAGEL_MSG_HELLO);
  hello->version = BAGEL_PROTO_VERSION;
  hello->software = g_strdup("test");
  g_assert_true(bagel_proto_write(out, hello, NULL, &e));
  BagelMsg *m = bagel_proto_read(in, NULL, &e);
  g_assert_cmpint(m->type, ==, BAGEL_MSG_HELLO);
  bagel_msg_free(m);
  g_assert_true(bagel_proto_write(out, job, NULL, &e));
  int progress = 0;
  while (progress < 3) {
    m = bagel_proto_read(in, NULL, &e);
    g_assert_no_error(e);
    g_assert_nonnull(m);
    if (m->type == BAGEL_MSG_PROGRESS && !strcmp(m->stage, "denoise")) progress++;
    bagel_msg_free(m);
  }
  gint64 t0 = g_get_monotonic_time();
  g_object_unref(raw);  /* closes the socket */
  BagelMsg *s = NULL;
  for (int i = 0; i < 300; i++) {
    bagel_msg_free(s);
    s = status(a);
    if (s->jobs_cancelled == 1) break;
    g_usleep(5000);
  }
  double dt = (g_get_monotonic_time() - t0) / 1e6;
  g_assert_cmpint(s->jobs_cancelled, ==, 1);
  g_assert_cmpfloat(dt, <, 0.5);
  g_assert_true(s->model_loaded);
  bagel_msg_free(s);

  /* the same through the client library, dropped from another thread's view */
  Dropper d = {connect_engine(fx), 0};
  GThread *t = g_thread_new("dropper", disconnect_mid_job, &d);
  g_thread_join(t);
  bagel_client_free(d.client);
  g_assert_cmpint(d.steps_seen, >=, 2);

  bagel_msg_free(job);
  job = edit_job(6, 3, 3, 4, 5, 3);
  BagelMsg *r = bagel_client_run(a, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  assert_edit_result(r, 6, 3, 4, 5);
  s = status(a);
  g_assert_cmpint(s->model_loads, ==, 1);
  g_assert_cmpint(s->jobs_cancelled, ==, 2);
  g_assert_cmpint(s->jobs_done, ==, 1);
  bagel_msg_free(s);
  bagel_msg_free(r);
  bagel_msg_free(job);
  bagel_msg_free(hello);
  g_object_unref(addr);
  g_object_unref(sc);
  g_free(sock);
  g_free(p.stage);
  bagel_client_free(a);
}

static void test_kill_mid_job(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_STEP_MS", "10", TRUE);
  BagelClient *c = connect_engine(fx);
  GPid first = (GPid)bagel_client_engine_pid(c);
  BagelMsg *job = edit_job(8, 8, 3, 0, 1, 500);
  Progress p = {.monotonic = TRUE, .kill_after = 2, .engine = first};
  GError *e = NULL;
  g_assert_null(bagel_client_run(c, job, on_progress, &p, NULL, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_FAILED);
  g_assert_nonnull(strstr(e->message, "stopped during the job"));
  g_clear_error(&e);
  bagel_client_free(c);
  waitpid(first, NULL, 0);

  /* the next action starts a fresh engine over the dead one's socket */
  c = connect_engine(fx);
  g_assert_cmpint(bagel_client_engine_pid(c), !=, first);
  bagel_msg_free(job);
  job = edit_job(5, 4, 3, 8, 2, 3);
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  assert_edit_result(r, 5, 4, 8, 2);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(p.stage);
  bagel_client_free(c);
}

static void test_idle_exit(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_IDLE_TIMEOUT", "1", TRUE);
  BagelClient *c = connect_engine(fx);
  GPid pid = (GPid)bagel_client_engine_pid(c);
  BagelMsg *job = edit_job(4, 4, 3, 0, 0, 2);
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  bagel_msg_free(r);
  bagel_msg_free(job);
  bagel_client_free(c);
  gint64 t0 = g_get_monotonic_time();
  while (engine_alive(pid) && g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC) g_usleep(20000);
  double dt = (g_get_monotonic_time() - t0) / 1e6;
  g_assert_false(engine_alive(pid));
  g_assert_cmpfloat(dt, >, 0.5);
  g_assert_cmpfloat(dt, <, 2.5);
  char *sock = g_build_filename(fx->runtime, "gimp-bagel", BAGEL_SOCKET_NAME, NULL);
  g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
  g_free(sock);
}

/* ---- privacy --------------------------------------------------------------------- */

static int run_engine_directly(char **err_text) {
  char *argv[] = {(char *)engine_path, NULL};
  int status = 0;
  GError *e = NULL;
  g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, err_text,
                             &status, &e));
  g_assert_no_error(e);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void assert_refused(const char *needle) {
  GError *e = NULL;
  BagelClient *c = bagel_client_connect(engine_path, NULL, 5000, NULL, &e);
  g_assert_null(c);
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_IO);
  if (!strstr(e->message, needle)) g_error("\"%s\" lacks \"%s\"", e->message, needle);
  g_clear_error(&e);
  char *err = NULL;
  g_assert_cmpint(run_engine_directly(&err), ==, 1);
  if (!strstr(err, needle)) g_error("engine said \"%s\", lacking \"%s\"", err, needle);
  g_free(err);
}

static void test_socket_dir(Fx *fx, gconstpointer data) {
  GError *e = NULL;
  char *dir = bagel_rendezvous_dir(&e);
  g_assert_no_error(e);
  char *expect = g_build_filename(fx->runtime, "gimp-bagel", NULL);
  g_assert_cmpstr(dir, ==, expect);
  struct stat st;
  g_assert_cmpint(stat(dir, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 07777, ==, 0700);

  /* the engine's socket is private too */
  BagelClient *c = connect_engine(fx);
  char *sock = g_build_filename(dir, BAGEL_SOCKET_NAME, NULL);
  g_assert_cmpint(stat(sock, &st), ==, 0);
  g_assert_true(S_ISSOCK(st.st_mode));
  g_assert_cmpint(st.st_mode & 077, ==, 0);
  bagel_client_free(c);
  for (guint i = 0; i < fx->pids->len; i++) stop_engine(g_array_index(fx->pids, GPid, i));

  g_assert_cmpint(chmod(dir, 0750), ==, 0);
  assert_refused("must be private (0700)");
  g_assert_cmpint(chmod(dir, 0700), ==, 0);

  if (getuid() == 0) {
    g_assert_cmpint(chown(dir, 65534, 65534), ==, 0);
    assert_refused("belongs to uid 65534");
    g_assert_cmpint(chown(dir, 0, 0), ==, 0);
  }

  rm_rf(dir);
  char *elsewhere = g_build_filename(fx->runtime, "elsewhere", NULL);
  g_assert_cmpint(g_mkdir(elsewhere, 0700), ==, 0);
  g_assert_cmpint(symlink(elsewhere, dir), ==, 0);
  assert_refused("not a directory");
  g_unlink(dir);

  /* without XDG_RUNTIME_DIR: a private directory under the user's cache */
  g_unsetenv("XDG_RUNTIME_DIR");
  char *fallback = bagel_rendezvous_dir(&e);
  g_assert_no_error(e);
  char *want = g_build_filename(g_get_user_cache_dir(), "gimp-bagel", "run", NULL);
  g_assert_cmpstr(fallback, ==, want);
  g_assert_cmpint(stat(fallback, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 07777, ==, 0700);
  g_setenv("XDG_RUNTIME_DIR", fx->runtime, TRUE);
  g_free(want);
  g_free(fallback);
  g_free(elsewhere);
  g_free(sock);
  g_free(expect);
  g_free(dir);
}

/* SO_PEERCRED: a connection from another uid is refused (needs root to become one). */
static void test_peer_credentials(void) {
  if (getuid() != 0) {
    g_test_skip("needs root to connect as another user");
    return;
  }
  char *dir = g_dir_make_tmp("bglpeer-XXXXXX", NULL);
  chmod(dir, 0777);
  char *path = g_build_filename(dir, "s", NULL);
  GSocketListener *l = g_socket_listener_new();
  GSocketAddress *addr = g_unix_socket_address_new(path);
  GError *e = NULL;
  g_assert_true(g_socket_listener_add_address(l, addr, G_SOCKET_TYPE_STREAM,
                                              G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, &e));
  chmod(path, 0777);
  for (int as = 0; as < 2; as++) {
    uid_t uid = as ? 65534 : 0;
    pid_t child = fork();
    if (child == 0) {  /* async-signal-safe calls only */
      if (uid && setuid(uid) != 0) _exit(2);
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      struct sockaddr_un sun = {.sun_family = AF_UNIX};
      strncpy(sun.sun_path, path, sizeof sun.sun_path - 1);
      if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) _exit(3);
      char b;
      (void)!read(fd, &b, 1);
      _exit(0);
    }
    GSocketConnection *conn = g_socket_listener_accept(l, NULL, NULL, &e);
    g_assert_no_error(e);
    gboolean ok = bagel_rendezvous_check_peer(conn, &e);
    if (uid == 0) {
      g_assert_no_error(e);
      g_assert_true(ok);
    } else {
      g_assert_false(ok);
      g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_IO);
      g_assert_nonnull(strstr(e->message, "uid 65534"));
      g_clear_error(&e);
    }
    g_object_unref(conn);
    int status;
    waitpid(child, &status, 0);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  g_object_unref(addr);
  g_object_unref(l);
  g_unlink(path);
  g_rmdir(dir);
  g_free(path);
  g_free(dir);
}

/* The inodes of the sockets a process holds. */
static GHashTable *socket_inodes(GPid pid) {
  GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  char *fds = g_strdup_printf("/proc/%d/fd", (int)pid);
  GDir *d = g_dir_open(fds, 0, NULL);
  g_assert_nonnull(d);
  const char *n;
  while ((n = g_dir_read_name(d))) {
    char *p = g_build_filename(fds, n, NULL);
    char *target = g_file_read_link(p, NULL);
    if (target && g_str_has_prefix(target, "socket:["))
      g_hash_table_add(set, g_strndup(target + 8, strlen(target) - 9));
    g_free(target);
    g_free(p);
  }
  g_dir_close(d);
  g_free(fds);
  return set;
}

/* How many lines of a /proc/net table (inode in column `col`) are the process's. */
static int count_owned(const char *table, int col, GHashTable *inodes) {
  char *text = NULL;
  if (!g_file_get_contents(table, &text, NULL, NULL)) return 0;
  char **lines = g_strsplit(text, "\n", -1);
  int count = 0;
  for (int i = 1; lines[i]; i++) {
    char **f = g_strsplit_set(g_strstrip(lines[i]), " ", -1);
    int k = 0;
    for (int j = 0; f[j]; j++)
      if (*f[j] && k++ == col && g_hash_table_contains(inodes, f[j])) count++;
    g_strfreev(f);
  }
  g_strfreev(lines);
  g_free(text);
  return count;
}

static void test_no_tcp(Fx *fx, gconstpointer data) {
  BagelClient *c = connect_engine(fx);
  GHashTable *inodes = socket_inodes((GPid)bagel_client_engine_pid(c));
  g_assert_cmpint(g_hash_table_size(inodes), >=, 1);
  g_assert_cmpint(count_owned("/proc/net/unix", 6, inodes), >=, 1);  /* the method works */
  g_assert_cmpint(count_owned("/proc/net/tcp", 9, inodes), ==, 0);
  g_assert_cmpint(count_owned("/proc/net/tcp6", 9, inodes), ==, 0);
  g_assert_cmpint(count_owned("/proc/net/udp", 9, inodes), ==, 0);
  g_assert_cmpint(count_owned("/proc/net/udp6", 9, inodes), ==, 0);
  g_hash_table_unref(inodes);
  bagel_client_free(c);
}

/* ---- protocol violations ---------------------------------------------------------- */

static GSocketConnection *raw_connect(Fx *fx) {
  GSocketClient *sc = g_socket_client_new();
  char *sock = g_build_filename(fx->runtime, "gimp-bagel", BAGEL_SOCKET_NAME, NULL);
  GSocketAddress *addr = g_unix_socket_address_new(sock);
  GError *e = NULL;
  GSocketConnection *conn = g_socket_client_connect(sc, G_SOCKET_CONNECTABLE(addr), NULL, &e);
  g_assert_no_error(e);
  g_object_unref(addr);
  g_object_unref(sc);
  g_free(sock);
  return conn;
}

/* Send bytes, expect an error frame containing `needle`, then the close. */
static void expect_refusal(Fx *fx, const void *bytes, gsize n, const char *needle) {
  GSocketConnection *conn = raw_connect(fx);
  GError *e = NULL;
  g_assert_true(g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(conn)),
                                          bytes, n, NULL, NULL, &e));
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  BagelMsg *m = bagel_proto_read(in, NULL, &e);
  g_assert_no_error(e);
  g_assert_nonnull(m);
  g_assert_cmpint(m->type, ==, BAGEL_MSG_ERROR);
  if (!strstr(m->message, needle)) g_error("\"%s\" lacks \"%s\"", m->message, needle);
  bagel_msg_free(m);
  g_assert_null(bagel_proto_read(in, NULL, &e));  /* closed */
  g_clear_error(&e);
  g_object_unref(conn);
}

static void test_protocol_violations(Fx *fx, gconstpointer data) {
  BagelClient *c = connect_engine(fx);
  const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  expect_refusal(fx, http, sizeof http - 1, "bad magic");

  BagelMsg *m = bagel_msg_new(BAGEL_MSG_HELLO);
  m->version = 99;
  m->software = g_strdup("future plug-in");
  GBytes *b = bagel_proto_encode(m);
  expect_refusal(fx, g_bytes_get_data(b, NULL), g_bytes_get_size(b), "protocol version mismatch");
  g_bytes_unref(b);
  bagel_msg_free(m);

  m = bagel_msg_new(BAGEL_MSG_STATUS);
  b = bagel_proto_encode(m);
  expect_refusal(fx, g_bytes_get_data(b, NULL), g_bytes_get_size(b), "first message must be hello");
  g_bytes_unref(b);
  bagel_msg_free(m);

  /* the engine is unharmed */
  BagelMsg *job = edit_job(3, 3, 3, 1, 1, 2);
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  assert_edit_result(r, 3, 3, 1, 1);
  bagel_msg_free(r);
  bagel_msg_free(job);
  bagel_client_free(c);
}

/* ---- the model directory ------------------------------------------------------------ */

static void assert_model_error(BagelClient *c, const char *needle1, const char *needle2) {
  BagelMsg *job = edit_job(3, 3, 3, 1, 1, 2);
  GError *e = NULL;
  g_assert_null(bagel_client_run(c, job, NULL, NULL, NULL, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  if (!strstr(e->message, needle1) || !strstr(e->message, needle2))
    g_error("\"%s\" lacks \"%s\" or \"%s\"", e->message, needle1, needle2);
  g_clear_error(&e);
  bagel_msg_free(job);
}

static void test_model_missing(Fx *fx, gconstpointer data) {
  char *missing = g_build_filename(fx->runtime, "no-such-model", NULL);
  g_setenv("BAGEL_MODEL", missing, TRUE);
  BagelClient *c = connect_engine(fx);
  char *cmd = g_strdup_printf("huggingface-cli download ByteDance-Seed/BAGEL-7B-MoT "
                              "--local-dir %s", missing);
  assert_model_error(c, "does not exist", cmd);
  /* the engine stays up; a model that appears later is found */
  make_model_dir(missing, "ema.safetensors");
  assert_model_error(c, "incomplete: ema.safetensors missing", cmd);
  make_model_dir(missing, NULL);
  BagelMsg *job = edit_job(3, 3, 3, 1, 1, 2);
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  bagel_msg_free(r);
  bagel_msg_free(job);
  g_free(cmd);
  g_free(missing);
  bagel_client_free(c);
}

/* The config file names the model and the idle timeout when the environment does not. */
static void test_config_file(Fx *fx, gconstpointer data) {
  g_unsetenv("BAGEL_MODEL");
  g_unsetenv("BAGEL_IDLE_TIMEOUT");
  char *confdir = g_build_filename(g_get_user_config_dir(), "gimp-bagel", NULL);
  g_assert_cmpint(g_mkdir_with_parents(confdir, 0700), ==, 0);
  char *conf = g_build_filename(confdir, "gimp-bagel.conf", NULL);
  char *text = g_strdup_printf("[engine]\nmodel=%s\nidle-timeout=1\n", fx->model);
  g_assert_true(g_file_set_contents(conf, text, -1, NULL));
  BagelClient *c = connect_engine(fx);
  GPid pid = (GPid)bagel_client_engine_pid(c);
  BagelMsg *job = edit_job(3, 3, 3, 1, 1, 2);
  GError *e = NULL;
  BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
  g_assert_no_error(e);
  bagel_msg_free(r);
  bagel_msg_free(job);
  bagel_client_free(c);
  gint64 t0 = g_get_monotonic_time();
  while (engine_alive(pid) && g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC) g_usleep(20000);
  g_assert_false(engine_alive(pid));
  g_free(text);
  g_free(conf);
  g_free(confdir);
}

static void test_model_lookup(void) {
  g_unsetenv("HF_HUB_CACHE");
  char *hf = g_build_filename(g_get_user_cache_dir(), "hf", NULL);
  g_setenv("HF_HOME", hf, TRUE);
  char *def = bagel_model_default_dir();
  char *expect_def = g_build_filename(g_get_user_data_dir(), "gimp-bagel", "BAGEL-7B-MoT", NULL);
  g_assert_cmpstr(def, ==, expect_def);

  /* nothing anywhere: the message says where it looked and how to download */
  GError *e = NULL;
  g_assert_null(bagel_model_dir_find(NULL, NULL, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  char *cmd = g_strdup_printf("huggingface-cli download ByteDance-Seed/BAGEL-7B-MoT "
                              "--local-dir %s", def);
  g_assert_nonnull(strstr(e->message, cmd));
  g_assert_nonnull(strstr(e->message, "gimp-bagel.conf"));
  g_clear_error(&e);

  /* a Hugging Face cache snapshot: refs/main wins over a newer incomplete one */
  char *repo = g_build_filename(hf, "hub", "models--ByteDance-Seed--BAGEL-7B-MoT", NULL);
  char *snap_a = g_build_filename(repo, "snapshots", "aaaa", NULL);
  char *snap_b = g_build_filename(repo, "snapshots", "bbbb", NULL);
  make_model_dir(snap_a, NULL);
  make_model_dir(snap_b, "ae.safetensors");
  char *found = bagel_model_dir_find(NULL, NULL, &e);
  g_assert_no_error(e);
  g_assert_cmpstr(found, ==, snap_a);  /* the only complete one */
  g_free(found);
  make_model_dir(snap_b, NULL);
  char *refs = g_build_filename(repo, "refs", NULL);
  g_mkdir_with_parents(refs, 0700);
  char *main_ref = g_build_filename(refs, "main", NULL);
  g_file_set_contents(main_ref, "aaaa\n", -1, NULL);
  found = bagel_model_dir_find(NULL, NULL, &e);
  g_assert_cmpstr(found, ==, snap_a);
  g_free(found);

  /* the default download location wins over the cache; incomplete there is an error */
  make_model_dir(def, "vocab.json");
  g_assert_null(bagel_model_dir_find(NULL, NULL, &e));
  g_assert_error(e, BAGEL_ERROR, BAGEL_ERROR_MODEL);
  g_assert_nonnull(strstr(e->message, "vocab.json"));
  g_assert_nonnull(strstr(e->message, cmd));
  g_clear_error(&e);
  make_model_dir(def, NULL);
  found = bagel_model_dir_find(NULL, NULL, &e);
  g_assert_cmpstr(found, ==, def);
  g_free(found);

  /* a configured directory is used as is, or named in the error */
  found = bagel_model_dir_find(snap_b, "BAGEL_MODEL", &e);
  g_assert_cmpstr(found, ==, snap_b);
  g_free(found);
  g_assert_null(bagel_model_dir_find("/nonexistent/bagel", "BAGEL_MODEL", &e));
  g_assert_nonnull(strstr(e->message, "(from BAGEL_MODEL) does not exist"));
  g_assert_nonnull(strstr(e->message, "--local-dir /nonexistent/bagel"));
  g_clear_error(&e);

  /* the hint is added to the engine's own model errors once */
  GError *load = g_error_new(BAGEL_ERROR, BAGEL_ERROR_MODEL, "ema.safetensors: truncated");
  bagel_model_dir_add_hint(load, "/m");
  bagel_model_dir_add_hint(load, "/m");
  g_assert_cmpstr(load->message, ==, "ema.safetensors: truncated\nDownload the model (about 29 GB) "
                  "with:\n  huggingface-cli download ByteDance-Seed/BAGEL-7B-MoT --local-dir /m");
  g_error_free(load);
  g_free(main_ref);
  g_free(refs);
  g_free(snap_a);
  g_free(snap_b);
  g_free(repo);
  g_free(cmd);
  g_free(expect_def);
  g_free(def);
  g_free(hf);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  signal(SIGPIPE, SIG_IGN);
  engine_path = g_getenv("BAGEL_TEST_ENGINE");
  if (!engine_path || !g_file_test(engine_path, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr("BAGEL_TEST_ENGINE must name the bagel-engine-fake binary\n");
    return 1;
  }
#define ADD(path, fn) g_test_add(path, Fx, NULL, fx_setup, fn, fx_teardown)
  ADD("/server/edit", test_edit);
  ADD("/server/generate-describe", test_generate_describe);
  ADD("/server/clients-fifo", test_clients_fifo);
  ADD("/server/cancel/message", test_cancel_message);
  ADD("/server/cancel/cancellable", test_cancel_cancellable);
  ADD("/server/cancel/disconnect", test_disconnect_cancels);
  ADD("/server/kill-mid-job", test_kill_mid_job);
  ADD("/server/idle-exit", test_idle_exit);
  ADD("/server/socket-dir", test_socket_dir);
  ADD("/server/no-tcp", test_no_tcp);
  ADD("/server/protocol-violations", test_protocol_violations);
  ADD("/server/model-missing", test_model_missing);
  ADD("/server/config-file", test_config_file);
  g_test_add_func("/server/peer-credentials", test_peer_credentials);
  g_test_add_func("/model-dir/lookup", test_model_lookup);
  return g_test_run();
}
