/* engine/cli/bench_stages.c — the stages of `bagel bench` on the real pipeline, the
 * counting pass that gives each stage its FLOPs and bytes (and, with --project, its
 * roofline time on a GPU), and the interleaved peer (bench.h). */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "context.h"
#include "cpu/fast_backend.h"
#include "sampler.h"
#include "textgen.h"

static double now_s(void) { return (double)g_get_monotonic_time() / 1e6; }

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(const double *v, int n) {
  if (n <= 0) return 0;
  double s[MAX_STEPS + 1];
  memcpy(s, v, sizeof(double) * (size_t)n);
  qsort(s, (size_t)n, sizeof *s, cmpd);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* The figure called name (created on first use). */
Fig *bench_fig(Bench *b, const char *name, const char *unit, const char *settings_fmt, ...) {
  for (int i = 0; i < b->nfigs; i++)
    if (!strcmp(b->figs[i].name, name)) return &b->figs[i];
  Fig *f = &b->figs[b->nfigs < MAX_FIGS - 1 ? b->nfigs++ : b->nfigs];
  memset(f, 0, sizeof *f);
  g_strlcpy(f->name, name, sizeof f->name);
  f->unit = unit;
  f->util = -1;
  f->util_w = -1;
  va_list ap;
  va_start(ap, settings_fmt);
  f->settings = g_strdup_vprintf(settings_fmt, ap);
  va_end(ap);
  return f;
}

void bench_fig_add(Fig *f, double v) {
  if (f->n < MAX_RUNS) f->runs[f->n++] = v;
}

double bench_fig_median(const Fig *f) { return bench_median(f->runs, f->n); }

/* ---- counting: every op is attributed to the current label ------------------------- */

Acc *bench_acc(Bench *b, const char *label) {
  Acc *a = g_hash_table_lookup(b->acc, label);
  if (!a) {
    a = g_new0(Acc, 1);
    g_hash_table_insert(b->acc, g_strdup(label), a);
  }
  return a;
}

static void on_count(const BkCountOp *op, void *user) {
  Bench *b = user;
  Acc *a = bench_acc(b, b->label);
  a->flops[op->cls] += op->flops;
  a->bytes[op->cls] += op->bytes;
  a->wbytes += op->weight_bytes;
  for (int v = 0; b->dev && v < ROOF_NVARIANTS; v++) {
    double t = roof_op_seconds(b->dev, (RoofVariant)v, op, b->branches);
    a->proj[v] += t;
    if (b->step >= 0 && b->step < MAX_STEPS) b->step_proj[b->step][v] += t;
  }
  if (b->step >= 0 && b->step < MAX_STEPS) b->step_flops[b->step][op->cls] += op->flops;
}

static void set_label(Bench *b, const char *stage) {
  g_snprintf(b->label, sizeof b->label, "%s.%s", b->prefix, stage);
  b->step = -1;
  b->branches = 1;
}


/* ---- progress ------------------------------------------------------------------------ */

static gboolean on_progress(const char *stage, int step, int total, double elapsed, gpointer u) {
  Bench *b = u;
  if (b->counting) {
    set_label(b, stage);
    if (!strcmp(stage, "denoise")) {
      b->step = step;
      b->branches = step < MAX_STEPS && b->step_cfg[step] ? b->cfg_steps_total : 1;
    }
    return TRUE;
  }
  fprintf(stderr, "\r\033[K[bench] %s run %d/%d: %s %d/%d, %.1f s", b->what, b->run + 1,
          b->nruns, stage, step + 1, total, elapsed);
  fflush(stderr);
  double lin = 0, att = 0;
  if (b->cur) bk_cpu_fast_timers(b->cur->be, &lin, &att);
  if (!strcmp(stage, "denoise") && step < MAX_STEPS) {
    b->step_t[step] = elapsed;
    b->step_lin[step] = lin;
    b->nsteps = step + 1;
  } else if (!strcmp(stage, "vae-decode") && b->nsteps > 0 && b->nsteps <= MAX_STEPS) {
    b->step_t[b->nsteps] = elapsed;
    b->step_lin[b->nsteps] = lin;
  }
  return TRUE;
}

static void progress_done(Bench *b) {
  if (!b->counting) fprintf(stderr, "\r\033[K");
}

/* ---- the stages ---------------------------------------------------------------------- */

static BagelEngine *open_engine(Bench *b, gboolean count, gboolean weight_check, GError **error) {
  BagelEngineOptions o;
  bagel_engine_options_init(&o);
  o.backend = count ? BAGEL_BACKEND_COUNT : BAGEL_BACKEND_CPU;
  o.n_threads = b->threads;
  /* the stages skip the weight scan; `open` measures what a user gets: the engine's
   * default, the scan on the first open of the files, remembered after it */
  o.skip_weight_check = !weight_check;
  return bagel_engine_open(b->model, &o, error);
}

/* Lock what the stages touch in RAM: everything, or (--und-only) the understanding side. */
static gboolean lock_weights(Bench *b, BagelEngine *e, GError **error) {
  const Checkpoint *ck = e->model->ck;
  double locked = 0;
  const long page = sysconf(_SC_PAGESIZE);
  for (guint i = 0; i < ck->expected->len; i++) {
    const CkptSpec *s = ck->expected->pdata[i];
    if (b->und_only && (strstr(s->name, "_moe_gen") || s->file != CKPT_FILE_EMA ||
                        !(g_str_has_prefix(s->name, "language_model.") ||
                          g_str_has_prefix(s->name, "vit_model.") ||
                          g_str_has_prefix(s->name, "connector.") ||
                          g_str_has_prefix(s->name, "vit_pos_embed."))))
      continue;
    const StTensor *t = ckpt_tensor(ck, s->name);
    if (!t || !t->data || !t->nbytes) continue;
    uintptr_t p0 = (uintptr_t)t->data & ~(uintptr_t)(page - 1);
    uintptr_t p1 = (uintptr_t)t->data + t->nbytes;
    if (mlock((void *)p0, p1 - p0) != 0) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "mlock %s (%.2f GB locked so far): %s",
                  s->name, locked / 1e9, g_strerror(errno));
      return FALSE;
    }
    locked += (double)(p1 - p0);
  }
  fprintf(stderr, "[bench] %.2f GB of weights locked in RAM\n", locked / 1e9);
  return TRUE;
}

