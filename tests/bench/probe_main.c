/* tests/bench/probe_main.c — `bench_probe [THREADS] [REPS]`: print this machine's
 * limits (probe.h) as the bench measures them.  Not a test. */
#include <stdio.h>
#include <stdlib.h>

#include "probe.h"

static void show(const char *name, const char *unit, const ProbeFigure *f) {
  if (!f->n) {
    printf("  %-22s (not available)\n", name);
    return;
  }
  printf("  %-22s median %8.1f %s, best %8.1f   runs:", name, f->median, unit, f->best);
  for (int i = 0; i < f->n; i++) printf(" %.1f", f->runs[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 0, reps = argc > 2 ? atoi(argv[2]) : 5;
  ProbeResult r;
  probe_run(&r, threads, reps, 0);
  printf("%s, %d threads (AMX: %s)\n", r.cpu, r.threads, r.amx_note);
  show("read bandwidth", "GB/s", &r.mem_gb_s);
  show("fp32 FMA", "GFLOP/s", &r.fp32_gflops);
  show("bf16 VDPBF16PS", "GFLOP/s", &r.bf16_gflops);
  show("bf16 AMX TDPBF16PS", "GFLOP/s", &r.amx_bf16_gflops);
  printf("  load average %.2f -> %.2f, VM steal %.1f%%\n", r.load_before[0], r.load_after[0],
         100 * r.steal_share);
  return 0;
}
