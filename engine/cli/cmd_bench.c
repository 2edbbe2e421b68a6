/* engine/cli/cmd_bench.c — `bagel bench`: stage-by-stage timings of the real pipeline on
 * a checkpoint, each figure beside the limit it is measured against, written as a results
 * file (docs/conventions.md format; docs/performance.md explains every figure).
 *
 *   bagel bench --model DIR [--stages open,llm,describe,vae,t2i,edit] [--runs N]
 *               [--threads N] [--size PX] [--steps N] [--prompt-tokens N]
 *               [--decode-tokens N] [--mlock] [--und-only] [--peer-cmd CMD] [--out FILE]
 *   bagel bench --model DIR --backend count --project h100|h200 [--size 1024] [--out FILE]
 *
 * Measured runs (--backend cpu, the fast CPU backend): the machine's limits are probed
 * first (tests/bench/probe.c) in the same process; each stage runs --runs times (median);
 * a progress line runs on stderr.  The FLOPs and bytes of each stage come from running
 * the same calls once more on the counting backend (kernels/count), so every figure gets
 * its share of the limit (util).  --peer-cmd runs a command after each `llm` run (the
 * interleaved peer, tests/bench/peers/llama-peer) that prints a JSON object with
 * prefill_tok_s and decode_tok_s; ratios are taken run by run.
 * --backend count --project DEV runs the stages only on the counting backend and turns
 * each op into roofline time on DEV (tests/bench/roofline.c): "measured": false. */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bagel-config.h"
#include "bench.h"
#include "cli.h"
#include "cpu/fast_backend.h"

/* ---- shares of the limits ------------------------------------------------------------ */

static double acc_total(const Acc *a) {
  double s = 0;
  for (int c = 0; c < BK_NCLASSES; c++) s += a->flops[c];
  return s;
}

static double acc_bytes(const Acc *a) {
  double s = 0;
  for (int c = 0; c < BK_NCLASSES; c++) s += a->bytes[c];
  return s;
}

/* The compute limit of the exact bf16 kernels: the faster of fp32 FMA and VDPBF16PS. */
static double compute_peak(const Bench *b) {
  double f = b->probe.fp32_gflops.median, d = b->probe.bf16_gflops.median;
  return (f > d ? f : d) * 1e9;
}

static void set_util(Bench *b, const char *name, double work_per_unit, double limit,
                     const char *of) {
  for (int i = 0; i < b->nfigs; i++) {
    Fig *f = &b->figs[i];
    if (strcmp(f->name, name) || !f->n || limit <= 0 || work_per_unit <= 0) continue;
    const double m = bench_fig_median(f);
    /* a rate (tok/s) times work per token, or work over a time */
    f->util = !strcmp(f->unit, "tok/s") ? m * work_per_unit / limit : work_per_unit / m / limit;
    f->util_of = of;
  }
}

static void set_util_w(Bench *b, const char *name, double bytes_per_token) {
  const double bw = b->weights_gb_s.n ? b->weights_gb_s.median * 1e9 : 0;
  for (int i = 0; i < b->nfigs; i++) {
    Fig *f = &b->figs[i];
    if (strcmp(f->name, name) || !f->n || bw <= 0 || bytes_per_token <= 0) continue;
    f->util_w = bench_fig_median(f) * bytes_per_token / bw;
  }
}

