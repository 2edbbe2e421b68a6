/* tests/gpu/bench_stages.c — a first timing of each stage of the engine on one backend,
 * written as a results file in the format of ../shared/docs/conventions.md
 * ("Benchmarks"): load, ViT, VAE encode, prefill (text, ViT block, VAE block), one
 * denoising step per CFG branch, VAE decode, decode tokens/s; plus the device's measured
 * bf16 GEMM peak and copy bandwidth, against which each figure's util (MFU, or the share
 * of memory bandwidth for decode) is given.
 *
 * Stages are timed with the engine's own internal calls (the ones the pipelines make),
 * each followed by a backend sync, so an asynchronous GPU is timed honestly.  FLOPs are
 * counted by wrapping the backend's linear/attention/conv2d entries (2·M·N·K, 4·Lq·Lk·D
 * per head — halved by the causal mask —, 2·Cout·P·K), weight bytes read by linear.
 *
 * tests/gpu/run runs it on a full-size random checkpoint (bagel-mkckpt --config 7b) at
 * the official sizes; its dry run (CI, on the CUDA emulation) on the tiny checkpoint at
 * toy sizes, so the program never rots.
 *
 * usage: bench_stages --model DIR --out FILE [--backend cuda|cpu] [--image PX] [--vit PX]
 *          [--text N] [--decode N] [--runs N] [--peak N] [--copy-mb N] [--checkpoint DESC] */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bagel.h"
#include "context.h"
#include "engine_internal.h"
#ifdef BAGEL_HAVE_CUDA
#include "cuda_probe.h"
#endif

/* ---- counting ----------------------------------------------------------------------- */

static const BkOps *real_ops;
static BkOps counting_ops;
static double n_flops, n_weight_bytes;

static void count_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b) {
  n_flops += 2.0 * (double)bk_rows(x) * (double)bk_cols(x) * (double)bk_rows(w);
  n_weight_bytes += (double)bk_nbytes(w);
  real_ops->linear(be, y, x, w, b);
}

static void count_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                            const BkTensor *kn, const BkTensor *vn, BkCausal causal, float scale) {
  const double Lq = (double)q->ne[0], H = (double)q->ne[1], D = (double)q->ne[2];
  const double Lc = kc ? (double)kc->ne[0] : 0.0;
  const double keys = causal == BK_CAUSAL_BOTTOM_RIGHT ? Lc + (Lq + 1) / 2 : Lc + Lq;
  n_flops += 4.0 * Lq * keys * D * H;
  real_ops->attention(be, o, q, kc, vc, kn, vn, causal, scale);
}

static void count_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                         int stride, const int pad[4]) {
  n_flops += 2.0 * (double)bk_numel(y) * (double)(bk_numel(w) / w->ne[0]);
  real_ops->conv2d(be, y, x, w, b, stride, pad);
}

/* ---- figures --------------------------------------------------------------------------- */

typedef struct {
  char name[48];
  const char *unit;
  GArray *runs;        /* double */
  double flops, bytes; /* per run: for util */
  char settings[160];  /* JSON object text */
} Figure;

static GPtrArray *figures;
static double peak_tflops, mem_gb_s;

static Figure *figure(const char *name, const char *unit, const char *settings) {
  for (guint i = 0; i < figures->len; i++) {
    Figure *f = figures->pdata[i];
    if (!strcmp(f->name, name)) return f;
  }
  Figure *f = g_new0(Figure, 1);
  g_strlcpy(f->name, name, sizeof f->name);
  f->unit = unit;
  f->runs = g_array_new(FALSE, FALSE, sizeof(double));
  g_strlcpy(f->settings, settings ? settings : "{}", sizeof f->settings);
  g_ptr_array_add(figures, f);
  return f;
}

