/* engine/pipeline/progress.h — progress reporting and cancellation inside a call.
 * Every stage reports (stage, step, total, elapsed); the user's callback may return FALSE
 * to cancel, which surfaces as BAGEL_ERROR_CANCELLED at the next check. */
#ifndef BAGEL_PROGRESS_H
#define BAGEL_PROGRESS_H

#include "bagel.h"

typedef struct {
  BagelProgressFunc fn;
  gpointer user;
  gint64 t0;          /* g_get_monotonic_time() at the start of the call */
  gboolean cancelled;
} Progress;

void progress_init(Progress *p, BagelProgressFunc fn, gpointer user);
double progress_elapsed(const Progress *p);
/* Report; returns FALSE (and sets error) when the user cancelled. */
gboolean progress_report(Progress *p, const char *stage, int step, int total, GError **error);

#endif
