/* tests/server/test_server.c — bagel-engine end to end through the client library:
 * the engine binary under test is bagel-engine-fake (engine/server + the deterministic
 * test double of tests/server/fake_engine.c), started on demand exactly as the plug-in
 * starts the real one.  Here: results and progress of each mode; FIFO order and
 * integrity with three clients at once; cancel by message, by the client's cancellable
 * and by disconnect, with the model kept; an engine killed mid-job is an error and the
 * next connect starts a fresh one; the idle timeout.  The engine's surroundings (socket
 * directory, peers, TCP, protocol violations, model lookup) are in test_server_setup.c.
 *
 * Each test runs with its own XDG dirs (G_TEST_OPTION_ISOLATE_DIRS) and a short private
 * XDG_RUNTIME_DIR, and stops every engine it started (fixture.h).
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

#include "fixture.h"
#include "model_dir.h"
#include "rendezvous.h"

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

/* A GPU the engine found but could not use: the note reaches the user with the first
 * result after the model is loaded, and only then (the plug-in shows it). */
static void test_backend_warning(Fx *fx, gconstpointer data) {
  g_setenv("BAGEL_FAKE_BACKEND_NOTE", "the CUDA backend cannot start: GPU X (sm_75) is too old; "
           "using the CPU backend", TRUE);
  BagelClient *c = connect_engine(fx);
  g_unsetenv("BAGEL_FAKE_BACKEND_NOTE");
  GError *e = NULL;
  for (int i = 0; i < 2; i++) {
    BagelMsg *job = edit_job(4, 4, 3, 0, 5, 2);
    BagelMsg *r = bagel_client_run(c, job, NULL, NULL, NULL, &e);
    g_assert_no_error(e);
    assert_edit_result(r, 4, 4, 0, 5);
    if (i == 0) {
      g_assert_nonnull(r->warning);
      g_assert_nonnull(strstr(r->warning, "sm_75"));
    } else {
      g_assert_null(r->warning);
    }
    bagel_msg_free(r);
    bagel_msg_free(job);
  }
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

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  signal(SIGPIPE, SIG_IGN);
  engine_path = g_getenv("BAGEL_TEST_ENGINE");
  if (!engine_path || !g_file_test(engine_path, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr("BAGEL_TEST_ENGINE must name the bagel-engine-fake binary\n");
    return 1;
  }
  ADD_FX_TEST("/server/edit", test_edit);
  ADD_FX_TEST("/server/generate-describe", test_generate_describe);
  ADD_FX_TEST("/server/clients-fifo", test_clients_fifo);
  ADD_FX_TEST("/server/cancel/message", test_cancel_message);
  ADD_FX_TEST("/server/cancel/cancellable", test_cancel_cancellable);
  ADD_FX_TEST("/server/cancel/disconnect", test_disconnect_cancels);
  ADD_FX_TEST("/server/kill-mid-job", test_kill_mid_job);
  ADD_FX_TEST("/server/idle-exit", test_idle_exit);
  ADD_FX_TEST("/server/backend-warning", test_backend_warning);
  add_setup_tests();
  return g_test_run();
}
