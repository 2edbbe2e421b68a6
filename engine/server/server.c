/* engine/server/server.c — the bagel-engine server core (see server.h).
 *
 * Threads: the main thread runs a GMainLoop (idle timer, signals); GThreadedSocketService
 * gives each connection a thread that reads its frames and answers hello/status/cancel;
 * one worker thread owns the BagelEngine and runs the queued jobs in order.
 * Locks: `lock` guards the queue, the running job and the counters; each client's
 * `write_lock` serialises the frames written to it.  A thread may take a client's
 * write_lock and then `lock`, never the other way round.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bagel-config.h"
#include "model_dir.h"
#include "protocol.h"
#include "rendezvous.h"

typedef struct Server Server;

typedef struct {
  gint ref;
  Server *server;
  GSocketConnection *conn;
  GOutputStream *out;
  GMutex write_lock;
  gint gone;
  int serial;
} Client;

typedef struct {
  Client *client;
  BagelMsg *msg;
  gint cancelled;
} Job;

struct Server {
  const BagelServerConfig *cfg;
  GMutex lock;
  GCond cond;
  GQueue queue;             /* Job*, arrival order */
  Job *running;
  GList *clients;           /* Client*, for shutdown */
  int n_clients, next_serial;
  gboolean stopping;
  gint64 last_activity;     /* monotonic µs */
  int loads, done, cancelled;
  char *backend;
  GMainLoop *loop;
  BagelEngine *engine;      /* worker thread only */
  gboolean note_pending;    /* worker thread only: the engine's backend note is unsent */
};