static void measured_utils(Bench *b) {
  const double peak = compute_peak(b), fp32 = b->probe.fp32_gflops.median * 1e9,
               bw = b->probe.mem_gb_s.median * 1e9;
  const char *cp = "compute limit of the exact kernels (max of the fp32 FMA and VDPBF16PS peaks)";
  const char *mb = "read bandwidth";
  const char *f32 = "fp32 FMA peak";
  Acc *a;
  if ((a = g_hash_table_lookup(b->acc, "llm.prefill")))
    set_util(b, "prefill", acc_total(a) / b->prompt_tokens, peak, cp);
  if ((a = g_hash_table_lookup(b->acc, "llm.decode"))) {
    set_util(b, "decode", acc_bytes(a) / b->decode_tokens, bw, mb);
    set_util_w(b, "decode", acc_bytes(a) / b->decode_tokens);
  }
  if ((a = g_hash_table_lookup(b->acc, "describe.decode"))) {
    set_util(b, "describe.decode", acc_bytes(a) / b->decode_tokens, bw, mb);
    set_util_w(b, "describe.decode", acc_bytes(a) / b->decode_tokens);
  }
  if ((a = g_hash_table_lookup(b->acc, "vae.encode"))) set_util(b, "vae.encode", acc_total(a), fp32, f32);
  if ((a = g_hash_table_lookup(b->acc, "vae.decode"))) set_util(b, "vae.decode", acc_total(a), fp32, f32);
  for (int k = 0; k < 2; k++) {
    const char *pre = k ? "edit" : "t2i";
    char l[64], n[64];
    g_snprintf(l, sizeof l, "%s.step_plain", pre);
    g_snprintf(n, sizeof n, "%s.branch_cond", pre);
    if ((a = g_hash_table_lookup(b->acc, l))) set_util(b, n, acc_total(a), peak, cp);
    g_snprintf(l, sizeof l, "%s.step_cfg", pre);
    g_snprintf(n, sizeof n, "%s.denoise_step_cfg_gemm", pre);
    if ((a = g_hash_table_lookup(b->acc, l)))
      set_util(b, n, a->flops[BK_CLASS_GEMM], peak, "compute limit, LLM GEMMs only (time inside linear)");
    g_snprintf(n, sizeof n, "%s.denoise_step_cfg", pre);
    if (a) set_util(b, n, acc_total(a), peak, cp);
    g_snprintf(l, sizeof l, "%s.vae-decode", pre);
    g_snprintf(n, sizeof n, "%s.vae_decode", pre);
    if ((a = g_hash_table_lookup(b->acc, l))) set_util(b, n, acc_total(a), fp32, f32);
  }
}

/* ---- the projection: figures from the counting pass ---------------------------------- */

static double proj_sum(Bench *b, const char *prefix, RoofVariant v) {
  GHashTableIter it;
  gpointer k, val;
  double s = 0;
  g_hash_table_iter_init(&it, b->acc);
  while (g_hash_table_iter_next(&it, &k, &val))
    if (g_str_has_prefix(k, prefix) && !strstr(k, ".step_")) s += ((Acc *)val)->proj[v];
  return s;
}

static void proj_fig(Bench *b, const char *name, const char *unit, double v, RoofVariant var,
                     const char *extra) {
  char n[64];
  g_snprintf(n, sizeof n, var == ROOF_BASE ? "%s" : "%s@%s", name, roof_variant_name(var));
  Fig *f = bench_fig(b, n, unit, "{\"variant\": \"%s\"%s}", roof_variant_name(var), extra);
  bench_fig_add(f, v);
}