/* The read rate of the weights a decode step streams (the und layers and lm_head), in
 * place: the checkpoint's page-cache pages, not a fresh buffer. */
static void probe_weights(Bench *b, BagelEngine *e) {
  const Checkpoint *ck = e->model->ck;
  GPtrArray *ptrs = g_ptr_array_new();
  GArray *lens = g_array_new(FALSE, FALSE, sizeof(size_t));
  for (guint i = 0; i < ck->expected->len; i++) {
    const CkptSpec *s = ck->expected->pdata[i];
    if (s->file != CKPT_FILE_EMA || strstr(s->name, "_moe_gen") ||
        !(g_str_has_prefix(s->name, "language_model.model.layers.") ||
          !strcmp(s->name, "language_model.lm_head.weight")))
      continue;
    const StTensor *t = ckpt_tensor(ck, s->name);
    if (!t || !t->data || t->nbytes < ((size_t)1 << 20)) continue;
    g_ptr_array_add(ptrs, (gpointer)t->data);
    size_t n = t->nbytes;
    g_array_append_val(lens, n);
  }
  probe_read_ranges(&b->weights_gb_s, (const void *const *)ptrs->pdata, (const size_t *)lens->data,
                    (int)ptrs->len, b->threads, 3);
  if (b->weights_gb_s.n)
    fprintf(stderr, "[bench] the weights themselves read at %.1f GB/s (%u tensors of >= 1 MiB)\n",
            b->weights_gb_s.median, ptrs->len);
  g_ptr_array_free(ptrs, TRUE);
  g_array_free(lens, TRUE);
}

