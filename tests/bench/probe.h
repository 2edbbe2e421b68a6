/* tests/bench/probe.h — this machine's limits, measured in the same session as the
 * figures they are compared with (docs/performance.md, "The probe").
 *
 *   read bandwidth   every thread streams its share of a buffer much larger than the
 *                    last-level cache with 512-bit loads (what a GEMV over mmapped
 *                    weights can hope for);
 *   fp32 peak        every thread runs independent chains of VFMADD231PS zmm (2·16 FLOP);
 *   bf16 peak        VDPBF16PS zmm (16 lanes × 2 products, 64 FLOP), when the CPU has
 *                    AVX512_BF16;
 *   AMX bf16 peak    TDPBF16PS on 16×32 · 32×16 tiles (16,384 FLOP), when the CPU lists
 *                    AMX and the kernel grants the tile state (arch_prctl).
 *
 * Each figure is measured `reps` times; the median is the limit a figure is divided by,
 * the best is reported beside it. */
#ifndef BAGEL_BENCH_PROBE_H
#define BAGEL_BENCH_PROBE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  double runs[16];
  int n;
  double median, best;
} ProbeFigure;

typedef struct {
  int threads;
  ProbeFigure mem_gb_s;          /* streaming read, GB/s (1e9 bytes) */
  ProbeFigure fp32_gflops;       /* FMA, GFLOP/s */
  ProbeFigure bf16_gflops;       /* VDPBF16PS, GFLOP/s; n = 0 when absent */
  ProbeFigure amx_bf16_gflops;   /* TDPBF16PS, GFLOP/s; n = 0 when unusable */
  bool has_avx512f, has_avx512_bf16, has_amx;
  char amx_note[128];            /* why AMX is (not) used */
  char cpu[128];                 /* model name from /proc/cpuinfo */
  double load_before[3], load_after[3];   /* /proc/loadavg */
  double steal_share;            /* VM steal time / total CPU time during the probe */
} ProbeResult;

/* Measure everything with `threads` threads (<= 0: OpenMP's default), each figure
 * `reps` times (1..16), the bandwidth over a buffer of `mem_mib` MiB (0: 1024). */
void probe_run(ProbeResult *r, int threads, int reps, int mem_mib);

/* Stream-read `count` memory ranges (the model's own weights, say) with `threads`
 * threads, `reps` times after a warm-up: GB/s per pass over all of them, in *out.  The
 * checkpoint's page-cache pages need not stream like a fresh buffer: on this project's
 * VM they read ~25% slower (docs/performance.md), so a GEMV over them is compared with
 * both. */
void probe_read_ranges(ProbeFigure *out, const void *const *ptrs, const size_t *lens,
                       int count, int threads, int reps);

/* Only the parts that need no timing: CPU name, features, AMX permission. */
void probe_features(ProbeResult *r);

/* Read /proc/loadavg into l[3] (zeros when unreadable). */
void probe_loadavg(double l[3]);

/* Ask the kernel for the AMX tile state (once per process); false with a reason. */
bool probe_amx_enable(char *why, int why_size);

#endif