static void projected_figures(Bench *b, GPtrArray *notes) {
  char extra[128];
  Acc *a;
  for (int v = 0; v < ROOF_NVARIANTS; v++) {
    const RoofVariant var = (RoofVariant)v;
    g_snprintf(extra, sizeof extra, ", \"prompt_tokens\": %d", b->prompt_tokens);
    if ((a = g_hash_table_lookup(b->acc, "llm.prefill")))
      proj_fig(b, "prefill", "tok/s", b->prompt_tokens / a->proj[v], var, extra);
    if ((a = g_hash_table_lookup(b->acc, "llm.decode")))
      proj_fig(b, "decode", "tok/s", b->decode_tokens / a->proj[v], var, extra);
    g_snprintf(extra, sizeof extra, ", \"image\": %d, \"answer_tokens\": %d", b->image_size,
               b->decode_tokens);
    if (bench_has_stage(b, "describe")) proj_fig(b, "describe.total", "s", proj_sum(b, "describe.", v), var, extra);
    for (int k = 0; k < 2; k++) {
      const char *pre = k ? "edit" : "t2i";
      if (!bench_has_stage(b, pre)) continue;
      char n[64], l[64];
      g_snprintf(extra, sizeof extra, ", \"width\": %d, \"height\": %d, \"steps\": %d", b->size,
                 b->size, b->steps);
      g_snprintf(l, sizeof l, "%s.", pre);
      g_snprintf(n, sizeof n, "%s.total", pre);
      proj_fig(b, n, "s", proj_sum(b, l, v), var, extra);
      const char *parts[] = {"denoise", "vae-decode", "vae-encode", "vit", "prefill", "step_cfg",
                             "step_plain"};
      for (size_t i = 0; i < G_N_ELEMENTS(parts); i++) {
        g_snprintf(l, sizeof l, "%s.%s", pre, parts[i]);
        if (!(a = g_hash_table_lookup(b->acc, l))) continue;
        g_snprintf(n, sizeof n, "%s.%s", pre, parts[i]);
        proj_fig(b, n, "s", a->proj[v], var, extra);
      }
    }
  }
  /* the work itself, device-independent */
  for (int k = 0; k < 3; k++) {
    const char *pre = k == 0 ? "t2i" : k == 1 ? "edit" : "describe";
    if (!bench_has_stage(b, pre)) continue;
    GHashTableIter it;
    gpointer key, val;
    double flops = 0, wb = 0;
    g_hash_table_iter_init(&it, b->acc);
    while (g_hash_table_iter_next(&it, &key, &val))
      if (g_str_has_prefix(key, pre) && ((char *)key)[strlen(pre)] == '.' && !strstr(key, ".step_")) {
        flops += acc_total(val);
        wb += ((Acc *)val)->wbytes;
      }
    char n[64];
    g_snprintf(n, sizeof n, "%s.work", pre);
    bench_fig_add(bench_fig(b, n, "TFLOP", "{\"width\": %d, \"height\": %d, \"steps\": %d, "
                            "\"weight_gb\": %.1f}", b->size, b->size, b->steps, wb / 1e9),
                  flops / 1e12);
  }
  /* the design questions, answered from the figures above */
  for (int k = 0; k < 2; k++) {
    const char *pre = k ? "edit" : "t2i";
    if (!bench_has_stage(b, pre)) continue;
    char l[64];
    g_snprintf(l, sizeof l, "%s.step_cfg", pre);
    Acc *st = g_hash_table_lookup(b->acc, l);
    g_snprintf(l, sizeof l, "%s.", pre);
    const double t0 = proj_sum(b, l, ROOF_BASE), tb = proj_sum(b, l, ROOF_CFG_BATCH),
                 tw = proj_sum(b, l, ROOF_FP8_W), t8 = proj_sum(b, l, ROOF_FP8_W8A8);
    if (st)
      g_ptr_array_add(notes, g_strdup_printf(
        "%s %dx%d, %d steps on %s: batching the CFG branches of a step into one forward "
        "takes a CFG step from %.1f to %.1f ms and the whole call from %.2f to %.2f s (%.1f%% "
        "saved; %d latent tokens a branch: %s).", pre, b->size, b->size, b->steps, b->dev->name,
        st->proj[ROOF_BASE] * 1e3, st->proj[ROOF_CFG_BATCH] * 1e3, t0, tb, 100 * (t0 - tb) / t0,
        (b->size / 16) * (b->size / 16),
        (t0 - tb) / t0 < 0.1 ? "the GEMMs are compute-bound, reading the weights once saves little"
                             : "the branches are small enough for weight reads and launches to count"));
    g_ptr_array_add(notes, g_strdup_printf(
      "%s %dx%d on %s: FP8 weights with bf16 math: %.2f s -> %.2f s (%.1f%%); FP8 weights and "
      "activations (FP8 tensor cores): %.2f s (%.1f%%).", pre, b->size, b->size, b->dev->name,
      t0, tw, 100 * (t0 - tw) / t0, t8, 100 * (t0 - t8) / t0));
  }
  if ((a = g_hash_table_lookup(b->acc, "llm.decode")))
    g_ptr_array_add(notes, g_strdup_printf(
      "decode on %s: %.1f tok/s in bf16, %.1f tok/s with FP8 weights (memory-bound: the "
      "weights are %.2f GB a token).", b->dev->name, b->decode_tokens / a->proj[ROOF_BASE],
      b->decode_tokens / a->proj[ROOF_FP8_W], a->wbytes / b->decode_tokens / 1e9));
}

/* ---- the results file ---------------------------------------------------------------- */

static char *run_git(const char *args) {
  char *cmd = g_strdup_printf("git -C %s %s", BAGEL_SOURCE_DIR, args), *out = NULL;
  int status = 1;
  if (!g_spawn_command_line_sync(cmd, &out, NULL, &status, NULL) || status != 0) {
    g_free(out);
    out = NULL;
  }
  g_free(cmd);
  if (out) g_strstrip(out);
  return out;
}