static void synthetic_image(int w, int h, guint8 *rgb) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      guint8 *p = rgb + ((gsize)y * w + x) * 3;
      p[0] = (guint8)(x * 255 / (w > 1 ? w - 1 : 1));
      p[1] = (guint8)(y * 255 / (h > 1 ? h - 1 : 1));
      p[2] = (guint8)(((x / 32 + y / 32) % 2) * 200 + 20);
    }
}

/* Prefill of prompt_tokens text tokens, then decode_tokens greedy steps (und expert). */
static gboolean stage_llm(Bench *b, BagelEngine *e, double *prefill_s, double *decode_s,
                          GError **error) {
  const int P = b->prompt_tokens, D = b->decode_tokens;
  const int64_t V = e->model->llm->cfg.vocab;
  gint32 *ids = g_new(gint32, P);
  for (int i = 0; i < P; i++) ids[i] = 1000 + (gint32)(((gint64)i * 7919) % 100000);
  ArenaMark mk = arena_mark(&e->arena);
  Ctx *c = ctx_new(e->model, P + D + 8, error);
  gboolean ok = c != NULL;
  uint16_t *host = g_new(uint16_t, V);
  if (ok) {
    set_label(b, "prefill");
    on_progress("prefill", 0, 1, 0, b);
    double t0 = now_s();
    ok = ctx_append_text(c, &e->arena, ids, P, error);
    *prefill_s = now_s() - t0;
  }
  if (ok) {
    set_label(b, "decode");
    BkTensor logits = arena_2d(&e->arena, BK_BF16, 1, V);
    int32_t tok = e->model->ids.bos;
    double t0 = now_s();
    for (int k = 0; ok && k < D; k++) {
      if (!b->counting) on_progress("decode", k, D, now_s() - t0, b);
      ok = ctx_decode(c, &e->arena, tok, &logits, error);
      e->be->ops->download(e->be, host, &logits);
      tok = textgen_argmax_bf16(host, V);
    }
    *decode_s = (now_s() - t0) / D;
  }
  g_free(host);
  ctx_free(c);
  arena_reset(&e->arena, mk);
  g_free(ids);
  progress_done(b);
  return ok;
}

static gboolean stage_describe(Bench *b, BagelEngine *e, BagelTimings *tm, GError **error) {
  const int S = b->image_size;
  guint8 *rgb = g_malloc((gsize)S * S * 3);
  synthetic_image(S, S, rgb);
  BagelImage img = {.width = S, .height = S, .channels = 3, .stride = S * 3, .pixels = rgb};
  BagelDescribeParams p;
  bagel_describe_params_init(&p);
  p.common.seed = 0;
  p.answer.max_tokens = b->decode_tokens;
  BagelResult r;
  gboolean ok = bagel_describe(e, &img, "Describe this image in detail.", &p, on_progress, b,
                               &r, error);
  if (ok) *tm = r.timings;
  bagel_result_clear(&r);
  g_free(rgb);
  progress_done(b);
  return ok;
}

/* The CFG gate of each step (spec §6): which steps run the extra branches. */
static int cfg_schedule(Bench *b, const BagelSampler *s, gboolean edit) {
  float t[MAX_STEPS + 1], dt[MAX_STEPS + 1];
  const int T = s->steps < MAX_STEPS ? s->steps : MAX_STEPS;
  sampler_schedule(T, s->timestep_shift, t, dt);
  for (int j = 0; j + 1 < T; j++)
    b->step_cfg[j] = t[j] > s->cfg_interval[0] && t[j] <= s->cfg_interval[1];
  return 1 + (s->cfg_text > 1.0f) + (edit && s->cfg_image > 1.0f) +
         (!edit && s->cfg_image > 1.0f);
}

