/* engine/server/rendezvous.c — the private socket directory and peer checks (see
 * rendezvous.h).  Shared by bagel-engine and its clients (the plug-in, the tests). */
#include "rendezvous.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bagel.h"

gboolean bagel_rendezvous_check_dir(const char *dir, GError **error) {
  struct stat st;
  if (lstat(dir, &st) != 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "socket directory %s: %s", dir,
                g_strerror(errno));
    return FALSE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "socket directory %s is not a directory (a symlink or a file); "
                "remove it and retry", dir);
    return FALSE;
  }
  if (st.st_uid != getuid()) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "socket directory %s belongs to uid %u, not to you (uid %u); refusing to "
                "use it", dir, (unsigned)st.st_uid, (unsigned)getuid());
    return FALSE;
  }
  if (st.st_mode & 077) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "socket directory %s has mode %04o; it must be private (0700): "
                "chmod 700 it or remove it", dir, (unsigned)(st.st_mode & 07777));
    return FALSE;
  }
  return TRUE;
}

char *bagel_rendezvous_dir(GError **error) {
  const char *runtime = g_getenv("XDG_RUNTIME_DIR");
  char *dir;
  if (runtime && *runtime && g_path_is_absolute(runtime) &&
      g_file_test(runtime, G_FILE_TEST_IS_DIR)) {
    dir = g_build_filename(runtime, "gimp-bagel", NULL);
  } else {
    char *parent = g_build_filename(g_get_user_cache_dir(), "gimp-bagel", NULL);
    if (g_mkdir_with_parents(parent, 0700) != 0) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot create %s: %s", parent,
                  g_strerror(errno));
      g_free(parent);
      return NULL;
    }
    dir = g_build_filename(parent, "run", NULL);
    g_free(parent);
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot create socket directory %s: %s",
                dir, g_strerror(errno));
    g_free(dir);
    return NULL;
  }
  if (!bagel_rendezvous_check_dir(dir, error)) {
    g_free(dir);
    return NULL;
  }
  struct sockaddr_un sun;
  if (strlen(dir) + 1 + strlen(BAGEL_SOCKET_NAME) >= sizeof sun.sun_path) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "socket directory %s is too long for a Unix socket path (%zu bytes at most)",
                dir, sizeof sun.sun_path - 2 - strlen(BAGEL_SOCKET_NAME));
    g_free(dir);
    return NULL;
  }
  return dir;
}

char *bagel_rendezvous_path(const char *dir, const char *name) {
  return g_build_filename(dir, name, NULL);
}

gboolean bagel_rendezvous_check_peer(GSocketConnection *conn, GError **error) {
  GError *e = NULL;
  GCredentials *cred = g_socket_get_credentials(g_socket_connection_get_socket(conn), &e);
  if (!cred) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot read the peer's credentials: %s",
                e->message);
    g_error_free(e);
    return FALSE;
  }
  uid_t uid = g_credentials_get_unix_user(cred, &e);
  g_object_unref(cred);
  if (e) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot read the peer's uid: %s",
                e->message);
    g_error_free(e);
    return FALSE;
  }
  if (uid != getuid()) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO,
                "refusing a connection from uid %u (this engine serves uid %u only)",
                (unsigned)uid, (unsigned)getuid());
    return FALSE;
  }
  return TRUE;
}