static void add_figure(JsonBuilder *jb, const Fig *f) {
  json_builder_set_member_name(jb, f->name);
  json_builder_begin_object(jb);
  json_builder_set_member_name(jb, "unit");
  json_builder_add_string_value(jb, f->unit);
  json_builder_set_member_name(jb, "runs");
  json_builder_begin_array(jb);
  for (int i = 0; i < f->n; i++) json_builder_add_double_value(jb, f->runs[i]);
  json_builder_end_array(jb);
  json_builder_set_member_name(jb, "median");
  json_builder_add_double_value(jb, bench_fig_median(f));
  JsonNode *st = json_from_string(f->settings, NULL);
  if (st) {
    json_builder_set_member_name(jb, "settings");
    json_builder_add_value(jb, st);
  }
  if (f->util >= 0) {
    json_builder_set_member_name(jb, "util");
    json_builder_add_double_value(jb, f->util);
    json_builder_set_member_name(jb, "util_of");
    json_builder_add_string_value(jb, f->util_of);
  }
  if (f->util_w >= 0) {
    json_builder_set_member_name(jb, "util_weights_read");
    json_builder_add_double_value(jb, f->util_w);
  }
  json_builder_end_object(jb);
}

static void add_probe_figure(JsonBuilder *jb, const char *name, const ProbeFigure *f, double scale) {
  json_builder_set_member_name(jb, name);
  json_builder_add_double_value(jb, f->median * scale);
}

static gboolean write_results(Bench *b, const char *label, GPtrArray *notes, GError **error) {
  JsonBuilder *jb = json_builder_new();
  json_builder_begin_object(jb);
  const char *sha = b->commit, *dirty = b->dirty;
  GDateTime *now = g_date_time_new_now_utc();
  char *date = g_date_time_format_iso8601(now);
  const gboolean measured = !b->dev;
  struct utsname un;
  uname(&un);
#define KV(k, v) do { json_builder_set_member_name(jb, k); json_builder_add_string_value(jb, v); } while (0)
  KV("schema", "gimp-bagel-bench/1");
  KV("commit", sha ? sha : "unknown");
  json_builder_set_member_name(jb, "dirty");
  json_builder_add_boolean_value(jb, dirty && *dirty);
  KV("date", date);
  char dev[256];
  if (measured) g_snprintf(dev, sizeof dev, "%s, %d threads", b->probe.cpu, b->threads);
  else g_snprintf(dev, sizeof dev, "%s", b->dev->name);
  KV("device", dev);
  KV("backend", measured ? "cpu-fast" : "count");
  json_builder_set_member_name(jb, "measured");
  json_builder_add_boolean_value(jb, measured);
  char drv[256];
  g_snprintf(drv, sizeof drv, "Linux %s; gcc %d.%d; fast GEMM kernel %s", un.release,
             __GNUC__, __GNUC_MINOR__, b->gemm_kernel);
  KV("driver", drv);
  KV("checkpoint", label);
  json_builder_set_member_name(jb, "limits");
  json_builder_begin_object(jb);
  if (measured) {
    add_probe_figure(jb, "peak_tflops_bf16", &b->probe.bf16_gflops, 1e-3);
    add_probe_figure(jb, "peak_tflops_fp32", &b->probe.fp32_gflops, 1e-3);
    add_probe_figure(jb, "peak_tflops_amx_bf16", &b->probe.amx_bf16_gflops, 1e-3);
    add_probe_figure(jb, "mem_gb_s", &b->probe.mem_gb_s, 1);
    if (b->weights_gb_s.n) {
      add_probe_figure(jb, "weights_read_gb_s", &b->weights_gb_s, 1);
      KV("weights_read_how", "streaming read over the checkpoint's own mapped und-layer and lm_head "
                             "weights, in place (median of 3); util_weights_read is a share of it");
    }
    KV("how", "measured by tests/bench/probe.c in this run (median of 5; VDPBF16PS, FMA, TDPBF16PS, streaming read)");
    KV("amx", b->probe.amx_note);
  } else {
    json_builder_set_member_name(jb, "peak_tflops_bf16");
    json_builder_add_double_value(jb, b->dev->bf16_tflops);
    json_builder_set_member_name(jb, "peak_tflops_tf32");
    json_builder_add_double_value(jb, b->dev->tf32_tflops);
    json_builder_set_member_name(jb, "mem_gb_s");
    json_builder_add_double_value(jb, b->dev->hbm_gb_s);
    char how[256];
    g_snprintf(how, sizeof how, "published dense peaks; efficiencies gemm %.2f, attention %.2f, "
               "conv %.2f, memory %.2f, %.0f us per op (tests/bench/roofline.c)", roof_eff.gemm,
               roof_eff.attention, roof_eff.conv, roof_eff.memory, roof_eff.launch_s * 1e6);
    KV("how", how);
  }
  json_builder_end_object(jb);
  if (measured) {
    json_builder_set_member_name(jb, "load");
    json_builder_begin_object(jb);
    json_builder_set_member_name(jb, "loadavg_before");
    json_builder_add_double_value(jb, b->probe.load_before[0]);
    double l[3];
    probe_loadavg(l);
    json_builder_set_member_name(jb, "loadavg_after");
    json_builder_add_double_value(jb, l[0]);
    json_builder_end_object(jb);
  }
  json_builder_set_member_name(jb, "figures");
  json_builder_begin_object(jb);
  for (int i = 0; i < b->nfigs; i++) add_figure(jb, &b->figs[i]);
  json_builder_end_object(jb);
  json_builder_set_member_name(jb, "peers");
  json_builder_begin_object(jb);
  if (b->npeer) {
    json_builder_set_member_name(jb, b->peer_name);
    json_builder_begin_object(jb);
    Fig pf = {.unit = "tok/s", .n = b->npeer, .util = -1, .util_w = -1}, df = pf;
    g_strlcpy(pf.name, "prefill", sizeof pf.name);
    g_strlcpy(df.name, "decode", sizeof df.name);
    memcpy(pf.runs, b->peer_prefill, sizeof(double) * (size_t)b->npeer);
    memcpy(df.runs, b->peer_decode, sizeof(double) * (size_t)b->npeer);
    pf.settings = g_strdup_printf("{\"prompt_tokens\": %d}", b->prompt_tokens);
    df.settings = g_strdup_printf("{\"tokens\": %d}", b->decode_tokens);
    add_figure(jb, &pf);
    add_figure(jb, &df);
    g_free(pf.settings);
    g_free(df.settings);
    json_builder_end_object(jb);
  }
  json_builder_end_object(jb);
  json_builder_set_member_name(jb, "notes");
  json_builder_begin_array(jb);
  for (guint i = 0; i < notes->len; i++) json_builder_add_string_value(jb, notes->pdata[i]);
  json_builder_end_array(jb);
  json_builder_end_object(jb);
#undef KV
  JsonGenerator *gen = json_generator_new();
  json_generator_set_pretty(gen, TRUE);
  JsonNode *root = json_builder_get_root(jb);
  json_generator_set_root(gen, root);
  gboolean ok = TRUE;
  if (b->out) ok = json_generator_to_file(gen, b->out, error);
  else {
    char *txt = json_generator_to_data(gen, NULL);
    printf("%s\n", txt);
    g_free(txt);
  }
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(jb);
  g_free(date);
  g_date_time_unref(now);
  return ok;
}