static void slog(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void slog(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  GDateTime *now = g_date_time_new_now_local();
  char *t = g_date_time_format(now, "%Y-%m-%d %H:%M:%S");
  fprintf(stderr, "[bagel-engine %d %s] %s\n", (int)getpid(), t, s);
  fflush(stderr);
  g_free(t);
  g_date_time_unref(now);
  g_free(s);
}

/* ---- clients ------------------------------------------------------------------------ */

static Client *client_ref(Client *c) {
  g_atomic_int_inc(&c->ref);
  return c;
}

static void client_unref(Client *c) {
  if (!g_atomic_int_dec_and_test(&c->ref)) return;
  g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
  g_object_unref(c->conn);
  g_mutex_clear(&c->write_lock);
  g_free(c);
}

/* Send a frame with the write lock held; FALSE (and the client marked gone) when it
 * cannot be written. */
static gboolean client_send_locked(Client *c, const BagelMsg *m) {
  if (g_atomic_int_get(&c->gone)) return FALSE;
  GError *e = NULL;
  gboolean ok = bagel_proto_write(c->out, m, NULL, &e);
  if (!ok) {
    slog("client %d: %s", c->serial, e->message);
    g_atomic_int_set(&c->gone, 1);
    g_error_free(e);
  }
  return ok;
}

static gboolean client_send(Client *c, const BagelMsg *m) {
  g_mutex_lock(&c->write_lock);
  gboolean ok = client_send_locked(c, m);
  g_mutex_unlock(&c->write_lock);
  return ok;
}

static void client_send_error(Client *c, gint32 id, BagelErrorCode code, const char *text) {
  BagelMsg *m = bagel_msg_new_error(id, code, text);
  client_send(c, m);
  bagel_msg_free(m);
}

static void job_free(Job *j) {
  client_unref(j->client);
  bagel_msg_free(j->msg);
  g_free(j);
}

static void touch(Server *s) {
  g_mutex_lock(&s->lock);
  s->last_activity = g_get_monotonic_time();
  g_mutex_unlock(&s->lock);
}

/* ---- requests (connection threads) ------------------------------------------------ */

static void enqueue(Server *s, Client *c, BagelMsg *m) {
  Job *j = g_new0(Job, 1);
  j->client = client_ref(c);
  j->msg = m;
  gint32 id = m->id;
  BagelJobMode mode = m->mode;
  /* The write lock is held from queueing to "accepted": the worker needs it for the
   * job's first progress frame, so "accepted" comes first, and the job (which the
   * worker may finish and free at any time once queued) is not touched after. */
  g_mutex_lock(&c->write_lock);
  g_mutex_lock(&s->lock);
  gboolean duplicate = s->running && s->running->client == c && s->running->msg->id == id;
  for (GList *l = s->queue.head; l && !duplicate; l = l->next) {
    Job *q = l->data;
    duplicate = q->client == c && q->msg->id == id;
  }
  gboolean refused = s->stopping || duplicate;
  int position = (int)g_queue_get_length(&s->queue) + (s->running ? 1 : 0);
  if (!refused) {
    g_queue_push_tail(&s->queue, j);
    g_cond_signal(&s->cond);
  }
  g_mutex_unlock(&s->lock);
  if (!refused) {
    slog("client %d: %s job %d queued at position %d", c->serial, bagel_job_mode_name(mode),
         id, position);
    BagelMsg *a = bagel_msg_new(BAGEL_MSG_ACCEPTED);
    a->id = id;
    a->position = position;
    client_send_locked(c, a);
    bagel_msg_free(a);
  }
  g_mutex_unlock(&c->write_lock);
  if (refused) {
    client_send_error(c, id, duplicate ? BAGEL_ERROR_INVALID_ARG : BAGEL_ERROR_FAILED,
                      duplicate ? "a job with this id is already pending on this connection"
                                : "bagel-engine is shutting down; retry");
    job_free(j);
  }
}

/* Cancel one job of c (id >= 0) or all of them (id < 0, the client went away). */
static void cancel_jobs(Server *s, Client *c, gint32 id) {
  GList *dropped = NULL;
  g_mutex_lock(&s->lock);
  for (GList *l = s->queue.head; l;) {
    GList *next = l->next;
    Job *q = l->data;
    if (q->client == c && (id < 0 || q->msg->id == id)) {
      g_queue_delete_link(&s->queue, l);
      dropped = g_list_prepend(dropped, q);
      s->cancelled++;
    }
    l = next;
  }
  if (s->running && s->running->client == c && (id < 0 || s->running->msg->id == id))
    g_atomic_int_set(&s->running->cancelled, 1);
  g_mutex_unlock(&s->lock);
  for (GList *l = dropped; l; l = l->next) {
    Job *q = l->data;
    slog("client %d: job %d cancelled before it ran", c->serial, q->msg->id);
    client_send_error(c, q->msg->id, BAGEL_ERROR_CANCELLED, "cancelled");
    job_free(q);
  }
  g_list_free(dropped);
}

static void send_status(Server *s, Client *c) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_STATUS);
  m->is_reply = TRUE;
  m->pid = getpid();
  g_mutex_lock(&s->lock);
  m->model_loaded = s->backend != NULL;
  m->model_loads = s->loads;
  m->jobs_done = s->done;
  m->jobs_cancelled = s->cancelled;
  m->queued = (int)g_queue_get_length(&s->queue) + (s->running ? 1 : 0);
  m->backend = g_strdup(s->backend);
  g_mutex_unlock(&s->lock);
  client_send(c, m);
  bagel_msg_free(m);
}

static void send_hello(Client *c) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_HELLO);
  m->version = BAGEL_PROTO_VERSION;
  m->software = g_strdup("bagel-engine " BAGEL_VERSION);
  m->pid = getpid();
  client_send(c, m);
  bagel_msg_free(m);
}