static gboolean stage_image(Bench *b, BagelEngine *e, gboolean edit, BagelTimings *tm,
                            GError **error) {
  const int S = b->size;
  BagelResult r;
  gboolean ok;
  b->nsteps = 0;
  if (edit) {
    BagelEditParams p;
    bagel_edit_params_init(&p);
    p.common.seed = 0;
    p.sampler.steps = b->steps;
    b->cfg_steps_total = cfg_schedule(b, &p.sampler, TRUE);
    guint8 *rgb = g_malloc((gsize)S * S * 3);
    synthetic_image(S, S, rgb);
    BagelImage img = {.width = S, .height = S, .channels = 3, .stride = S * 3, .pixels = rgb};
    ok = bagel_edit(e, &img, "Make it look like a watercolor painting.", &p, on_progress, b, &r,
                    error);
    g_free(rgb);
  } else {
    BagelGenerateParams p;
    bagel_generate_params_init(&p);
    p.common.seed = 0;
    p.sampler.steps = b->steps;
    p.width = p.height = S;
    b->cfg_steps_total = cfg_schedule(b, &p.sampler, FALSE);
    ok = bagel_generate(e, "A red fox sitting in a snowy forest at sunrise, photograph.", &p,
                        on_progress, b, &r, error);
  }
  if (ok) *tm = r.timings;
  bagel_result_clear(&r);
  progress_done(b);
  return ok;
}

/* VAE encode and decode of a size² image alone. */
static gboolean stage_vae(Bench *b, BagelEngine *e, double *enc_s, double *dec_s,
                          GError **error) {
  BkBackend *be = e->be;
  const int S = b->size, f = vae_downsample_factor(&e->vae->cfg), zc = e->vae->cfg.z_channels;
  ArenaMark mk = arena_mark(&e->arena);
  BkTensor x = arena_tensor(&e->arena, BK_F32, 3, (int64_t[]){3, S, S});
  BkTensor z = arena_tensor(&e->arena, BK_F32, 3, (int64_t[]){zc, S / f, S / f});
  float *host = g_new(float, (gsize)3 * S * S);
  for (gsize i = 0; i < (gsize)3 * S * S; i++) host[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  be->ops->upload(be, &x, host);
  be->ops->upload(be, &z, host);
  g_free(host);
  BkTensor moments, y;
  on_progress("vae-encode", 0, 1, 0, b);
  set_label(b, "encode");
  double t0 = now_s();
  gboolean ok = vae_encode(e->vae, &e->arena, &x, &moments, NULL, error);
  *enc_s = now_s() - t0;
  if (ok) {
    on_progress("vae-decode", 0, 1, 0, b);
    set_label(b, "decode");
    t0 = now_s();
    ok = vae_decode(e->vae, &e->arena, &z, &y, NULL, error);
    *dec_s = now_s() - t0;
  }
  arena_reset(&e->arena, mk);
  progress_done(b);
  return ok;
}


/* ---- the peer ------------------------------------------------------------------------ */

/* Run --peer-cmd once; it prints {"name", "prefill_tok_s", "decode_tok_s"}. */
static gboolean run_peer(Bench *b, GError **error) {
  char *out = NULL, *err = NULL;
  int status = 0;
  fprintf(stderr, "\r\033[K[bench] peer run %d/%d: %s", b->run + 1, b->nruns, b->peer_cmd);
  if (!g_spawn_command_line_sync(b->peer_cmd, &out, &err, &status, error)) return FALSE;
  fprintf(stderr, "\r\033[K");
  gboolean ok = FALSE;
  JsonParser *jp = json_parser_new();
  if (status != 0 || !out || !json_parser_load_from_data(jp, out, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(jp))) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "--peer-cmd failed (status %d): %s%s",
                status, out ? out : "", err ? err : "");
  } else if (b->npeer < MAX_RUNS) {
    JsonObject *o = json_node_get_object(json_parser_get_root(jp));
    g_strlcpy(b->peer_name, json_object_get_string_member_with_default(o, "name", "peer"),
              sizeof b->peer_name);
    b->peer_prefill[b->npeer] = json_object_get_double_member_with_default(o, "prefill_tok_s", 0);
    b->peer_decode[b->npeer] = json_object_get_double_member_with_default(o, "decode_tok_s", 0);
    b->npeer++;
    ok = TRUE;
  }
  g_object_unref(jp);
  g_free(out);
  g_free(err);
  return ok;
}