static double median(GArray *a) {
  if (!a->len) return 0;
  double *v = g_memdup2(a->data, a->len * sizeof(double));
  for (guint i = 0; i < a->len; i++)
    for (guint j = i + 1; j < a->len; j++)
      if (v[j] < v[i]) {
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
      }
  double m = a->len % 2 ? v[a->len / 2] : 0.5 * (v[a->len / 2 - 1] + v[a->len / 2]);
  g_free(v);
  return m;
}

static gint64 t_start;
static void tic(void) {
  n_flops = n_weight_bytes = 0;
  t_start = g_get_monotonic_time();
}
/* sync, then record the time (and the work counted) since tic() under figure f */
static void toc(BkBackend *be, Figure *f) {
  be->ops->sync(be);
  if (!bk_ok(be)) g_error("%s: %s", f->name, be->error);
  double s = (double)(g_get_monotonic_time() - t_start) / 1e6;
  g_array_append_val(f->runs, s);
  f->flops = n_flops;
  f->bytes = n_weight_bytes;
}

static void must(gboolean ok, GError *err, const char *what) {
  if (!ok) g_error("%s: %s", what, err ? err->message : "failed");
}

/* ---- device limits, measured through the backend --------------------------------------- */

static void measure_limits(BkBackend *be, Arena *a, int n, int copy_mb, int runs) {
  ArenaMark mk = arena_mark(a);
  BkTensor x = arena_2d(a, BK_BF16, n, n), w = arena_2d(a, BK_BF16, n, n), y = arena_2d(a, BK_BF16, n, n);
  be->ops->fill_zero(be, &x);
  be->ops->fill_zero(be, &w);
  be->ops->linear(be, &y, &x, &w, NULL);  /* warm-up: plan, workspace */
  be->ops->sync(be);
  Figure *g = figure("peak_gemm_bf16", "s", NULL);
  g_snprintf(g->settings, sizeof g->settings, "{\"m\": %d, \"n\": %d, \"k\": %d}", n, n, n);
  for (int r = 0; r < runs; r++) {
    tic();
    be->ops->linear(be, &y, &x, &w, NULL);
    toc(be, g);
  }
  peak_tflops = 2.0 * n * (double)n * n / median(g->runs) / 1e12;
  int64_t elems = (int64_t)copy_mb << 18;  /* floats */
  BkTensor s = arena_tensor(a, BK_F32, 1, &elems), d = arena_tensor(a, BK_F32, 1, &elems);
  be->ops->fill_zero(be, &s);
  Figure *c = figure("copy_bandwidth", "s", NULL);
  g_snprintf(c->settings, sizeof c->settings, "{\"mib\": %d}", copy_mb);
  for (int r = 0; r < runs + 1; r++) {
    tic();
    be->ops->copy(be, &d, &s);
    toc(be, c);
  }
  g_array_remove_index(c->runs, 0);
  mem_gb_s = 2.0 * (double)elems * 4 / median(c->runs) / 1e9;
  arena_reset(a, mk);
}

/* ---- the results file -------------------------------------------------------------------- */

static char *cpu_model(void) {
  char *text = NULL;
  char *name = NULL;
  if (g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL)) {
    char *p = strstr(text, "model name");
    if (p && (p = strchr(p, ':'))) {
      p++;
      while (*p == ' ') p++;
      name = g_strndup(p, strcspn(p, "\n"));
    }
  }
  g_free(text);
  return name ? name : g_strdup("unknown CPU");
}

