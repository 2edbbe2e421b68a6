/* engine/server/rendezvous.h — where the plug-in and bagel-engine meet: a private
 * per-user directory holding the engine's Unix socket, its lock, pid and log files.
 *
 * The directory is $XDG_RUNTIME_DIR/gimp-bagel when XDG_RUNTIME_DIR names a directory,
 * else <user cache dir>/gimp-bagel/run.  It is created with mode 0700; an existing one
 * that is not a real directory (a symlink), not owned by the user, or open to group or
 * others is refused, never repaired: something else made it.  Both sides also check the
 * peer's credentials (SO_PEERCRED) on every connection.  Nothing listens on TCP.
 */
#ifndef BAGEL_RENDEZVOUS_H
#define BAGEL_RENDEZVOUS_H

#include <gio/gio.h>

G_BEGIN_DECLS

#define BAGEL_SOCKET_NAME "engine.sock"
#define BAGEL_LOCK_NAME "engine.lock"
#define BAGEL_PID_NAME "engine.pid"
#define BAGEL_LOG_NAME "engine.log"

/* The directory (created if absent), checked as above.  g_free the result. */
char *bagel_rendezvous_dir(GError **error);

/* Check an existing directory: a directory, owned by the user, mode without group or
 * other bits. */
gboolean bagel_rendezvous_check_dir(const char *dir, GError **error);

/* dir/name, checked to fit a socket address when it is the socket. */
char *bagel_rendezvous_path(const char *dir, const char *name);

/* The peer of a connected Unix socket runs as this user. */
gboolean bagel_rendezvous_check_peer(GSocketConnection *conn, GError **error);

G_END_DECLS
#endif