/* ---- measured runs ------------------------------------------------------------------- */

gboolean bench_has_stage(const Bench *b, const char *s) {
  gchar **v = g_strsplit(b->stages, ",", -1);
  gboolean yes = g_strv_contains((const gchar *const *)v, s);
  g_strfreev(v);
  return yes;
}

/* Per-step denoise times of the last image call into figures (prefix "t2i"/"edit"). */
static void denoise_figures(Bench *b, const char *pre) {
  double cfg[MAX_STEPS], plain[MAX_STEPS], lin_cfg[MAX_STEPS];
  int nc = 0, np = 0;
  for (int j = 0; j < b->nsteps && j < MAX_STEPS; j++) {
    double dt = b->step_t[j + 1] - b->step_t[j], dl = b->step_lin[j + 1] - b->step_lin[j];
    if (dt <= 0) continue;
    if (b->step_cfg[j]) {
      lin_cfg[nc] = dl;
      cfg[nc++] = dt;
    } else {
      plain[np++] = dt;
    }
  }
  char name[64];
  const char *st = "{\"width\": %d, \"height\": %d, \"steps\": %d}";
  g_snprintf(name, sizeof name, "%s.denoise_step_cfg", pre);
  if (nc) bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), bench_median(cfg, nc));
  g_snprintf(name, sizeof name, "%s.denoise_step_plain", pre);
  if (np) bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), bench_median(plain, np));
  if (nc && np) {
    g_snprintf(name, sizeof name, "%s.branch_cond", pre);
    bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), bench_median(plain, np));
    g_snprintf(name, sizeof name, "%s.branch_cfg_each", pre);
    bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps),
            (bench_median(cfg, nc) - bench_median(plain, np)) / (b->cfg_steps_total - 1));
  }
  g_snprintf(name, sizeof name, "%s.denoise_step_cfg_gemm", pre);
  if (nc) bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), bench_median(lin_cfg, nc));
}

