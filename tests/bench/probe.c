/* tests/bench/probe.c — the machine's limits (probe.h): streaming read bandwidth, fp32
 * FMA, bf16 dot-product and AMX peaks, measured with the bench's own threads.
 *
 * The loops are written so that the measured instruction is the only work: independent
 * accumulator chains (more than latency × throughput), operands in registers, results
 * stored once so that nothing is optimised away.  Each ISA variant is compiled with a
 * target attribute, so this file builds for any x86-64 (and, without them, anywhere). */
#include "probe.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define PROBE_X86 1
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void figure_finish(ProbeFigure *f) {
  double s[16];
  memcpy(s, f->runs, sizeof(double) * (size_t)f->n);
  qsort(s, (size_t)f->n, sizeof *s, cmp_double);
  f->median = f->n % 2 ? s[f->n / 2] : 0.5 * (s[f->n / 2 - 1] + s[f->n / 2]);
  f->best = s[f->n - 1];
}

void probe_loadavg(double l[3]) {
  l[0] = l[1] = l[2] = 0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (!f) return;
  if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3) l[0] = l[1] = l[2] = 0;
  fclose(f);
}

/* total and steal jiffies from the "cpu" line of /proc/stat */
static void cpu_jiffies(double *total, double *steal) {
  *total = *steal = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return;
  unsigned long long v[10] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
             &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
    for (int i = 0; i < 8; i++) *total += (double)v[i];
    *steal = (double)v[7];
  }
  fclose(f);
}

/* ---- features ----------------------------------------------------------------------- */

#ifdef PROBE_X86
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

bool probe_amx_enable(char *why, int why_size) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) {
    snprintf(why, (size_t)why_size, "the CPU does not list AMX-TILE/AMX-BF16");
    return false;
  }
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
    snprintf(why, (size_t)why_size, "the kernel refused the AMX tile state (arch_prctl)");
    return false;
  }
  snprintf(why, (size_t)why_size, "AMX-BF16 listed and the tile state granted");
  return true;
}
#else
bool probe_amx_enable(char *why, int why_size) {
  snprintf(why, (size_t)why_size, "not an x86-64 build");
  return false;
}
#endif

void probe_features(ProbeResult *r) {
  r->cpu[0] = '\0';
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (!strncmp(line, "model name", 10)) {
        const char *p = strchr(line, ':');
        if (p) {
          p++;
          while (*p == ' ') p++;
          snprintf(r->cpu, sizeof r->cpu, "%s", p);
          r->cpu[strcspn(r->cpu, "\n")] = '\0';
        }
        break;
      }
    }
    fclose(f);
  }
  if (!r->cpu[0]) snprintf(r->cpu, sizeof r->cpu, "unknown CPU");
#ifdef PROBE_X86
  __builtin_cpu_init();
  r->has_avx512f = __builtin_cpu_supports("avx512f");
  unsigned a, b, c, d;
  r->has_avx512_bf16 = r->has_avx512f && __get_cpuid_count(7, 1, &a, &b, &c, &d) &&
                       (a & (1u << 5));
  r->has_amx = probe_amx_enable(r->amx_note, sizeof r->amx_note);
#else
  r->has_avx512f = r->has_avx512_bf16 = r->has_amx = false;
  snprintf(r->amx_note, sizeof r->amx_note, "not an x86-64 build");
#endif
}

/* ---- read bandwidth ----------------------------------------------------------------- */

#ifdef PROBE_X86
__attribute__((target("avx512f"))) static uint64_t read_avx512(const char *p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return (uint64_t)_mm512_reduce_add_epi64(a0);
}
#endif