/* One message from a client; FALSE ends the connection. */
static gboolean handle(Server *s, Client *c, BagelMsg *m, gboolean *greeted) {
  if (!*greeted && m->type != BAGEL_MSG_HELLO) {
    client_send_error(c, -1, BAGEL_ERROR_FORMAT, "protocol: the first message must be hello");
    bagel_msg_free(m);
    return FALSE;
  }
  switch (m->type) {
  case BAGEL_MSG_HELLO:
    if (m->version != BAGEL_PROTO_VERSION) {
      char *text = g_strdup_printf("protocol version mismatch: the client (%s) speaks %d, "
                                   "bagel-engine " BAGEL_VERSION " speaks %d; reinstall "
                                   "gimp-bagel so both match", m->software, m->version,
                                   BAGEL_PROTO_VERSION);
      client_send_error(c, -1, BAGEL_ERROR_FORMAT, text);
      g_free(text);
      bagel_msg_free(m);
      return FALSE;
    }
    slog("client %d: hello from %s (pid %" G_GINT64_FORMAT ")", c->serial, m->software,
         m->pid);
    send_hello(c);
    *greeted = TRUE;
    break;
  case BAGEL_MSG_JOB:
    enqueue(s, c, m);
    return TRUE;  /* the job owns m now */
  case BAGEL_MSG_CANCEL:
    slog("client %d: cancel job %d", c->serial, m->id);
    cancel_jobs(s, c, m->id);
    break;
  case BAGEL_MSG_STATUS:
    if (!m->is_reply) {
      send_status(s, c);
      break;
    }
    G_GNUC_FALLTHROUGH;  /* a status reply is not a request */
  default: {
    char *text = g_strdup_printf("protocol: a client may not send a %s message",
                                 bagel_msg_type_name(m->type));
    client_send_error(c, -1, BAGEL_ERROR_FORMAT, text);
    g_free(text);
    bagel_msg_free(m);
    return FALSE;
  }
  }
  bagel_msg_free(m);
  return TRUE;
}

static gboolean on_connection(GThreadedSocketService *service, GSocketConnection *conn,
                              GObject *source, gpointer data) {
  Server *s = data;
  GError *e = NULL;
  if (!bagel_rendezvous_check_peer(conn, &e)) {
    slog("%s", e->message);
    g_error_free(e);
    return TRUE;
  }
  Client *c = g_new0(Client, 1);
  c->ref = 1;
  c->server = s;
  c->conn = g_object_ref(conn);
  c->out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_mutex_init(&c->write_lock);
  g_mutex_lock(&s->lock);
  c->serial = ++s->next_serial;
  s->clients = g_list_prepend(s->clients, c);
  s->n_clients++;
  g_mutex_unlock(&s->lock);

  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  gboolean greeted = FALSE;
  for (;;) {
    BagelMsg *m = bagel_proto_read(in, NULL, &e);
    if (!m) {
      if (e) {
        slog("client %d: %s", c->serial, e->message);
        if (e->code == BAGEL_ERROR_FORMAT) client_send_error(c, -1, e->code, e->message);
        g_clear_error(&e);
      }
      break;
    }
    touch(s);
    if (!handle(s, c, m, &greeted)) break;
  }
  /* Gone: whatever it queued or runs is cancelled; the model stays loaded. */
  g_atomic_int_set(&c->gone, 1);
  cancel_jobs(s, c, -1);
  slog("client %d: disconnected", c->serial);
  g_mutex_lock(&s->lock);
  s->clients = g_list_remove(s->clients, c);
  s->n_clients--;
  s->last_activity = g_get_monotonic_time();
  g_cond_broadcast(&s->cond);
  g_mutex_unlock(&s->lock);
  client_unref(c);
  return TRUE;
}

/* ---- the worker ------------------------------------------------------------------- */

static gboolean on_progress(const char *stage, int step, int total, double elapsed,
                            gpointer data) {
  Job *j = data;
  if (g_atomic_int_get(&j->cancelled) || g_atomic_int_get(&j->client->gone)) return FALSE;
  BagelMsg m = {.type = BAGEL_MSG_PROGRESS, .id = j->msg->id, .stage = (char *)stage,
                .step = step, .total = total, .elapsed = elapsed};
  return client_send(j->client, &m);
}

