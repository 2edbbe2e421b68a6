/* engine/pipeline/progress.c — progress and cancellation (progress.h). */
#include "progress.h"

void progress_init(Progress *p, BagelProgressFunc fn, gpointer user) {
  p->fn = fn;
  p->user = user;
  p->t0 = g_get_monotonic_time();
  p->cancelled = FALSE;
}

double progress_elapsed(const Progress *p) {
  return (double)(g_get_monotonic_time() - p->t0) / 1e6;
}

gboolean progress_report(Progress *p, const char *stage, int step, int total, GError **error) {
  if (!p) return TRUE;
  if (!p->cancelled && p->fn && !p->fn(stage, step, total, progress_elapsed(p), p->user))
    p->cancelled = TRUE;
  if (p->cancelled) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_CANCELLED, "cancelled during %s", stage);
    return FALSE;
  }
  return TRUE;
}
