/* engine/process.c — process-level set-up shared by bagel and bagel-engine (built in
 * libbagel and, like error.c, in bagel-proto, which the test double of the engine links). */
#include <glib.h>
#include <unistd.h>

#include "bagel.h"

void bagel_prefer_passive_threads(char **argv) {
  if (g_getenv("OMP_WAIT_POLICY") || !argv || !argv[0]) return;
  g_setenv("OMP_WAIT_POLICY", "passive", TRUE);
  /* a short spin before sleeping (libgomp counts iterations; 5000 is a few µs) bridges
   * the gap between two back-to-back ops of a decode step without taking a shared core
   * for long: +6% decode on the medium model (docs/performance.md) */
  if (!g_getenv("GOMP_SPINCOUNT")) g_setenv("GOMP_SPINCOUNT", "5000", TRUE);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc): go on with libgomp's default policy */
}