static gboolean ensure_engine(Server *s, Job *j, GError **error) {
  if (s->engine) return TRUE;
  on_progress("load", 0, 1, 0, j);
  char *dir = bagel_model_dir_find(s->cfg->model_dir, s->cfg->model_dir_origin, error);
  if (!dir) return FALSE;
  slog("loading the model from %s", dir);
  gint64 t0 = g_get_monotonic_time();
  s->engine = bagel_engine_open(dir, &s->cfg->engine, error);
  if (!s->engine) {
    if (*error && (*error)->domain == BAGEL_ERROR && (*error)->code == BAGEL_ERROR_MODEL)
      bagel_model_dir_add_hint(*error, dir);
    g_free(dir);
    return FALSE;
  }
  g_free(dir);
  double dt = (g_get_monotonic_time() - t0) / 1e6;
  g_mutex_lock(&s->lock);
  s->loads++;
  g_free(s->backend);
  s->backend = g_strdup(bagel_engine_backend_name(s->engine));
  g_mutex_unlock(&s->lock);
  slog("model loaded in %.1f s (backend %s)", dt, bagel_engine_backend_name(s->engine));
  s->note_pending = bagel_engine_backend_note(s->engine) != NULL;
  on_progress("load", 1, 1, dt, j);
  return TRUE;
}

static gboolean run_engine(Server *s, Job *j, BagelResult *r, GError **error) {
  const BagelMsg *m = j->msg;
  BagelImage im = {m->image.width, m->image.height, m->image.channels,
                   m->image.width * m->image.channels, m->image.pixels};
  switch (m->mode) {
  case BAGEL_JOB_DESCRIBE: {
    BagelDescribeParams p;
    bagel_describe_params_init(&p);
    bagel_job_params_apply_describe(&m->params, &p);
    return bagel_describe(s->engine, &im, m->prompt, &p, on_progress, j, r, error);
  }
  case BAGEL_JOB_GENERATE: {
    BagelGenerateParams p;
    bagel_generate_params_init(&p);
    bagel_job_params_apply_generate(&m->params, &p);
    return bagel_generate(s->engine, m->prompt, &p, on_progress, j, r, error);
  }
  case BAGEL_JOB_EDIT: {
    BagelEditParams p;
    bagel_edit_params_init(&p);
    bagel_job_params_apply_edit(&m->params, &p);
    return bagel_edit(s->engine, &im, m->prompt, &p, on_progress, j, r, error);
  }
  }
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "unknown job mode");
  return FALSE;
}

static void run_job(Server *s, Job *j) {
  GError *e = NULL;
  BagelResult r = {0};
  gint64 t0 = g_get_monotonic_time();
  gboolean ok = !g_atomic_int_get(&j->cancelled) && !g_atomic_int_get(&j->client->gone) &&
                ensure_engine(s, j, &e) && run_engine(s, j, &r, &e);
  gboolean cancelled = g_atomic_int_get(&j->cancelled) || g_atomic_int_get(&j->client->gone) ||
                       g_error_matches(e, BAGEL_ERROR, BAGEL_ERROR_CANCELLED);
  /* Count before answering: a client may ask for the status as soon as it has read it. */
  g_mutex_lock(&s->lock);
  if (ok && !cancelled) s->done++;
  else if (cancelled) s->cancelled++;
  g_mutex_unlock(&s->lock);
  if (ok && !cancelled) {
    BagelMsg *res = bagel_msg_new(BAGEL_MSG_RESULT);
    res->id = j->msg->id;
    res->seed = r.seed;
    res->text = g_strdup(r.text);
    res->reasoning = g_strdup(r.reasoning);
    res->timings = r.timings;
    if (s->note_pending) {   /* once per model load: the first result carries it */
      res->warning = g_strdup(bagel_engine_backend_note(s->engine));
      s->note_pending = FALSE;
    }
    if (r.image.pixels) {
      res->image = (BagelProtoImage){r.image.width, r.image.height, 3, r.image.pixels};
      r.image.pixels = NULL;
    }
    client_send(j->client, res);
    bagel_msg_free(res);
  } else if (!g_atomic_int_get(&j->client->gone)) {
    if (cancelled) client_send_error(j->client, j->msg->id, BAGEL_ERROR_CANCELLED, "cancelled");
    else {
      BagelMsg *err = bagel_msg_new_error_from_gerror(j->msg->id, e);
      client_send(j->client, err);
      bagel_msg_free(err);
    }
  }
  slog("client %d: job %d %s after %.2f s%s%s", j->client->serial, j->msg->id,
       ok && !cancelled ? "done" : cancelled ? "cancelled" : "failed",
       (g_get_monotonic_time() - t0) / 1e6, e && !cancelled ? ": " : "",
       e && !cancelled ? e->message : "");
  g_clear_error(&e);
  bagel_result_clear(&r);
}