static void write_results(const char *path, const char *device, const char *driver, const char *backend,
                          const char *checkpoint, const char *commit) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "schema");
  json_builder_add_string_value(b, "gimp-bagel-bench/1");
  json_builder_set_member_name(b, "commit");
  json_builder_add_string_value(b, commit);
  GDateTime *now = g_date_time_new_now_utc();
  char *date = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
  json_builder_set_member_name(b, "date");
  json_builder_add_string_value(b, date);
  json_builder_set_member_name(b, "device");
  json_builder_add_string_value(b, device);
  json_builder_set_member_name(b, "backend");
  json_builder_add_string_value(b, backend);
  json_builder_set_member_name(b, "measured");
  json_builder_add_boolean_value(b, TRUE);
  json_builder_set_member_name(b, "driver");
  json_builder_add_string_value(b, driver);
  json_builder_set_member_name(b, "checkpoint");
  json_builder_add_string_value(b, checkpoint);
  json_builder_set_member_name(b, "limits");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "peak_tflops_bf16");
  json_builder_add_double_value(b, peak_tflops);
  json_builder_set_member_name(b, "mem_gb_s");
  json_builder_add_double_value(b, mem_gb_s);
  json_builder_set_member_name(b, "how");
  json_builder_add_string_value(b, "measured by tests/gpu/bench_stages: the median of a square bf16 linear "
                                   "(figure peak_gemm_bf16) and of a device-to-device copy (copy_bandwidth, "
                                   "read + write)");
  json_builder_end_object(b);
  json_builder_set_member_name(b, "figures");
  json_builder_begin_object(b);
  for (guint i = 0; i < figures->len; i++) {
    Figure *f = figures->pdata[i];
    double med = median(f->runs);
    json_builder_set_member_name(b, f->name);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "unit");
    json_builder_add_string_value(b, f->unit);
    json_builder_set_member_name(b, "runs");
    json_builder_begin_array(b);
    for (guint r = 0; r < f->runs->len; r++) json_builder_add_double_value(b, g_array_index(f->runs, double, r));
    json_builder_end_array(b);
    json_builder_set_member_name(b, "median");
    json_builder_add_double_value(b, med);
    json_builder_set_member_name(b, "settings");
    JsonNode *st = json_from_string(f->settings, NULL);
    json_builder_add_value(b, st ? st : json_node_new(JSON_NODE_NULL));
    double util = 0;
    if (!strcmp(f->unit, "tok/s")) util = mem_gb_s > 0 ? f->bytes * med / 1e9 / mem_gb_s : 0;
    else if (f->flops > 0 && peak_tflops > 0 && med > 0) util = f->flops / med / 1e12 / peak_tflops;
    json_builder_set_member_name(b, "util");
    json_builder_add_double_value(b, util);
    if (f->flops > 0) {
      json_builder_set_member_name(b, "tflop");
      json_builder_add_double_value(b, f->flops / 1e12);
    }
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
  json_builder_set_member_name(b, "peers");
  json_builder_begin_object(b);
  json_builder_end_object(b);
  json_builder_end_object(b);
  JsonGenerator *gen = json_generator_new();
  json_generator_set_pretty(gen, TRUE);
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  GError *err = NULL;
  if (!json_generator_to_file(gen, path, &err)) g_error("%s: %s", path, err->message);
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  g_free(date);
  g_date_time_unref(now);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  char *model = NULL, *out = NULL, *backend = g_strdup("cuda"), *ckdesc = NULL, *commit = NULL;
  int image = 1024, vit = 980, text = 512, decode = 32, runs = 3, peak = 8192, copy_mb = 1024;
  gboolean gpu_name = FALSE;
  GOptionEntry entries[] = {
    {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "checkpoint directory", "DIR"},
    {"out", 0, 0, G_OPTION_ARG_FILENAME, &out, "results file (JSON)", "FILE"},
    {"backend", 0, 0, G_OPTION_ARG_STRING, &backend, "cuda (default) or cpu", "NAME"},
    {"image", 0, 0, G_OPTION_ARG_INT, &image, "image side for VAE and denoising (1024)", "PX"},
    {"vit", 0, 0, G_OPTION_ARG_INT, &vit, "ViT input side (980)", "PX"},
    {"text", 0, 0, G_OPTION_ARG_INT, &text, "prompt tokens (512)", "N"},
    {"decode", 0, 0, G_OPTION_ARG_INT, &decode, "decoded tokens (32)", "N"},
    {"runs", 0, 0, G_OPTION_ARG_INT, &runs, "runs per figure (3)", "N"},
    {"peak", 0, 0, G_OPTION_ARG_INT, &peak, "side of the peak GEMM (8192)", "N"},
    {"copy-mb", 0, 0, G_OPTION_ARG_INT, &copy_mb, "MiB copied for the bandwidth (1024)", "N"},
    {"checkpoint", 0, 0, G_OPTION_ARG_STRING, &ckdesc, "how the checkpoint was made", "DESC"},
    {"commit", 0, 0, G_OPTION_ARG_STRING, &commit, "the commit measured", "SHA"},
    {"print-gpu-name", 0, 0, G_OPTION_ARG_NONE, &gpu_name, "print the GPU's name as a file name part", NULL},
    {NULL},
  };
  GOptionContext *oc = g_option_context_new("- time each stage of the engine");
  g_option_context_add_main_entries(oc, entries, NULL);
  GError *err = NULL;
  if (g_option_context_parse(oc, &argc, &argv, NULL) && gpu_name) {
    char msg[256] = "no-gpu";
#ifdef BAGEL_HAVE_CUDA
    bk_cuda_probe(msg, sizeof msg);
#endif
    msg[strcspn(msg, ",")] = '\0';
    for (char *p = msg; *p; p++)
      if (!g_ascii_isalnum(*p)) *p = '-';
    printf("%s\n", msg);
    return 0;
  }
  if (!model || !out) {
    g_printerr("%s\n", err ? err->message : "--model and --out are required");
    return 2;
  }
  g_option_context_free(oc);
  if (image % 16 || vit % 14 || text < 2 || decode < 1 || runs < 1) {
    g_printerr("--image must be a multiple of 16, --vit of 14\n");
    return 2;
  }
  figures = g_ptr_array_new();

  /* load */
  BagelEngineOptions o;
  bagel_engine_options_init(&o);
  o.backend = !strcmp(backend, "cpu") ? BAGEL_BACKEND_CPU : BAGEL_BACKEND_CUDA;
  Figure *fl = figure("load", "s", NULL);
  gint64 t0 = g_get_monotonic_time();
  BagelEngine *e = bagel_engine_open(model, &o, &err);
  must(e != NULL, err, "open");
  e->be->ops->sync(e->be);
  double load_s = (double)(g_get_monotonic_time() - t0) / 1e6;
  g_array_append_val(fl->runs, load_s);
  BkBackend *be = e->be;
  real_ops = be->ops;
  counting_ops = *be->ops;
  counting_ops.linear = count_linear;
  counting_ops.attention = count_attention;
  counting_ops.conv2d = count_conv2d;
  be->ops = &counting_ops;
  BagelModel *m = e->model;
  Arena *a = &e->arena;
  printf("backend %s, model %s loaded in %.1f s\n", bagel_engine_backend_name(e), model, load_s);

  measure_limits(be, a, peak, copy_mb, runs);
  printf("measured: bf16 GEMM %.1f TFLOP/s, copy %.1f GB/s\n", peak_tflops, mem_gb_s);

  GRand *rng = g_rand_new_with_seed(1);
  const int vae_f = vae_downsample_factor(&e->vae->cfg), patch = m->ck->cfg.geo.latent_patch;
  const int gh = image / (vae_f * patch), gw = gh, N = gh * gw, C = m->gen->latent_channels;
  char set[160];

  /* ViT */
  float *chw = g_new(float, (gsize)3 * vit * vit);
  for (gsize i = 0; i < (gsize)3 * vit * vit; i++) chw[i] = (float)g_rand_double_range(rng, -1, 1);
  g_snprintf(set, sizeof set, "{\"side\": %d, \"tokens\": %d}", vit, (vit / 14) * (vit / 14));
  Figure *fv = figure("vit", "s", set);
  BkTensor tokens;
  ArenaMark top = arena_mark(a);
  for (int r = 0; r < runs; r++) {
    arena_reset(a, top);
    tic();
    must(vit_encode(m->vit, a, chw, vit, vit, &tokens, NULL, &err), err, "vit");
    toc(be, fv);
  }
  g_free(chw);
  ArenaMark after_vit = arena_mark(a);

  /* VAE encode */
  float *img = g_new(float, (gsize)3 * image * image);
  for (gsize i = 0; i < (gsize)3 * image * image; i++) img[i] = (float)g_rand_double_range(rng, -1, 1);
  BkTensor ti = arena_tensor(a, BK_F32, 3, (int64_t[]){3, image, image});
  be->ops->upload(be, &ti, img);
  g_free(img);
  g_snprintf(set, sizeof set, "{\"width\": %d, \"height\": %d}", image, image);
  Figure *fe = figure("vae_encode", "s", set);
  ArenaMark mk = arena_mark(a);
  for (int r = 0; r < runs; r++) {
    BkTensor mom;
    arena_reset(a, mk);
    tic();
    must(vae_encode(e->vae, a, &ti, &mom, NULL, &err), err, "vae encode");
    toc(be, fe);
  }
  arena_reset(a, mk);

  /* prefill: cond = [text, ViT, VAE, text] as an edit; uncond-text = [ViT, VAE];
   * uncond-image = [text] */
  int32_t *ids = g_new(int32_t, text);
  for (int i = 0; i < text; i++) ids[i] = g_rand_int_range(rng, 0, 150000);
  float *lat = g_new(float, (gsize)N * C);
  for (gsize i = 0; i < (gsize)N * C; i++) lat[i] = (float)g_rand_double_range(rng, -1, 1);
  BkTensor tl = arena_2d(a, BK_F32, N, C);
  be->ops->upload(be, &tl, lat);
  g_free(lat);
  ArenaMark work = arena_mark(a);
  Ctx *cond = NULL, *ctext = NULL, *cimg = NULL;
  for (int r = 0; r < runs; r++) {
    ctx_free(cond);
    ctx_free(ctext);
    ctx_free(cimg);
    cond = ctx_new(m, 2 * text + tokens.ne[0] + N + 8 + decode, &err);
    cimg = ctx_new(m, text + 4, &err);
    must(cond && cimg, err, "contexts");
    g_snprintf(set, sizeof set, "{\"tokens\": %d}", text);
    Figure *ft = figure("prefill_text", "s", set);
    arena_reset(a, work);
    tic();
    must(ctx_append_text(cond, a, ids, text, &err), err, "prefill text");
    toc(be, ft);
    g_snprintf(set, sizeof set, "{\"tokens\": %lld}", (long long)tokens.ne[0]);
    Figure *fpv = figure("prefill_vit_block", "s", set);
    tic();
    must(ctx_append_vit(cond, a, &tokens, &err), err, "prefill vit");
    toc(be, fpv);
    g_snprintf(set, sizeof set, "{\"tokens\": %d}", N);
    Figure *fpa = figure("prefill_vae_block", "s", set);
    tic();
    must(ctx_append_vae(cond, a, &tl, gh, gw, &err), err, "prefill vae");
    toc(be, fpa);
    ctext = ctx_fork(cond);
    must(ctx_append_text(cond, a, ids, text, &err), err, "prefill text 2");
    must(ctx_append_text(cimg, a, ids, text, &err), err, "prefill text 3");
    be->ops->sync(be);
  }

  /* one denoising step per CFG branch, at t = 0.5 */
  BkTensor v = arena_2d(a, BK_BF16, N, C);
  struct { const char *name; Ctx *c; } br[] = {{"denoise_step_cond", cond}, {"denoise_step_text_uncond", ctext},
                                                {"denoise_step_image_uncond", cimg}};
  for (unsigned b = 0; b < G_N_ELEMENTS(br); b++) {
    g_snprintf(set, sizeof set, "{\"width\": %d, \"height\": %d, \"latent_tokens\": %d, \"cached\": %lld}", image,
               image, N, (long long)ctx_kv_len(br[b].c));
    Figure *fd = figure(br[b].name, "s", set);
    for (int r = 0; r < runs + 1; r++) {
      tic();
      must(ctx_denoise(br[b].c, a, &tl, 0.5f, gh, gw, &v, &err), err, "denoise");
      toc(be, fd);
    }
    g_array_remove_index(fd->runs, 0);  /* the first step allocates: timed apart below */
  }

  /* VAE decode */
  BkTensor z = arena_tensor(a, BK_F32, 3, (int64_t[]){e->vae->cfg.z_channels, gh * patch, gw * patch});
  be->ops->latent_unpack(be, &z, &tl);
  g_snprintf(set, sizeof set, "{\"width\": %d, \"height\": %d}", image, image);
  Figure *fdd = figure("vae_decode", "s", set);
  ArenaMark mk2 = arena_mark(a);
  for (int r = 0; r < runs; r++) {
    BkTensor y;
    arena_reset(a, mk2);
    tic();
    must(vae_decode(e->vae, a, &z, &y, NULL, &err), err, "vae decode");
    toc(be, fdd);
  }
  arena_reset(a, mk2);

  /* decode tokens/s on the conditional context (its cache holds the whole edit prompt) */
  BkTensor logits = arena_2d(a, BK_BF16, 1, m->llm->cfg.vocab);
  g_snprintf(set, sizeof set, "{\"tokens\": %d, \"cached\": %lld}", decode, (long long)ctx_kv_len(cond));
  Figure *fdec = figure("decode", "tok/s", set);
  Ctx *dc = ctx_fork(cond);
  tic();
  for (int k = 0; k < decode; k++) must(ctx_decode(dc, a, ids[k % text], &logits, &err), err, "decode");
  be->ops->sync(be);
  double ds = (double)(g_get_monotonic_time() - t_start) / 1e6;
  double tps = decode / ds;
  g_array_append_val(fdec->runs, tps);
  fdec->bytes = n_weight_bytes / decode;  /* weight bytes read per token */
  ctx_free(dc);

  arena_reset(a, after_vit);
  arena_reset(a, top);
  ctx_free(cond);
  ctx_free(ctext);
  ctx_free(cimg);

  /* report */
  char msg[256] = "?", drv[128] = "?";