static void print_summary(const Bench *b, GPtrArray *notes) {
  FILE *o = b->out ? stdout : stderr;
  if (!b->dev)
    fprintf(o, "limits: read %.1f GB/s, fp32 FMA %.0f GFLOP/s, VDPBF16PS %.0f GFLOP/s, AMX %.0f "
            "GFLOP/s; load %.2f\n", b->probe.mem_gb_s.median, b->probe.fp32_gflops.median,
            b->probe.bf16_gflops.median, b->probe.amx_bf16_gflops.median, b->probe.load_before[0]);
  else
    fprintf(o, "PROJECTED (not measured) on %s\n", b->dev->name);
  for (int i = 0; i < b->nfigs; i++) {
    const Fig *f = &b->figs[i];
    if (b->dev && strchr(f->name, '@')) continue;
    fprintf(o, "  %-28s %10.4g %-5s", f->name, bench_fig_median(f), f->unit);
    if (f->util >= 0) fprintf(o, "  %5.1f%% of %s", 100 * f->util, f->util_of);
    if (f->util_w >= 0) fprintf(o, ", %.1f%% of the weights' own read rate", 100 * f->util_w);
    fprintf(o, "\n");
  }
  for (guint i = 0; i < notes->len; i++) fprintf(o, "  note: %s\n", (char *)notes->pdata[i]);
}

