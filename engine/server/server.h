/* engine/server/server.h — the bagel-engine server core: a Unix socket in the private
 * rendezvous directory, one thread per connection reading frames, one worker thread that
 * owns the BagelEngine and runs jobs one at a time in arrival order.
 *
 * - The model is loaded on the first job and kept; a job whose client disconnects or
 *   sends cancel is cancelled (the engine's progress callback returns FALSE) and the
 *   model stays loaded.
 * - After idle_timeout_s seconds with no job queued or running, the server frees the
 *   engine (and with it the GPU) and returns.
 * - Only connections from the same user are served (SO_PEERCRED).
 */
#ifndef BAGEL_SERVER_H
#define BAGEL_SERVER_H

#include "bagel.h"

G_BEGIN_DECLS

typedef struct {
  char *model_dir;           /* configured (command line, BAGEL_MODEL, config file); NULL:
                                look for the default download location and the HF cache */
  char *model_dir_origin;    /* where model_dir came from, for messages */
  BagelEngineOptions engine;
  int idle_timeout_s;        /* <= 0: never exit when idle */
} BagelServerConfig;

/* Serve until idle or SIGTERM/SIGINT.  FALSE with an error when the socket cannot be
 * set up; *lost_race is TRUE (and the error unset) when another engine holds the lock. */
gboolean bagel_server_run(const BagelServerConfig *config, gboolean *lost_race,
                          GError **error);

G_END_DECLS
#endif
