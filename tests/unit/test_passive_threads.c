/* tests/unit/test_passive_threads.c — bagel_prefer_passive_threads (engine/engine.c):
 * without a policy in the environment the program is executed again with
 * OMP_WAIT_POLICY=passive, a short GOMP_SPINCOUNT (unless the caller set one) and the
 * same arguments; a policy the caller chose is kept and nothing is re-executed.
 *
 * The program drives itself: with no argument it clears the variable and starts
 * `self run A B`; each start of `run` counts itself in TEST_EXECS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bagel.h"

static int fail(const char *what) {
  fprintf(stderr, "FAIL: %s\n", what);
  return 1;
}

int main(int argc, char **argv) {
  if (argc == 1) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    setenv("TEST_EXECS", "0", 1);
    char *args[] = {argv[0], (char *)"run", (char *)"A", (char *)"B c", NULL};
    execv("/proc/self/exe", args);
    return fail("cannot start the test's own first stage");
  }
  if (!strcmp(argv[1], "run")) {
    char n[16];
    const int execs = atoi(getenv("TEST_EXECS") ? getenv("TEST_EXECS") : "0") + 1;
    snprintf(n, sizeof n, "%d", execs);
    setenv("TEST_EXECS", n, 1);
    if (execs > 2) return fail("re-executed more than once");
    bagel_prefer_passive_threads(argv);
    /* only the re-executed process gets here */
    const char *p = getenv("OMP_WAIT_POLICY");
    if (execs != 2) return fail("no re-execution without a policy");
    if (!p || strcmp(p, "passive")) return fail("OMP_WAIT_POLICY is not passive after the re-execution");
    const char *spin = getenv("GOMP_SPINCOUNT");
    if (!spin || atoi(spin) <= 0 || atoi(spin) > 100000)
      return fail("GOMP_SPINCOUNT is not a short spin after the re-execution");
    if (argc != 4 || strcmp(argv[2], "A") || strcmp(argv[3], "B c")) return fail("arguments changed");
    /* a chosen policy is kept, without re-execution */
    setenv("OMP_WAIT_POLICY", "active", 1);
    bagel_prefer_passive_threads(argv);
    if (strcmp(getenv("OMP_WAIT_POLICY"), "active")) return fail("the caller's policy was replaced");
    printf("ok: re-executed once with OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=%s, arguments kept; a chosen policy kept\n", spin);
    return 0;
  }
  return fail("unexpected arguments");
}
