/* engine/cli/mkckpt.c — bagel-mkckpt: write a BAGEL checkpoint directory in the official
 * layout with deterministic random weights.
 *
 *   bagel-mkckpt --config tiny|medium|7b|FILE.json [--seed N] --out DIR [--tokenizer DIR]
 *
 * Weights are drawn exactly as the golden oracle drew them (its manifest): in the order
 * of the model's parameters, ema weights from torch.manual_seed(seed) and VAE weights from
 * torch.manual_seed(seed + 1), each tensor one torch.randn call, then
 *   Linear/conv weights N(0,1)/sqrt(fan_in), biases 0.1·N, norm weights 1 + 0.2·N,
 *   embeddings N(0,1), lm_head rows of ids without a token zeroed,
 *   the two 2-D sin-cos position tables computed, not drawn (spec §1.6).
 * With --config tiny --seed 0 this reproduces ../shared/golden/tiny/model byte for byte,
 * so the repository carries no weights.  Tensors are streamed to disk: the 29 GB 7B
 * checkpoint is written with a few MB of RAM. */
#include <glib.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bagel-config.h"
#include "bagel.h"
#include "checkpoint.h"
#include "rng.h"

/* Qwen2.5's vocabulary holds 151,665 tokens (151,643 BPE + 22 added); lm_head rows of
 * larger ids have no token and are zero in the oracle's checkpoints. */
#define QWEN2_N_TOKENS 151665

typedef struct {
  StWriter *w;
  const CkptSpec *spec;
  int64_t cols;
  uint8_t *buf;
  size_t buf_size;
  GError **error;
  gboolean ok;
} Emit;

static void emit_values(void *user, uint64_t off, const float *v, size_t k) {
  Emit *e = user;
  if (!e->ok) return;
  const CkptSpec *s = e->spec;
  size_t es = st_dtype_size(s->dtype);
  if (k * es > e->buf_size) {
    e->buf_size = k * es;
    e->buf = g_realloc(e->buf, e->buf_size);
  }
  float scale = s->init == CKPT_INIT_FAN_IN ? (float)sqrt((double)s->fan_in) : 1.0f;
  gboolean zero_rows = g_str_has_suffix(s->name, "lm_head.weight");
  for (size_t i = 0; i < k; i++) {
    float x = v[i];
    switch (s->init) {
    case CKPT_INIT_FAN_IN: x = x / scale; break;
    case CKPT_INIT_BIAS: x = 0.1f * x; break;
    case CKPT_INIT_NORM: x = 1.0f + 0.2f * x; break;
    default: break;
    }
    if (zero_rows && (int64_t)((off + i) / (uint64_t)e->cols) >= QWEN2_N_TOKENS) x = 0.0f;
    if (s->dtype == ST_BF16) ((uint16_t *)e->buf)[i] = bk_f32_to_bf16(x);
    else ((float *)e->buf)[i] = x;
  }
  e->ok = st_writer_write(e->w, s->name, off * es, e->buf, k * es, e->error);
}

/* The fixed 2-D sin-cos table (spec §1.6), computed in float64 like numpy, then fp32,
 * then the checkpoint dtype: emb[r·G + c] = [sin(c·ω), cos(c·ω), sin(r·ω), cos(r·ω)]. */
static gboolean write_sincos(Emit *e) {
  const CkptSpec *s = e->spec;
  const int G = s->sincos_grid;
  const int64_t D = s->shape[1], Q = D / 4;
  double *omega = g_new(double, Q);
  for (int64_t k = 0; k < Q; k++) omega[k] = 1.0 / pow(10000.0, (double)k / (double)Q);
  float *row = g_new(float, D);
  for (int r = 0; r < G && e->ok; r++) {
    for (int c = 0; c < G && e->ok; c++) {
      for (int64_t k = 0; k < Q; k++) {
        row[k] = (float)sin((double)c * omega[k]);
        row[Q + k] = (float)cos((double)c * omega[k]);
        row[2 * Q + k] = (float)sin((double)r * omega[k]);
        row[3 * Q + k] = (float)cos((double)r * omega[k]);
      }
      emit_values(e, (uint64_t)(r * G + c) * (uint64_t)D, row, (size_t)D);
    }
  }
  g_free(row);
  g_free(omega);
  return e->ok;
}

static gboolean write_file(const char *path, GPtrArray *specs, CkptFileId which, uint64_t seed,
                           GError **error) {
  StWriter *w = st_writer_new();
  st_writer_set_metadata(w, "format", "pt");
  for (guint i = 0; i < specs->len; i++) {
    const CkptSpec *s = specs->pdata[i];
    if (s->file == which) st_writer_add(w, s->name, s->dtype, s->ndim, s->shape);
  }
  if (!st_writer_begin(w, path, error)) {
    st_writer_free(w);
    return FALSE;
  }
  TorchGen g;
  tg_seed(&g, seed);
  Emit e = {.w = w, .error = error, .ok = TRUE};
  for (guint i = 0; i < specs->len && e.ok; i++) {
    const CkptSpec *s = specs->pdata[i];
    if (s->file != which) continue;
    e.spec = s;
    e.cols = s->shape[s->ndim - 1];
    if (s->init == CKPT_INIT_SINCOS) write_sincos(&e);
    else tg_randn_stream(&g, (uint64_t)ckpt_spec_numel(s), emit_values, &e);
  }
  g_free(e.buf);
  if (!e.ok) {
    st_writer_free(w);
    return FALSE;
  }
  return st_writer_finish(w, error);
}