static gpointer worker_main(gpointer data) {
  Server *s = data;
  g_mutex_lock(&s->lock);
  for (;;) {
    while (!s->stopping && g_queue_is_empty(&s->queue)) g_cond_wait(&s->cond, &s->lock);
    if (s->stopping) break;
    Job *j = g_queue_pop_head(&s->queue);
    s->running = j;
    g_mutex_unlock(&s->lock);
    run_job(s, j);
    g_mutex_lock(&s->lock);
    s->running = NULL;
    s->last_activity = g_get_monotonic_time();
    g_mutex_unlock(&s->lock);
    job_free(j);
    g_mutex_lock(&s->lock);
  }
  GList *left = s->queue.head;
  s->queue.head = s->queue.tail = NULL;
  s->queue.length = 0;
  g_mutex_unlock(&s->lock);
  for (GList *l = left; l; l = l->next) {
    Job *j = l->data;
    client_send_error(j->client, j->msg->id, BAGEL_ERROR_FAILED,
                      "bagel-engine is shutting down; retry");
    job_free(j);
  }
  g_list_free(left);
  if (s->engine) {
    bagel_engine_free(s->engine);
    s->engine = NULL;
    slog("model unloaded");
  }
  return NULL;
}

/* ---- main loop: idle timeout and signals ------------------------------------------ */

static gboolean on_tick(gpointer data) {
  Server *s = data;
  if (s->cfg->idle_timeout_s <= 0) return G_SOURCE_CONTINUE;
  g_mutex_lock(&s->lock);
  gboolean idle = !s->running && g_queue_is_empty(&s->queue) &&
                  g_get_monotonic_time() - s->last_activity >=
                      (gint64)s->cfg->idle_timeout_s * G_USEC_PER_SEC;
  g_mutex_unlock(&s->lock);
  if (idle) {
    slog("idle for %d s: freeing the model and exiting", s->cfg->idle_timeout_s);
    g_main_loop_quit(s->loop);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer data) {
  Server *s = data;
  slog("signal received: exiting");
  g_main_loop_quit(s->loop);
  return G_SOURCE_CONTINUE;
}

/* Take the lock that makes this the user's only engine.  -1 with *lost_race when
 * another engine holds it. */
static int take_lock(const char *dir, gboolean *lost_race, GError **error) {
  char *path = bagel_rendezvous_path(dir, BAGEL_LOCK_NAME);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot open %s: %s", path,
                g_strerror(errno));
  } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) *lost_race = TRUE;
    else g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot lock %s: %s", path,
                     g_strerror(errno));
    close(fd);
    fd = -1;
  }
  g_free(path);
  return fd;
}

static void shutdown_clients(Server *s) {
  g_mutex_lock(&s->lock);
  for (GList *l = s->clients; l; l = l->next) {
    Client *c = l->data;
    g_atomic_int_set(&c->gone, 1);
    g_socket_shutdown(g_socket_connection_get_socket(c->conn), TRUE, TRUE, NULL);
  }
  gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
  while (s->n_clients > 0 && g_cond_wait_until(&s->cond, &s->lock, deadline)) {}
  g_mutex_unlock(&s->lock);
}