gboolean bench_run_measured(Bench *b, GError **error) {
  probe_run(&b->probe, b->threads, 5, 0);
  if (b->threads <= 0) b->threads = b->probe.threads;
  fprintf(stderr, "[bench] probe (%d threads): read %.1f GB/s, fp32 %.0f, bf16 %.0f GFLOP/s, "
          "load %.2f\n", b->threads, b->probe.mem_gb_s.median, b->probe.fp32_gflops.median,
          b->probe.bf16_gflops.median, b->probe.load_before[0]);
  g_unsetenv("BAGEL_CPU_FAST");   /* measure the fast backend, the default */
  BagelEngine *e = NULL;
  const int R = b->runs;
  b->nruns = R;
  if (bench_has_stage(b, "open")) {
    for (int r = -1; r < R; r++) {   /* r = -1: warms the page cache (and scans, once) */
      b->what = "open";
      double t0 = now_s();
      BagelEngine *x = open_engine(b, FALSE, TRUE, error);
      double dt = now_s() - t0;
      if (!x) return FALSE;
      bagel_engine_free(x);
      if (r >= 0) bench_fig_add(bench_fig(b, "open", "s", "{\"weight_check\": \"remembered\"}"), dt);
      /* the first open: the page cache as found, and the weight scan unless these files
       * passed it before (a fresh BAGEL_CACHE_DIR makes it scan) */
      else bench_fig_add(bench_fig(b, "open_first", "s", "{\"weight_check\": \"first open\"}"), dt);
    }
  }
  if (!(e = open_engine(b, FALSE, FALSE, error))) return FALSE;
  b->cur = e;
  if (b->mlock && !lock_weights(b, e, error)) goto fail;
  if (bench_has_stage(b, "llm") || bench_has_stage(b, "describe")) probe_weights(b, e);
  for (int r = 0; r < R; r++) {
    b->run = r;
    if (bench_has_stage(b, "llm")) {
      b->what = "llm";
      double pf, dc;
      if (!stage_llm(b, e, &pf, &dc, error)) goto fail;
      bench_fig_add(bench_fig(b, "prefill", "tok/s", "{\"prompt_tokens\": %d}", b->prompt_tokens),
              b->prompt_tokens / pf);
      bench_fig_add(bench_fig(b, "decode", "tok/s", "{\"context\": %d, \"tokens\": %d}", b->prompt_tokens,
                  b->decode_tokens), 1.0 / dc);
      if (b->peer_cmd && !b->peer_after) {
        if (!run_peer(b, error)) goto fail;
        const int k = b->npeer - 1;
        bench_fig_add(bench_fig(b, "prefill_vs_peer", "x", "{\"peer\": \"%s\"}", b->peer_name),
                (b->prompt_tokens / pf) / b->peer_prefill[k]);
        bench_fig_add(bench_fig(b, "decode_vs_peer", "x", "{\"peer\": \"%s\"}", b->peer_name),
                (1.0 / dc) / b->peer_decode[k]);
      }
    }
    if (bench_has_stage(b, "describe")) {
      b->what = "describe";
      BagelTimings tm;
      if (!stage_describe(b, e, &tm, error)) goto fail;
      const char *st = "{\"image\": %d, \"answer_tokens\": %d}";
      bench_fig_add(bench_fig(b, "describe.vit", "s", st, b->image_size, b->decode_tokens), tm.vit);
      bench_fig_add(bench_fig(b, "describe.prefill", "s", st, b->image_size, b->decode_tokens), tm.prefill);
      bench_fig_add(bench_fig(b, "describe.decode", "tok/s", st, b->image_size, b->decode_tokens),
              tm.decode_tokens / tm.decode);
      bench_fig_add(bench_fig(b, "describe.total", "s", st, b->image_size, b->decode_tokens), tm.total);
    }
    if (bench_has_stage(b, "vae")) {
      b->what = "vae";
      double enc, dec;
      if (!stage_vae(b, e, &enc, &dec, error)) goto fail;
      bench_fig_add(bench_fig(b, "vae.encode", "s", "{\"width\": %d, \"height\": %d}", b->size, b->size), enc);
      bench_fig_add(bench_fig(b, "vae.decode", "s", "{\"width\": %d, \"height\": %d}", b->size, b->size), dec);
    }
    for (int k = 0; k < 2; k++) {
      const char *pre = k ? "edit" : "t2i";
      if (!bench_has_stage(b, pre)) continue;
      b->what = pre;
      BagelTimings tm;
      if (!stage_image(b, e, k, &tm, error)) goto fail;
      char name[64];
      const char *st = "{\"width\": %d, \"height\": %d, \"steps\": %d}";
      g_snprintf(name, sizeof name, "%s.prefill", pre);
      bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), tm.prefill + tm.vit + tm.vae_encode);
      g_snprintf(name, sizeof name, "%s.vae_decode", pre);
      bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), tm.vae_decode);
      g_snprintf(name, sizeof name, "%s.total", pre);
      bench_fig_add(bench_fig(b, name, "s", st, b->size, b->size, b->steps), tm.total);
      denoise_figures(b, pre);
    }
  }
  b->cur = NULL;
  bagel_engine_free(e);   /* unlocks our weights: the peer's may take the page cache */
  e = NULL;
  if (b->peer_cmd && b->peer_after && bench_has_stage(b, "llm")) {
    /* blocks instead of interleaving (both models' weights do not fit in RAM at once):
     * a warm-up run, then as many runs as ours, ratios run by run */
    Fig *pf = bench_fig(b, "prefill", "tok/s", "{}"), *df = bench_fig(b, "decode", "tok/s", "{}");
    for (int r = -1; r < R; r++) {
      b->run = r < 0 ? 0 : r;
      if (!run_peer(b, error)) return FALSE;
      if (r < 0) {
        b->npeer = 0;
        continue;
      }
      const int k = b->npeer - 1;
      bench_fig_add(bench_fig(b, "prefill_vs_peer", "x", "{\"peer\": \"%s\", \"schedule\": \"blocks\"}",
                              b->peer_name), pf->runs[r] / b->peer_prefill[k]);
      bench_fig_add(bench_fig(b, "decode_vs_peer", "x", "{\"peer\": \"%s\", \"schedule\": \"blocks\"}",
                              b->peer_name), df->runs[r] / b->peer_decode[k]);
    }
  }
  return TRUE;
