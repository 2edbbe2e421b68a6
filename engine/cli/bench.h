/* engine/cli/bench.h — `bagel bench` (cmd_bench.c: options, report; bench_stages.c:
 * the stages, the counting pass, the peer).  Internal to the CLI. */
#ifndef BAGEL_CLI_BENCH_H
#define BAGEL_CLI_BENCH_H

#include <glib.h>

#include "bagel.h"
#include "engine_internal.h"
#include "probe.h"
#include "roofline.h"

#define MAX_RUNS 64
#define MAX_STEPS 1024
#define MAX_FIGS 96

typedef struct {
  char name[64];
  const char *unit;          /* "s", "tok/s", "x" */
  double runs[MAX_RUNS];
  int n;
  char *settings;            /* JSON object text, owned */
  double util;               /* < 0: none */
  const char *util_of;
  double util_w;             /* share of the weights' own read rate (decode); < 0: none */
} Fig;

typedef struct {
  double flops[BK_NCLASSES], bytes[BK_NCLASSES], wbytes;
  double proj[ROOF_NVARIANTS];
} Acc;

typedef struct Bench {
  /* options */
  char *model, *backend, *project, *stages, *out, *peer_cmd, *ckpt_label;
  int threads, runs, size, steps, prompt_tokens, decode_tokens, image_size;
  gboolean mlock, und_only, peer_after;
  char gemm_kernel[16];      /* the fast backend's GEMM kernel (report) */
  char *commit, *dirty;      /* git HEAD and `status --porcelain` at start */
  /* results */
  Fig figs[MAX_FIGS];
  int nfigs;
  ProbeResult probe;
  ProbeFigure weights_gb_s;  /* streaming read over the weights decode reads (n = 0: none) */
  JsonBuilder *peers;        /* peer name -> figures */
  char peer_name[256];
  double peer_prefill[MAX_RUNS], peer_decode[MAX_RUNS];
  int npeer;
  /* progress of the current call */
  const char *what;
  int run, nruns;
  double step_t[MAX_STEPS + 1], step_lin[MAX_STEPS + 1];
  int nsteps;
  BagelEngine *cur;          /* the engine whose fast-backend timers are sampled */
  /* counting */
  gboolean counting;
  char prefix[32], label[64];
  int branches, step, cfg_steps_total;
  gboolean step_cfg[MAX_STEPS];
  GHashTable *acc;           /* label -> Acc* */
  const RoofDevice *dev;
  double step_proj[MAX_STEPS][ROOF_NVARIANTS], step_flops[MAX_STEPS][BK_NCLASSES];
} Bench;


/* bench_stages.c */
double bench_median(const double *v, int n);
Fig *bench_fig(Bench *b, const char *name, const char *unit, const char *settings_fmt, ...)
  G_GNUC_PRINTF(4, 5);
double bench_fig_median(const Fig *f);
void bench_fig_add(Fig *f, double v);
Acc *bench_acc(Bench *b, const char *label);   /* NULL-free: created on first use */
gboolean bench_has_stage(const Bench *b, const char *s);
gboolean bench_run_measured(Bench *b, GError **error);
gboolean bench_run_count(Bench *b, GError **error);

#endif