#ifdef BAGEL_HAVE_CUDA
  if (!strcmp(backend, "cuda")) {
    bk_cuda_probe(msg, sizeof msg);
    bk_cuda_versions(drv, sizeof drv);
  } else
#endif
    g_strlcpy(msg, "CPU backend", sizeof msg);
  char *cpu = cpu_model();
  char *device = g_strdup_printf("%s | %s, %u threads", msg, cpu, g_get_num_processors());
  write_results(out, device, drv, bagel_engine_backend_name(e), ckdesc ? ckdesc : model, commit ? commit : "unknown");
  printf("%-28s %10s %12s %8s\n", "figure", "median", "unit", "util");
  for (guint i = 0; i < figures->len; i++) {
    Figure *f = figures->pdata[i];
    double med = median(f->runs), util = 0;
    if (!strcmp(f->unit, "tok/s")) util = mem_gb_s > 0 ? f->bytes * med / 1e9 / mem_gb_s : 0;
    else if (f->flops > 0 && peak_tflops > 0) util = f->flops / med / 1e12 / peak_tflops;
    printf("%-28s %10.4f %12s %8.3f\n", f->name, med, f->unit, util);
  }
  printf("results: %s\n", out);
  be->ops = real_ops;
  bagel_engine_free(e);
  g_rand_free(rng);
  g_free(ids);
  g_free(device);
  g_free(cpu);
  g_free(model);
  g_free(out);
  g_free(backend);
  g_free(ckdesc);
  g_free(commit);
  return 0;
}