fail:
  b->cur = NULL;
  bagel_engine_free(e);
  return FALSE;
}

/* ---- the counting pass: FLOPs/bytes per stage (and the projection) -------------------- */

/* "bagel-mkckpt --config NAME (DIR)" when the LLM geometry is a preset's, else DIR. */
static char *checkpoint_label(const BagelEngine *e, const char *dir) {
  static const char *presets[] = {"tiny", "medium", "7b"};
  for (size_t i = 0; i < G_N_ELEMENTS(presets); i++) {
    ModelConfig m;
    if (model_config_preset(presets[i], &m) &&
        !memcmp(&m.llm, &e->model->ck->cfg.llm, sizeof m.llm))
      return g_strdup_printf("bagel-mkckpt --config %s (%s)", presets[i], dir);
  }
  return g_strdup(dir);
}

gboolean bench_run_count(Bench *b, GError **error) {
  BagelEngine *e = open_engine(b, TRUE, FALSE, error);
  if (!e) return FALSE;
  b->ckpt_label = checkpoint_label(e, b->model);
  b->counting = TRUE;
  b->acc = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  bk_count_set_hook(e->be, on_count, b);
  gboolean ok = TRUE;
  if (bench_has_stage(b, "llm")) {
    double pf, dc;
    g_strlcpy(b->prefix, "llm", sizeof b->prefix);
    ok = stage_llm(b, e, &pf, &dc, error);
  }
  BagelTimings tm;
  if (ok && bench_has_stage(b, "describe")) {
    g_strlcpy(b->prefix, "describe", sizeof b->prefix);
    ok = stage_describe(b, e, &tm, error);
  }
  if (ok && bench_has_stage(b, "vae")) {
    double a, c;
    g_strlcpy(b->prefix, "vae", sizeof b->prefix);
    ok = stage_vae(b, e, &a, &c, error);
  }
  for (int k = 0; ok && k < 2; k++) {
    const char *pre = k ? "edit" : "t2i";
    if (!bench_has_stage(b, pre)) continue;
    g_strlcpy(b->prefix, pre, sizeof b->prefix);
    memset(b->step_proj, 0, sizeof b->step_proj);
    memset(b->step_flops, 0, sizeof b->step_flops);
    ok = stage_image(b, e, k, &tm, error);
    if (ok) {   /* per-step counts and projections: the first CFG step, the first plain step */
      for (int want = 1; want >= 0; want--)
        for (int j = 0; j + 1 < b->steps; j++)
          if (b->step_cfg[j] == want) {
            char name[64];
            g_snprintf(name, sizeof name, "%s.step_%s", pre, want ? "cfg" : "plain");
            Acc *a = bench_acc(b, name);
            for (int v = 0; v < ROOF_NVARIANTS; v++) a->proj[v] = b->step_proj[j][v];
            for (int c = 0; c < BK_NCLASSES; c++) a->flops[c] = b->step_flops[j][c];
            break;
          }
    }
  }
  b->counting = FALSE;
  bagel_engine_free(e);
  return ok;
}
