/* tests/server/test_server_setup.c — bagel-engine's surroundings: the private socket
 * directory and peer credentials, no TCP, protocol violations, the model directory
 * lookup with its download hint, the config file.  Registered by test_server.c. */
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

void add_setup_tests(void) {
  ADD_FX_TEST("/server/socket-dir", test_socket_dir);
  ADD_FX_TEST("/server/no-tcp", test_no_tcp);
  ADD_FX_TEST("/server/protocol-violations", test_protocol_violations);
  ADD_FX_TEST("/server/model-missing", test_model_missing);
  ADD_FX_TEST("/server/config-file", test_config_file);
  g_test_add_func("/server/peer-credentials", test_peer_credentials);
  g_test_add_func("/model-dir/lookup", test_model_lookup);
}
