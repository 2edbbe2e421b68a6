/* engine/server/client.c — find or start bagel-engine and talk to it (see client.h). */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bagel-config.h"
#include "rendezvous.h"

#define LOG_MAX_BYTES (4 << 20)

struct BagelClient {
  GSocketConnection *conn;
  GInputStream *in;
  GOutputStream *out;
  gint64 engine_pid;
  char *software;
  char *log_path;
  gint32 next_id;
};

void bagel_client_free(BagelClient *c) {
  if (!c) return;
  if (c->conn) {
    g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
    g_object_unref(c->conn);
  }
  g_free(c->software);
  g_free(c->log_path);
  g_free(c);
}

gint64 bagel_client_engine_pid(const BagelClient *c) { return c->engine_pid; }
const char *bagel_client_engine_software(const BagelClient *c) { return c->software; }

char *bagel_client_log_path(GError **error) {
  char *dir = bagel_rendezvous_dir(error);
  if (!dir) return NULL;
  char *p = bagel_rendezvous_path(dir, BAGEL_LOG_NAME);
  g_free(dir);
  return p;
}

/* The last few lines of the engine log, to explain a failed start. */
static char *log_tail(const char *path) {
  char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &text, &len, NULL)) return g_strdup("(no log)");
  gsize start = len > 1500 ? len - 1500 : 0;
  char *tail = g_strdup(g_strstrip(text + start));
  g_free(text);
  return tail;
}

/* NULL with *retry TRUE: nothing listens (no socket, or a stale one). */
static GSocketConnection *try_connect(const char *path, gboolean *retry,
                                      GCancellable *cancellable, GError **error) {
  *retry = FALSE;
  GSocketClient *sc = g_socket_client_new();
  GSocketAddress *addr = g_unix_socket_address_new(path);
  GError *e = NULL;
  GSocketConnection *conn =
      g_socket_client_connect(sc, G_SOCKET_CONNECTABLE(addr), cancellable, &e);
  g_object_unref(addr);
  g_object_unref(sc);
  if (conn) return conn;
  if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
      g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    *retry = TRUE;
  else
    g_set_error(error, BAGEL_ERROR,
                g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? BAGEL_ERROR_CANCELLED
                                                                     : BAGEL_ERROR_IO,
                "cannot connect to bagel-engine at %s: %s", path, e->message);
  g_error_free(e);
  return NULL;
}

/* Exchange hellos.  *retry TRUE: the engine closed at once (it was exiting). */
static gboolean handshake(BagelClient *c, gboolean *retry, GCancellable *cancellable,
                          GError **error) {
  *retry = FALSE;
  if (!bagel_rendezvous_check_peer(c->conn, error)) return FALSE;
  BagelMsg *hello = bagel_msg_new(BAGEL_MSG_HELLO);
  hello->version = BAGEL_PROTO_VERSION;
  hello->software = g_strdup("gimp-bagel " BAGEL_VERSION);
  hello->pid = getpid();
  gboolean ok = bagel_proto_write(c->out, hello, cancellable, NULL);
  bagel_msg_free(hello);
  GError *e = NULL;
  BagelMsg *reply = ok ? bagel_proto_read(c->in, cancellable, &e) : NULL;
  if (!reply) {
    if (e && e->code == BAGEL_ERROR_CANCELLED) {
      g_propagate_error(error, e);
      return FALSE;
    }
    g_clear_error(&e);
    *retry = TRUE;
    return FALSE;
  }
  if (reply->type == BAGEL_MSG_ERROR) {
    bagel_msg_propagate_error(reply, error);
    ok = FALSE;
  } else if (reply->type != BAGEL_MSG_HELLO || reply->version != BAGEL_PROTO_VERSION) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "bagel-engine answered the hello with a %s (protocol version %d, this "
                "plug-in speaks %d): reinstall gimp-bagel so both match",
                bagel_msg_type_name(reply->type), reply->version, BAGEL_PROTO_VERSION);
    ok = FALSE;
  } else {
    c->engine_pid = reply->pid;
    c->software = g_strdup(reply->software);
  }
  bagel_msg_free(reply);
  return ok;
}

static void child_setup(gpointer data) {
  setsid();  /* out of the plug-in's process group: GIMP's cancel kills that */
}

static gboolean spawn_engine(const char *engine_path, const char *const *extra_args,
                             const char *log_path, GPid *pid, GError **error) {
  int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot open %s: %s", log_path,
                g_strerror(errno));
    return FALSE;
  }
  struct stat st;
  if (fstat(log, &st) == 0 && st.st_size > LOG_MAX_BYTES && ftruncate(log, 0) != 0) {
    /* a log we cannot trim only grows */
  }
  int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, (gpointer)engine_path);
  for (const char *const *a = extra_args; a && *a; a++) g_ptr_array_add(argv, (gpointer)*a);
  g_ptr_array_add(argv, NULL);
  GError *e = NULL;
  gboolean ok = g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                                       G_SPAWN_DO_NOT_REAP_CHILD, child_setup, NULL, pid,
                                       null_in, log, log, &e);
  g_ptr_array_free(argv, TRUE);
  close(log);
  if (null_in >= 0) close(null_in);
  if (!ok) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot start %s: %s", engine_path,
                e->message);
    g_error_free(e);
  }
  return ok;
}

static BagelClient *client_new(GSocketConnection *conn, const char *log_path) {
  BagelClient *c = g_new0(BagelClient, 1);
  c->conn = conn;
  c->in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  c->out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  c->log_path = g_strdup(log_path);
  c->next_id = 1;
  return c;
}