static uint64_t read_plain(const char *p, size_t n) {
  const uint64_t *q = (const uint64_t *)p;
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 4 <= n / 8; i += 4) {
    a0 ^= q[i];
    a1 ^= q[i + 1];
    a2 ^= q[i + 2];
    a3 ^= q[i + 3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

static void probe_bandwidth(ProbeResult *r, int reps, size_t bytes) {
  char *buf = aligned_alloc(4096, bytes);
  r->mem_gb_s.n = 0;
  if (!buf) return;
  const int nt = r->threads;
  const size_t chunk = bytes / (size_t)nt / 4096 * 4096;
#pragma omp parallel num_threads(nt)
  {
    /* first touch by the thread that reads it (probe_read_ranges gives thread t the
     * same t-th share) */
#ifdef _OPENMP
    int t = omp_get_thread_num();
#else
    int t = 0;
#endif
    memset(buf + (size_t)t * chunk, 1 + t, chunk);
  }
  const void *range = buf;
  const size_t len = chunk * (size_t)nt;
  probe_read_ranges(&r->mem_gb_s, &range, &len, 1, nt, reps);
  free(buf);
}

void probe_read_ranges(ProbeFigure *out, const void *const *ptrs, const size_t *lens,
                       int count, int threads, int reps) {
  out->n = 0;
  if (count <= 0) return;
  if (reps > 16) reps = 16;
#ifdef _OPENMP
  const int nt = threads > 0 ? threads : omp_get_max_threads();
#else
  const int nt = 1;
  (void)threads;
#endif
#ifdef PROBE_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
#endif
  volatile uint64_t sink = 0;
  for (int rep = -1; rep < reps; rep++) {   /* rep -1: warm-up */
    double bytes = 0;
    uint64_t x = 0;
    const double t0 = now_s();
    for (int i = 0; i < count; i++) {
      /* 64-byte aligned middle of the range, split in equal 256-byte multiples */
      const uintptr_t a = ((uintptr_t)ptrs[i] + 63) & ~(uintptr_t)63;
      const uintptr_t e = ((uintptr_t)ptrs[i] + lens[i]) & ~(uintptr_t)63;
      if (e <= a + 256 * (uintptr_t)nt) continue;
      const size_t chunk = (size_t)(e - a) / (size_t)nt / 256 * 256;
      bytes += (double)chunk * nt;
#pragma omp parallel num_threads(nt) reduction(^ : x)
      {
#ifdef _OPENMP
        const int t = omp_get_thread_num();
#else
        const int t = 0;
#endif
        const char *p = (const char *)a + (size_t)t * chunk;
#ifdef PROBE_X86
        x ^= avx512 ? read_avx512(p, chunk) : read_plain(p, chunk);
#else
        x ^= read_plain(p, chunk);
#endif
      }
    }
    const double dt = now_s() - t0;
    sink ^= x;
    if (rep >= 0 && dt > 0 && bytes > 0) out->runs[out->n++] = bytes / dt / 1e9;
  }
  (void)sink;
  figure_finish(out);
}

/* ---- compute peaks -------------------------------------------------------------------
 * Each kernel runs `iters` iterations of 16 independent instructions and returns a value
 * that depends on all of them. */

#define PEAK_CHAINS 16

#ifdef PROBE_X86
__attribute__((target("avx512f"))) static float fma_kernel(long iters) {
  __m512 acc[PEAK_CHAINS];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float dpbf16_kernel(long iters) {
  __m512 acc[PEAK_CHAINS];
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3c00);  /* 2^-7 */
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3c00);
  for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

/* AMX: four accumulator tiles (tmm0-3) fed by two A tiles (tmm4-5) and two B tiles
 * (tmm6-7), loaded once; the loop issues 4 TDPBF16PS of 16·16·32·2 FLOP each. */
typedef struct __attribute__((aligned(64))) {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} AmxTileCfg;

__attribute__((target("amx-tile,amx-bf16"))) static float amx_kernel(long iters) {
  AmxTileCfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 8; i++) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  static __thread uint16_t ab[16 * 32] __attribute__((aligned(64)));
  static __thread float c[16 * 16] __attribute__((aligned(64)));
  for (int i = 0; i < 16 * 32; i++) ab[i] = 0x3c00;
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  for (long it = 0; it < iters; it++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  float s = c[0];
  _tile_stored(3, c, 64);
  s += c[255];
  _tile_release();
  return s;
}
#endif

typedef float (*PeakKernel)(long iters);

/* GFLOP/s of `kernel` on every thread at once; flop_per_iter per thread per iteration.
 * The iteration count is calibrated so that one measurement takes ~0.25 s. */
static void probe_peak(ProbeFigure *f, int nt, int reps, PeakKernel kernel,
                       double flop_per_iter) {
  long iters = 1000;
  for (;;) {   /* calibrate on one thread */
    double t0 = now_s();
    volatile float s = kernel(iters);
    (void)s;
    double dt = now_s() - t0;
    if (dt > 0.05 || iters > (1L << 40)) {
      iters = (long)((double)iters * 0.25 / (dt > 1e-9 ? dt : 1e-9)) + 1;
      break;
    }
    iters *= 4;
  }
  f->n = 0;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = now_s();
    float s = 0;
#pragma omp parallel num_threads(nt) reduction(+ : s)
    s += kernel(iters);
    double dt = now_s() - t0;
    volatile float sink = s;
    (void)sink;
    f->runs[f->n++] = flop_per_iter * (double)iters * nt / dt / 1e9;
  }
  figure_finish(f);
}

void probe_run(ProbeResult *r, int threads, int reps, int mem_mib) {
  memset(r, 0, sizeof *r);
  probe_features(r);
#ifdef _OPENMP
  r->threads = threads > 0 ? threads : omp_get_max_threads();
#else
  r->threads = 1;
#endif
  if (reps < 1) reps = 1;
  if (reps > 16) reps = 16;
  probe_loadavg(r->load_before);
  double tot0, st0, tot1, st1;
  cpu_jiffies(&tot0, &st0);
  probe_bandwidth(r, reps, (size_t)(mem_mib > 0 ? mem_mib : 1024) << 20);
#ifdef PROBE_X86
  if (r->has_avx512f) probe_peak(&r->fp32_gflops, r->threads, reps, fma_kernel, PEAK_CHAINS * 32.0);
  if (r->has_avx512_bf16)
    probe_peak(&r->bf16_gflops, r->threads, reps, dpbf16_kernel, PEAK_CHAINS * 64.0);
  if (r->has_amx) probe_peak(&r->amx_bf16_gflops, r->threads, reps, amx_kernel, 4 * 16384.0);
#endif
  cpu_jiffies(&tot1, &st1);
  r->steal_share = tot1 > tot0 ? (st1 - st0) / (tot1 - tot0) : 0;
  probe_loadavg(r->load_after);
}
