/* plugin/engine-link.h — run one job on bagel-engine from inside GIMP: find or start the
 * engine (installed next to the plug-in; BAGEL_ENGINE overrides the path), show its
 * progress in GIMP's progress bar with the stage and step, and turn a vanished engine or
 * a refusal into a readable error.  When GIMP cancels the plug-in it kills this process:
 * the engine sees the connection close and cancels the job.
 */
#ifndef BAGEL_PLUGIN_ENGINE_LINK_H
#define BAGEL_PLUGIN_ENGINE_LINK_H

#include "protocol.h"

G_BEGIN_DECLS

/* The engine binary the plug-in starts. */
char *bagel_engine_path(void);

/* Run `job`; `what` names it in the progress bar ("Editing"…).  On success the result;
 * *engine (g_free) is the engine's software string. */
BagelMsg *bagel_engine_run(BagelMsg *job, const char *what, char **engine, GError **error);

G_END_DECLS
#endif