BagelClient *bagel_client_connect(const char *engine_path, const char *const *extra_args,
                                  int start_timeout_ms, GCancellable *cancellable,
                                  GError **error) {
  char *dir = bagel_rendezvous_dir(error);
  if (!dir) return NULL;
  char *sock = bagel_rendezvous_path(dir, BAGEL_SOCKET_NAME);
  char *log = bagel_rendezvous_path(dir, BAGEL_LOG_NAME);
  g_free(dir);
  if (start_timeout_ms <= 0) start_timeout_ms = 30000;
  gint64 deadline = 0;
  GPid pid = 0;
  gboolean exited = FALSE;
  int spawns = 0;
  BagelClient *c = NULL;
  for (;;) {
    gboolean retry = FALSE;
    GSocketConnection *conn = try_connect(sock, &retry, cancellable, error);
    if (conn) {
      c = client_new(conn, log);
      if (handshake(c, &retry, cancellable, error)) break;
      bagel_client_free(c);
      c = NULL;
    }
    if (!retry) break;
    if (!engine_path) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "no bagel-engine is listening on %s",
                  sock);
      break;
    }
    /* Start an engine; again when ours stepped aside for one that was already
     * running (exit status 0) and that one has gone since (it was exiting idle). */
    if (!pid || (exited && spawns < 5)) {
      if (!spawn_engine(engine_path, extra_args, log, &pid, error)) break;
      if (!deadline) deadline = g_get_monotonic_time() + (gint64)start_timeout_ms * 1000;
      spawns++;
      exited = FALSE;
    }
    int status = 0;
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
      exited = TRUE;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        char *tail = log_tail(log);
        g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND,
                    "bagel-engine (%s) stopped at start (%s %d); its log %s ends with:\n%s",
                    engine_path, WIFEXITED(status) ? "exit status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log, tail);
        g_free(tail);
        break;
      }
    }
    if (g_get_monotonic_time() > deadline) {
      char *tail = log_tail(log);
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND,
                  "bagel-engine (%s) did not open %s within %d s; its log %s ends with:\n%s",
                  engine_path, sock, start_timeout_ms / 1000, log, tail);
      g_free(tail);
      break;
    }
    if (g_cancellable_set_error_if_cancelled(cancellable, error)) break;
    g_usleep(20 * 1000);
  }
  /* Our child, when we started one, is detached from here on; reap it if it already
   * exited so it does not linger as a zombie while the plug-in runs. */
  if (pid && !exited) waitpid(pid, NULL, WNOHANG);
  g_free(sock);
  g_free(log);
  return c;
}

gboolean bagel_client_send_cancel(BagelClient *c, gint32 id, GError **error) {
  BagelMsg *m = bagel_msg_new(BAGEL_MSG_CANCEL);
  m->id = id;
  gboolean ok = bagel_proto_write(c->out, m, NULL, error);
  bagel_msg_free(m);
  return ok;
}

static void engine_gone(BagelClient *c, const GError *cause, GError **error) {
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
              "bagel-engine stopped during the job (it crashed or was killed%s%s); the "
              "next action starts a new engine. Its log: %s",
              cause ? ": " : "", cause ? cause->message : "", c->log_path);
}

BagelMsg *bagel_client_run(BagelClient *c, BagelMsg *job, BagelClientProgressFunc progress,
                           gpointer user_data, GCancellable *cancellable, GError **error) {
  job->id = c->next_id++;
  GError *e = NULL;
  if (!bagel_proto_write(c->out, job, cancellable, &e)) {
    if (e->code == BAGEL_ERROR_CANCELLED) g_propagate_error(error, e);
    else {
      engine_gone(c, e, error);
      g_error_free(e);
    }
    return NULL;
  }
  for (;;) {
    BagelMsg *m = bagel_proto_read(c->in, cancellable, &e);
    if (!m) {
      if (e && e->code == BAGEL_ERROR_CANCELLED) {
        bagel_client_send_cancel(c, job->id, NULL);
        g_clear_error(&e);
        g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_CANCELLED, "cancelled");
      } else if (e && e->code == BAGEL_ERROR_FORMAT) {
        g_propagate_error(error, e);
      } else {
        engine_gone(c, e, error);
        g_clear_error(&e);
      }
      return NULL;
    }
    gboolean ours = m->id == job->id;
    switch (m->type) {
    case BAGEL_MSG_ACCEPTED:
    case BAGEL_MSG_PROGRESS:
      if (ours && progress) progress(m, user_data);
      break;
    case BAGEL_MSG_RESULT:
      if (ours) return m;
      break;
    case BAGEL_MSG_ERROR:
      if (ours || m->id < 0) {
        bagel_msg_propagate_error(m, error);
        bagel_msg_free(m);
        return NULL;
      }
      break;
    default:
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                  "bagel-engine sent an unexpected %s message during a job",
                  bagel_msg_type_name(m->type));
      bagel_msg_free(m);
      return NULL;
    }
    bagel_msg_free(m);
  }
}

BagelMsg *bagel_client_status(BagelClient *c, GError **error) {
  BagelMsg *q = bagel_msg_new(BAGEL_MSG_STATUS);
  gboolean ok = bagel_proto_write(c->out, q, NULL, error);
  bagel_msg_free(q);
  if (!ok) return NULL;
  GError *e = NULL;
  BagelMsg *m = bagel_proto_read(c->in, NULL, &e);
  if (!m) {
    engine_gone(c, e, error);
    g_clear_error(&e);
    return NULL;
  }
  if (m->type == BAGEL_MSG_ERROR) {
    bagel_msg_propagate_error(m, error);
    bagel_msg_free(m);
    return NULL;
  }
  if (m->type != BAGEL_MSG_STATUS || !m->is_reply) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "bagel-engine answered a status request with a %s message",
                bagel_msg_type_name(m->type));
    bagel_msg_free(m);
    return NULL;
  }
  return m;
}