gboolean bagel_server_run(const BagelServerConfig *cfg, gboolean *lost_race,
                          GError **error) {
  *lost_race = FALSE;
  char *dir = bagel_rendezvous_dir(error);
  if (!dir) return FALSE;
  int lock_fd = take_lock(dir, lost_race, error);
  if (lock_fd < 0) {
    g_free(dir);
    return FALSE;
  }
  char *sock = bagel_rendezvous_path(dir, BAGEL_SOCKET_NAME);
  char *pidfile = bagel_rendezvous_path(dir, BAGEL_PID_NAME);
  unlink(sock);  /* we hold the lock: a socket left here is a dead engine's */

  GSocketService *service = g_threaded_socket_service_new(32);
  GSocketAddress *addr = g_unix_socket_address_new(sock);
  mode_t old_mask = umask(077);
  gboolean ok = g_socket_listener_add_address(G_SOCKET_LISTENER(service), addr,
                                              G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                                              NULL, NULL, error);
  umask(old_mask);
  g_object_unref(addr);
  if (!ok) {
    g_prefix_error(error, "cannot listen on %s: ", sock);
    g_object_unref(service);
    close(lock_fd);
    g_free(sock);
    g_free(pidfile);
    g_free(dir);
    return FALSE;
  }
  char *pid_text = g_strdup_printf("%d\n", (int)getpid());
  g_file_set_contents_full(pidfile, pid_text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, NULL);
  g_free(pid_text);

  Server *s = g_new0(Server, 1);
  s->cfg = cfg;
  s->last_activity = g_get_monotonic_time();
  g_mutex_init(&s->lock);
  g_cond_init(&s->cond);
  g_queue_init(&s->queue);
  s->loop = g_main_loop_new(NULL, FALSE);
  GThread *worker = g_thread_new("bagel-worker", worker_main, s);
  g_signal_connect(service, "run", G_CALLBACK(on_connection), s);
  g_socket_service_start(service);
  guint tick = g_timeout_add(200, on_tick, s);
  guint sigs[] = {g_unix_signal_add(SIGTERM, on_signal, s),
                  g_unix_signal_add(SIGINT, on_signal, s),
                  g_unix_signal_add(SIGHUP, on_signal, s)};
  slog("listening on %s (idle timeout %d s, model %s)", sock, cfg->idle_timeout_s,
       cfg->model_dir ? cfg->model_dir : "from the default location or the HF cache");

  g_main_loop_run(s->loop);

  /* Stop taking connections, then let the worker finish (cancelling what runs). */
  g_socket_service_stop(service);
  g_socket_listener_close(G_SOCKET_LISTENER(service));
  unlink(sock);
  unlink(pidfile);
  g_mutex_lock(&s->lock);
  s->stopping = TRUE;
  if (s->running) g_atomic_int_set(&s->running->cancelled, 1);
  g_cond_broadcast(&s->cond);
  g_mutex_unlock(&s->lock);
  g_thread_join(worker);
  shutdown_clients(s);

  g_source_remove(tick);
  for (unsigned i = 0; i < G_N_ELEMENTS(sigs); i++) g_source_remove(sigs[i]);
  g_object_unref(service);
  g_main_loop_unref(s->loop);
  g_free(s->backend);
  close(lock_fd);
  g_free(sock);
  g_free(pidfile);
  g_free(dir);
  slog("stopped: %d jobs done, %d cancelled, model loaded %d times", s->done, s->cancelled,
       s->loads);
  /* A connection thread that has not finished yet still uses the Server: leave it to
   * the process exit then. */
  g_mutex_lock(&s->lock);
  int left = s->n_clients;
  g_mutex_unlock(&s->lock);
  if (left == 0) {
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
  }
  return TRUE;
}