static gboolean copy_file(const char *from_dir, const char *to_dir, const char *name,
                          gboolean required, GError **error) {
  char *src = g_build_filename(from_dir, name, NULL);
  char *dst = g_build_filename(to_dir, name, NULL);
  gboolean ok = TRUE;
  if (g_file_test(src, G_FILE_TEST_IS_REGULAR)) {
    char *data;
    gsize len;
    ok = g_file_get_contents(src, &data, &len, error) &&
         g_file_set_contents(dst, data, (gssize)len, error);
    if (ok) g_free(data);
  } else if (required) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "tokenizer file %s not found", src);
    ok = FALSE;
  }
  g_free(src);
  g_free(dst);
  return ok;
}

static char *default_tokenizer_dir(void) {
  const char *candidates[] = {BAGEL_SOURCE_DIR "/tests/data/qwen2-tokenizer",
                              BAGEL_INSTALLED_RESOURCES_DIR "/qwen2-tokenizer"};
  for (unsigned i = 0; i < G_N_ELEMENTS(candidates); i++) {
    char *p = g_build_filename(candidates[i], "vocab.json", NULL);
    gboolean ok = g_file_test(p, G_FILE_TEST_IS_REGULAR);
    g_free(p);
    if (ok) return g_strdup(candidates[i]);
  }
  return NULL;
}

int main(int argc, char **argv) {
  char *config = NULL, *out = NULL, *tokdir = NULL;
  gint64 seed = 0;
  GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_STRING, &config, "tiny, medium, 7b or a FILE.json", "NAME"},
    {"seed", 's', 0, G_OPTION_ARG_INT64, &seed, "random seed (default 0)", "N"},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "output directory", "DIR"},
    {"tokenizer", 't', 0, G_OPTION_ARG_FILENAME, &tokdir,
     "copy vocab.json, merges.txt, tokenizer_config.json from DIR", "DIR"},
    {NULL},
  };
  GOptionContext *octx = g_option_context_new("- write a BAGEL checkpoint with random weights");
  g_option_context_add_main_entries(octx, entries, NULL);
  GError *error = NULL;
  int rc = 1;
  if (!g_option_context_parse(octx, &argc, &argv, &error)) goto fail;
  if (!config || !out) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--config and --out are required");
    goto fail;
  }
  if (seed < 0 || seed > G_MAXINT64 - 1) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "--seed must be >= 0");
    goto fail;
  }
  ModelConfig cfg;
  if (!model_config_preset(config, &cfg)) {
    if (!g_str_has_suffix(config, ".json")) {
      g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                  "unknown config \"%s\" (tiny, medium, 7b or a FILE.json)", config);
      goto fail;
    }
    if (!model_config_load_json(config, &cfg, &error)) goto fail;
  }
  if (!tokdir) tokdir = default_tokenizer_dir();
  if (!tokdir) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "no tokenizer files found: pass --tokenizer DIR (a directory with vocab.json, "
                "merges.txt and tokenizer_config.json)");
    goto fail;
  }
  if (g_mkdir_with_parents(out, 0755) != 0) {
    g_set_error(&error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot create %s: %s", out,
                g_strerror(errno));
    goto fail;
  }
  GPtrArray *specs = ckpt_expected_tensors(&cfg);
  char *p = g_build_filename(out, "ema.safetensors", NULL);
  gboolean ok = write_file(p, specs, CKPT_FILE_EMA, (uint64_t)seed, &error);
  g_free(p);
  if (ok) {
    p = g_build_filename(out, "ae.safetensors", NULL);
    ok = write_file(p, specs, CKPT_FILE_AE, (uint64_t)seed + 1, &error);
    g_free(p);
  }
  g_ptr_array_unref(specs);
  if (!ok) goto fail;
  char *llm = llm_config_to_json(&cfg.llm), *vit = vit_config_to_json(&cfg.vit);
  char *lp = g_build_filename(out, "llm_config.json", NULL);
  char *vp = g_build_filename(out, "vit_config.json", NULL);
  ok = g_file_set_contents(lp, llm, -1, &error) && g_file_set_contents(vp, vit, -1, &error);
  g_free(llm);
  g_free(vit);
  g_free(lp);
  g_free(vp);
  if (!ok) goto fail;
  if (!copy_file(tokdir, out, "vocab.json", TRUE, &error) ||
      !copy_file(tokdir, out, "merges.txt", TRUE, &error) ||
      !copy_file(tokdir, out, "tokenizer_config.json", TRUE, &error) ||
      !copy_file(tokdir, out, "tokenizer.json", FALSE, &error))
    goto fail;
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "bagel-mkckpt: %s\n", error ? error->message : "failed");
  g_clear_error(&error);
done:
  g_option_context_free(octx);
  g_free(config);
  g_free(out);
  g_free(tokdir);
  return rc;
}