int cmd_bench(int argc, char **argv) {
  /* passive OpenMP waiting: bagel's main (bagel_prefer_passive_threads) */
  Bench *b = g_new0(Bench, 1);
  /* the source the figures belong to: taken now, before the (long) runs */
  b->commit = run_git("rev-parse HEAD");
  b->dirty = run_git("status --porcelain --untracked-files=no");
  b->runs = 3;
  b->steps = 50;
  b->prompt_tokens = 512;
  b->decode_tokens = 64;
  b->image_size = 980;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &b->model, "checkpoint directory", "DIR"},
    {"backend", 0, 0, G_OPTION_ARG_STRING, &b->backend, "cpu (measure; default) or count", "KIND"},
    {"project", 0, 0, G_OPTION_ARG_STRING, &b->project, "with --backend count: h100 or h200", "DEV"},
    {"stages", 0, 0, G_OPTION_ARG_STRING, &b->stages,
     "comma list of open,llm,describe,vae,t2i,edit (cpu default: open,llm,describe,vae; "
     "count: llm,describe,t2i,edit)", "LIST"},
    {"runs", 0, 0, G_OPTION_ARG_INT, &b->runs, "runs per stage (median; default 3)", "N"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &b->threads, "CPU threads (default: all cores)", "N"},
    {"size", 0, 0, G_OPTION_ARG_INT, &b->size, "image side for t2i/edit/vae (cpu 512, count 1024)", "PX"},
    {"steps", 0, 0, G_OPTION_ARG_INT, &b->steps, "sampling steps (default 50)", "N"},
    {"prompt-tokens", 0, 0, G_OPTION_ARG_INT, &b->prompt_tokens, "llm prefill length (512)", "N"},
    {"decode-tokens", 0, 0, G_OPTION_ARG_INT, &b->decode_tokens, "tokens decoded (64)", "N"},
    {"image-size", 0, 0, G_OPTION_ARG_INT, &b->image_size, "describe image side (980)", "PX"},
    {"mlock", 0, 0, G_OPTION_ARG_NONE, &b->mlock, "lock the weights the stages use in RAM", NULL},
    {"und-only", 0, 0, G_OPTION_ARG_NONE, &b->und_only,
     "with --mlock: lock only the understanding side (LLM und expert, ViT)", NULL},
    {"peer-cmd", 0, 0, G_OPTION_ARG_STRING, &b->peer_cmd,
     "command run after each llm run, printing {name, prefill_tok_s, decode_tok_s}", "CMD"},
    {"peer-after", 0, 0, G_OPTION_ARG_NONE, &b->peer_after,
     "run the peer after all our runs instead of between them (when both models do not fit "
     "in RAM together)", NULL},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &b->out, "results file (default: JSON on stdout)", "FILE"},
    {NULL},
  };
  GOptionContext *octx = g_option_context_new("- time the pipeline stage by stage");
  g_option_context_add_main_entries(octx, entries, NULL);
  GError *error = NULL;
  int rc = 1;
  GPtrArray *notes = g_ptr_array_new_with_free_func(g_free);
  if (!g_option_context_parse(octx, &argc, &argv, &error)) goto out;
  const gboolean count = b->backend && !strcmp(b->backend, "count");
  if (!b->model || (b->backend && !count && strcmp(b->backend, "cpu")) ||
      (count != (b->project != NULL)) || b->runs < 1 || b->runs > MAX_RUNS ||
      b->steps < 2 || b->steps > MAX_STEPS || b->prompt_tokens < 1 || b->decode_tokens < 1) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "usage: --model DIR [--backend cpu] "
                "| --backend count --project h100|h200; runs 1..%d, steps 2..%d", MAX_RUNS,
                MAX_STEPS);
    goto out;
  }
  if (count && !(b->dev = roof_device(b->project))) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--project %s: expected h100 or h200",
                b->project);
    goto out;
  }
  if (!b->size) b->size = count ? 1024 : 512;
  if (!b->stages) b->stages = g_strdup(count ? "llm,describe,t2i,edit" : "open,llm,describe,vae");
  g_strlcpy(b->gemm_kernel, "none", sizeof b->gemm_kernel);
  if (!count) {
    BkBackend *fb = bk_cpu_fast_new(b->threads);
    if (fb) g_strlcpy(b->gemm_kernel, bk_cpu_fast_gemm_kernel(fb), sizeof b->gemm_kernel);
    bk_backend_free(fb);
    if (!bench_run_measured(b, &error)) goto out;
  }
  if (!bench_run_count(b, &error)) goto out;
  if (count) projected_figures(b, notes);
  else measured_utils(b);
  print_summary(b, notes);
  if (!write_results(b, b->ckpt_label, notes, &error)) goto out;
  rc = 0;
out:
  if (rc) cli_fail("bench", error);
  g_ptr_array_free(notes, TRUE);
  g_option_context_free(octx);
  for (int i = 0; i < b->nfigs; i++) g_free(b->figs[i].settings);
  if (b->acc) g_hash_table_destroy(b->acc);
  g_free(b->model);
  g_free(b->backend);
  g_free(b->project);
  g_free(b->stages);
  g_free(b->out);
  g_free(b->peer_cmd);
  g_free(b->ckpt_label);
  g_free(b->commit);
  g_free(b->dirty);
  g_free(b);
  return rc;
}
