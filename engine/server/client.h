/* engine/server/client.h — the client side of bagel-engine: find or start the engine,
 * shake hands, run one job with progress, read the status.  Used by the GIMP plug-in and
 * the tests; blocking calls, one thread.
 *
 * Starting: when nothing answers on the socket, the engine binary is started detached
 * (its own session, so GIMP cancelling the plug-in does not kill it), stdout and stderr
 * appended to engine.log in the socket directory, and the client waits for the socket.
 * A second engine started by a concurrent client exits at once (it cannot take the
 * lock), so racing clients end up on the same engine.
 */
#ifndef BAGEL_CLIENT_H
#define BAGEL_CLIENT_H

#include <gio/gio.h>

#include "protocol.h"

G_BEGIN_DECLS

typedef struct BagelClient BagelClient;

/* Connect to the user's engine; when none listens and engine_path is not NULL, start
 * engine_path (with extra_args) and wait up to start_timeout_ms (<= 0: 30 s). */
BagelClient *bagel_client_connect(const char *engine_path, const char *const *extra_args,
                                  int start_timeout_ms, GCancellable *cancellable,
                                  GError **error);
void bagel_client_free(BagelClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BagelClient, bagel_client_free)

/* The engine's pid and software string, from its hello. */
gint64 bagel_client_engine_pid(const BagelClient *client);
const char *bagel_client_engine_software(const BagelClient *client);

/* Called for each accepted and progress message of the job. */
typedef void (*BagelClientProgressFunc)(const BagelMsg *msg, gpointer user_data);

/* Send `job` (its id is set here) and wait for its result.  Returns the result message
 * or NULL with an error: the engine's (its code and message), BAGEL_ERROR_CANCELLED when
 * `cancellable` fired (the engine is told to cancel), or BAGEL_ERROR_FAILED when the
 * engine went away mid-job (crashed or killed; the next connect starts a new one). */
BagelMsg *bagel_client_run(BagelClient *client, BagelMsg *job,
                           BagelClientProgressFunc progress, gpointer user_data,
                           GCancellable *cancellable, GError **error);

/* Ask for a cancel of job `id` without waiting. */
gboolean bagel_client_send_cancel(BagelClient *client, gint32 id, GError **error);

/* The engine's status (model loaded, counters). */
BagelMsg *bagel_client_status(BagelClient *client, GError **error);

/* The socket directory's engine.log, for messages about a failed start. */
char *bagel_client_log_path(GError **error);

G_END_DECLS
#endif
