/* engine/checkpoint.c — the expected-tensor table (spec §2.2–2.3) and checkpoint_open. */
#include "checkpoint.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "bagel.h"

static const char *component_names[CKPT_NCOMPONENTS] = {
  "llm (shared: embed_tokens, lm_head)", "llm understanding expert", "llm generation expert",
  "vit (SigLIP)", "connector", "generation head", "vae encoder", "vae decoder",
};

const char *ckpt_component_name(CkptComponent c) {
  return (unsigned)c < CKPT_NCOMPONENTS ? component_names[c] : "?";
}

int64_t ckpt_spec_numel(const CkptSpec *s) {
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
  return n;
}

static void spec_free(gpointer p) {
  CkptSpec *s = p;
  g_free(s->name);
  g_free(s);
}

typedef struct {
  GPtrArray *out;
  CkptFileId file;
  StDType dtype;
  CkptComponent comp;
} TableBuilder;

static CkptSpec *add(TableBuilder *b, CkptInit init, int ndim, const int64_t *shape,
                     const char *fmt, ...) G_GNUC_PRINTF(5, 6);

static CkptSpec *add(TableBuilder *b, CkptInit init, int ndim, const int64_t *shape,
                     const char *fmt, ...) {
  CkptSpec *s = g_new0(CkptSpec, 1);
  va_list ap;
  va_start(ap, fmt);
  s->name = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  s->file = b->file;
  s->dtype = b->dtype;
  s->ndim = ndim;
  for (int i = 0; i < ndim; i++) s->shape[i] = shape[i];
  s->component = b->comp;
  s->init = init;
  if (init == CKPT_INIT_FAN_IN) {
    int64_t fan = 1;
    for (int i = 1; i < ndim; i++) fan *= shape[i];
    s->fan_in = (int)fan;
  }
  g_ptr_array_add(b->out, s);
  return s;
}

/* Linear layer: weight [out, in] (+ bias [out]). */
static void linear(TableBuilder *b, const char *name, int64_t out, int64_t in, gboolean bias) {
  add(b, CKPT_INIT_FAN_IN, 2, (int64_t[]){out, in}, "%s.weight", name);
  if (bias) add(b, CKPT_INIT_BIAS, 1, (int64_t[]){out}, "%s.bias", name);
}

static void norm_w(TableBuilder *b, const char *name, int64_t n) {
  add(b, CKPT_INIT_NORM, 1, (int64_t[]){n}, "%s.weight", name);
}

static void layer_norm(TableBuilder *b, const char *name, int64_t n) {
  add(b, CKPT_INIT_NORM, 1, (int64_t[]){n}, "%s.weight", name);
  add(b, CKPT_INIT_BIAS, 1, (int64_t[]){n}, "%s.bias", name);
}

static void llm_layer(TableBuilder *b, const LlmConfig *c, int l) {
  const int64_t D = c->hidden, KV = (int64_t)c->kv_heads * c->head_dim, I = c->intermediate;
  char p[96];
  g_snprintf(p, sizeof p, "language_model.model.layers.%d", l);
  char n[160];
#define NAME(fmt) (g_snprintf(n, sizeof n, "%s." fmt, p), n)
  b->comp = CKPT_LLM_UND;
  linear(b, NAME("self_attn.q_proj"), D, D, TRUE);
  linear(b, NAME("self_attn.k_proj"), KV, D, TRUE);
  linear(b, NAME("self_attn.v_proj"), KV, D, TRUE);
  linear(b, NAME("self_attn.o_proj"), D, D, FALSE);
  norm_w(b, NAME("self_attn.q_norm"), c->head_dim);
  norm_w(b, NAME("self_attn.k_norm"), c->head_dim);
  b->comp = CKPT_LLM_GEN;
  norm_w(b, NAME("self_attn.q_norm_moe_gen"), c->head_dim);
  norm_w(b, NAME("self_attn.k_norm_moe_gen"), c->head_dim);
  linear(b, NAME("self_attn.q_proj_moe_gen"), D, D, TRUE);
  linear(b, NAME("self_attn.k_proj_moe_gen"), KV, D, TRUE);
  linear(b, NAME("self_attn.v_proj_moe_gen"), KV, D, TRUE);
  linear(b, NAME("self_attn.o_proj_moe_gen"), D, D, FALSE);
  b->comp = CKPT_LLM_UND;
  linear(b, NAME("mlp.gate_proj"), I, D, FALSE);
  linear(b, NAME("mlp.up_proj"), I, D, FALSE);
  linear(b, NAME("mlp.down_proj"), D, I, FALSE);
  b->comp = CKPT_LLM_GEN;
  linear(b, NAME("mlp_moe_gen.gate_proj"), I, D, FALSE);
  linear(b, NAME("mlp_moe_gen.up_proj"), I, D, FALSE);
  linear(b, NAME("mlp_moe_gen.down_proj"), D, I, FALSE);
  b->comp = CKPT_LLM_UND;
  norm_w(b, NAME("input_layernorm"), D);
  b->comp = CKPT_LLM_GEN;
  norm_w(b, NAME("input_layernorm_moe_gen"), D);
  b->comp = CKPT_LLM_UND;
  norm_w(b, NAME("post_attention_layernorm"), D);
  b->comp = CKPT_LLM_GEN;
  norm_w(b, NAME("post_attention_layernorm_moe_gen"), D);
#undef NAME
}

static void vit_layer(TableBuilder *b, const VitConfig *c, int l) {
  const int64_t D = c->hidden, I = c->intermediate;
  char n[160];
#define NAME(fmt) (g_snprintf(n, sizeof n, "vit_model.vision_model.encoder.layers.%d." fmt, l), n)
  linear(b, NAME("self_attn.k_proj"), D, D, TRUE);
  linear(b, NAME("self_attn.v_proj"), D, D, TRUE);
  linear(b, NAME("self_attn.q_proj"), D, D, TRUE);
  linear(b, NAME("self_attn.out_proj"), D, D, TRUE);
  layer_norm(b, NAME("layer_norm1"), D);
  linear(b, NAME("mlp.fc1"), I, D, TRUE);
  linear(b, NAME("mlp.fc2"), D, I, TRUE);
  layer_norm(b, NAME("layer_norm2"), D);
#undef NAME
}

static void conv(TableBuilder *b, const char *name, int64_t out, int64_t in, int k) {
  add(b, CKPT_INIT_FAN_IN, 4, (int64_t[]){out, in, k, k}, "%s.weight", name);
  add(b, CKPT_INIT_BIAS, 1, (int64_t[]){out}, "%s.bias", name);
}

static void resblock(TableBuilder *b, const char *p, int64_t in, int64_t out) {
  char n[160];
#define NAME(fmt) (g_snprintf(n, sizeof n, "%s." fmt, p), n)
  layer_norm(b, NAME("norm1"), in);
  conv(b, NAME("conv1"), out, in, 3);
  layer_norm(b, NAME("norm2"), out);
  conv(b, NAME("conv2"), out, out, 3);
  if (in != out) conv(b, NAME("nin_shortcut"), out, in, 1);
#undef NAME
}

static void attnblock(TableBuilder *b, const char *p, int64_t c) {
  char n[160];
  g_snprintf(n, sizeof n, "%s.norm", p);
  layer_norm(b, n, c);
  const char *parts[] = {"q", "k", "v", "proj_out"};
  for (int i = 0; i < 4; i++) {
    g_snprintf(n, sizeof n, "%s.%s", p, parts[i]);
    conv(b, n, c, c, 1);
  }
}

static void vae_tables(TableBuilder *b, const VaeConfig *v) {
  char n[160];
  const int L = v->levels;
  /* encoder */
  b->comp = CKPT_VAE_ENC;
  conv(b, "encoder.conv_in", v->ch, v->in_channels, 3);
  int64_t in = v->ch;
  for (int i = 0; i < L; i++) {
    int64_t out = (int64_t)v->ch * v->ch_mult[i];
    for (int j = 0; j < v->num_res_blocks; j++) {
      g_snprintf(n, sizeof n, "encoder.down.%d.block.%d", i, j);
      resblock(b, n, in, out);
      in = out;
    }
    if (i != L - 1) {
      g_snprintf(n, sizeof n, "encoder.down.%d.downsample.conv", i);
      conv(b, n, in, in, 3);
    }
  }
  resblock(b, "encoder.mid.block_1", in, in);
  attnblock(b, "encoder.mid.attn_1", in);
  resblock(b, "encoder.mid.block_2", in, in);
  layer_norm(b, "encoder.norm_out", in);
  conv(b, "encoder.conv_out", 2 * v->z_channels, in, 3);
  /* decoder: the official module creates up.0 first although it runs up.{L-1} first */
  b->comp = CKPT_VAE_DEC;
  int64_t top = (int64_t)v->ch * v->ch_mult[L - 1];
  conv(b, "decoder.conv_in", top, v->z_channels, 3);
  resblock(b, "decoder.mid.block_1", top, top);
  attnblock(b, "decoder.mid.attn_1", top);
  resblock(b, "decoder.mid.block_2", top, top);
  for (int i = 0; i < L; i++) {
    int64_t out = (int64_t)v->ch * v->ch_mult[i];
    /* input width of level i's first block: the level above's width (top level: top) */
    int64_t bin = i == L - 1 ? top : (int64_t)v->ch * v->ch_mult[i + 1];
    for (int j = 0; j <= v->num_res_blocks; j++) {
      g_snprintf(n, sizeof n, "decoder.up.%d.block.%d", i, j);
      resblock(b, n, j == 0 ? bin : out, out);
    }
    if (i != 0) {
      g_snprintf(n, sizeof n, "decoder.up.%d.upsample.conv", i);
      conv(b, n, out, out, 3);
    }
  }
  layer_norm(b, "decoder.norm_out", v->ch * v->ch_mult[0]);
  conv(b, "decoder.conv_out", v->out_channels, (int64_t)v->ch * v->ch_mult[0], 3);
}

GPtrArray *ckpt_expected_tensors(const ModelConfig *cfg) {
  const LlmConfig *c = &cfg->llm;
  const VitConfig *vc = &cfg->vit;
  const BagelGeometry *g = &cfg->geo;
  TableBuilder b = {g_ptr_array_new_with_free_func(spec_free), CKPT_FILE_EMA, ST_BF16,
                    CKPT_LLM_SHARED};
  const int64_t D = c->hidden;

  add(&b, CKPT_INIT_NORMAL, 2, (int64_t[]){c->vocab, D}, "language_model.model.embed_tokens.weight");
  for (int l = 0; l < c->layers; l++) llm_layer(&b, c, l);
  b.comp = CKPT_LLM_UND;
  norm_w(&b, "language_model.model.norm", D);
  b.comp = CKPT_LLM_GEN;
  norm_w(&b, "language_model.model.norm_moe_gen", D);
  b.comp = CKPT_LLM_SHARED;
  linear(&b, "language_model.lm_head", c->vocab, D, FALSE);

  b.comp = CKPT_GEN_HEAD;
  linear(&b, "time_embedder.mlp.0", D, 256, TRUE);
  linear(&b, "time_embedder.mlp.2", D, D, TRUE);
  linear(&b, "vae2llm", D, g->latent_channels, TRUE);
  linear(&b, "llm2vae", g->latent_channels, D, TRUE);
  CkptSpec *s = add(&b, CKPT_INIT_SINCOS, 2,
                    (int64_t[]){(int64_t)g->latent_grid * g->latent_grid, D},
                    "latent_pos_embed.pos_embed");
  s->sincos_grid = g->latent_grid;

  b.comp = CKPT_VIT;
  const int64_t vpos = (int64_t)(vc->image_size / vc->patch) * (vc->image_size / vc->patch);
  add(&b, CKPT_INIT_NORMAL, 2, (int64_t[]){vpos, vc->hidden},
      "vit_model.vision_model.embeddings.position_embedding.weight");
  linear(&b, "vit_model.vision_model.embeddings.patch_embedding", vc->hidden,
         (int64_t)vc->patch * vc->patch * vc->channels, TRUE);
  for (int l = 0; l < vc->layers; l++) vit_layer(&b, vc, l);
  layer_norm(&b, "vit_model.vision_model.post_layernorm", vc->hidden);

  b.comp = CKPT_CONNECTOR;
  linear(&b, "connector.fc1", D, vc->hidden, TRUE);
  linear(&b, "connector.fc2", D, D, TRUE);
  s = add(&b, CKPT_INIT_SINCOS, 2, (int64_t[]){(int64_t)g->vit_grid * g->vit_grid, D},
          "vit_pos_embed.pos_embed");
  s->sincos_grid = g->vit_grid;

  b.file = CKPT_FILE_AE;
  b.dtype = ST_F32;
  vae_tables(&b, &cfg->vae);
  return b.out;
}

/* ---- opening a directory ------------------------------------------------------------ */

static const char *required_files[] = {"ema.safetensors", "ae.safetensors", "llm_config.json",
                                       "vit_config.json", "tokenizer_config.json"};

static char *join(const char *dir, const char *file) { return g_build_filename(dir, file, NULL); }

static gboolean exists(const char *dir, const char *file) {
  char *p = join(dir, file);
  gboolean ok = g_file_test(p, G_FILE_TEST_IS_REGULAR);
  g_free(p);
  return ok;
}

static gboolean has_vocab_merges(const char *dir) {
  return exists(dir, "vocab.json") && exists(dir, "merges.txt");
}

char *ckpt_download_hint(const char *dir) {
  return g_strdup_printf("get the model with:\n  huggingface-cli download %s --local-dir %s",
                         BAGEL_HF_REPO, dir);
}

gboolean ckpt_dir_looks_complete(const char *dir) {
  for (unsigned i = 0; i < G_N_ELEMENTS(required_files); i++)
    if (!exists(dir, required_files[i])) return FALSE;
  return has_vocab_merges(dir) || exists(dir, "tokenizer.json");
}

static gboolean check_files(const char *dir, GError **error) {
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    char *hint = ckpt_download_hint(dir);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "model directory %s does not exist; %s",
                dir, hint);
    g_free(hint);
    return FALSE;
  }
  GString *missing = g_string_new(NULL);
  for (unsigned i = 0; i < G_N_ELEMENTS(required_files); i++)
    if (!exists(dir, required_files[i]))
      g_string_append_printf(missing, "%s%s", missing->len ? ", " : "", required_files[i]);
  if (!has_vocab_merges(dir) && !exists(dir, "tokenizer.json"))
    g_string_append_printf(missing, "%s%s", missing->len ? ", " : "",
                           "vocab.json + merges.txt (or tokenizer.json)");
  if (missing->len) {
    char *hint = ckpt_download_hint(dir);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL,
                "%s is not a complete BAGEL-7B-MoT directory: missing %s; %s", dir, missing->str,
                hint);
    g_free(hint);
    g_string_free(missing, TRUE);
    return FALSE;
  }
  g_string_free(missing, TRUE);
  return TRUE;
}

/* Derive the tensor-shape part of the geometry (spec §1.8) from the ema file. */
static gboolean read_geometry(Checkpoint *ck, GError **error) {
  BagelGeometry *g = &ck->cfg.geo;
  g->latent_patch = 2;
  g->latent_channels = ck->cfg.vae.z_channels * g->latent_patch * g->latent_patch;
  struct { const char *name; int *out; } tabs[] = {
    {"latent_pos_embed.pos_embed", &g->latent_grid},
    {"vit_pos_embed.pos_embed", &g->vit_grid},
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(tabs); i++) {
    const StTensor *t = st_find(ck->ema, tabs[i].name);
    if (!t || t->ndim != 2) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" is %s", st_path(ck->ema),
                  tabs[i].name, t ? "not 2-D" : "missing");
      return FALSE;
    }
    int64_t rows = t->shape[0];
    int64_t grid = (int64_t)llround(sqrt((double)rows));
    if (grid <= 0 || grid * grid != rows || grid > 1024) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" has %" G_GINT64_FORMAT
                  " rows, not the square of a grid side", st_path(ck->ema), tabs[i].name, rows);
      return FALSE;
    }
    *tabs[i].out = (int)grid;
  }
  return TRUE;
}

static void describe_shape(GString *s, StDType dt, int nd, const int64_t *shape) {
  g_string_append_printf(s, "%s[", st_dtype_name(dt));
  for (int i = 0; i < nd; i++)
    g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
  g_string_append_c(s, ']');
}

static gboolean check_tensors(Checkpoint *ck, GError **error) {
  GString *problems = g_string_new(NULL);
  int n_problems = 0;
  GHashTable *expected_names = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 0; i < ck->expected->len; i++) {
    const CkptSpec *s = ck->expected->pdata[i];
    g_hash_table_add(expected_names, s->name);
    const StFile *f = s->file == CKPT_FILE_EMA ? ck->ema : ck->ae;
    const StTensor *t = st_find(f, s->name);
    gboolean ok = t && t->dtype == s->dtype && t->ndim == s->ndim;
    for (int d = 0; ok && d < s->ndim; d++) ok = t->shape[d] == s->shape[d];
    if (ok) continue;
    n_problems++;
    if (n_problems > 40) continue;   /* the count says the rest */
    g_string_append_printf(problems, "\n  %s: \"%s\" ", st_path(f), s->name);
    if (!t) {
      g_string_append(problems, "is missing (expected ");
    } else {
      g_string_append(problems, "is ");
      describe_shape(problems, t->dtype, t->ndim, t->shape);
      g_string_append(problems, ", expected ");
    }
    describe_shape(problems, s->dtype, s->ndim, s->shape);
    if (!t) g_string_append_c(problems, ')');
  }
  const StFile *files[2] = {ck->ema, ck->ae};
  for (int fi = 0; fi < 2; fi++) {
    for (size_t i = 0; i < st_count(files[fi]); i++) {
      const StTensor *t = st_get(files[fi], i);
      if (!g_hash_table_contains(expected_names, t->name))
        g_ptr_array_add(ck->warnings, g_strdup_printf("%s: unexpected tensor \"%s\" (not used)",
                                                      st_path(files[fi]), t->name));
    }
  }
  g_hash_table_unref(expected_names);
  if (n_problems) {
    if (n_problems > 40) g_string_append_printf(problems, "\n  … and %d more", n_problems - 40);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL,
                "%s does not match the configuration (%d problem%s):%s", ck->dir, n_problems,
                n_problems == 1 ? "" : "s", problems->str);
  }
  g_string_free(problems, TRUE);
  return n_problems == 0;
}

Checkpoint *checkpoint_open(const char *dir, GError **error) {
  if (!check_files(dir, error)) return NULL;
  Checkpoint *ck = g_new0(Checkpoint, 1);
  ck->dir = g_strdup(dir);
  ck->warnings = g_ptr_array_new_with_free_func(g_free);
  ck->has_vocab_merges = has_vocab_merges(dir);
  ck->has_tokenizer_json = exists(dir, "tokenizer.json");
  char *p;
  gboolean ok;
  p = join(dir, "llm_config.json");
  ok = llm_config_load(p, &ck->cfg.llm, error);
  g_free(p);
  if (!ok) goto fail;
  p = join(dir, "vit_config.json");
  ok = vit_config_load(p, &ck->cfg.vit, error);
  g_free(p);
  if (!ok) goto fail;
  p = join(dir, "ema.safetensors");
  ck->ema = st_open(p, error);
  g_free(p);
  if (!ck->ema) goto fail;
  p = join(dir, "ae.safetensors");
  ck->ae = st_open(p, error);
  g_free(p);
  if (!ck->ae) goto fail;
  if (!vae_config_from_file(ck->ae, &ck->cfg.vae, error)) goto fail;
  if (!read_geometry(ck, error)) goto fail;
  ck->expected = ckpt_expected_tensors(&ck->cfg);
  if (!check_tensors(ck, error)) goto fail;
  return ck;
fail:
  checkpoint_free(ck);
  return NULL;
}

void checkpoint_free(Checkpoint *ck) {
  if (!ck) return;
  st_close(ck->ema);
  st_close(ck->ae);
  if (ck->expected) g_ptr_array_unref(ck->expected);
  g_ptr_array_unref(ck->warnings);
  g_free(ck->dir);
  g_free(ck);
}

const StTensor *ckpt_tensor(const Checkpoint *ck, const char *name) {
  const StTensor *t = st_find(ck->ema, name);
  return t ? t : st_find(ck->ae, name);
}

/* No element with an all-ones exponent (Inf/NaN): blocks of 64 Ki elements OR-reduced
 * without a branch (so the compiler vectorises them), a return after the first bad one. */
static gboolean all_finite(const StTensor *t) {
  const int64_t n = st_numel(t);
  enum { B = 65536 };
  switch (t->dtype) {
  case ST_BF16: case ST_F16: {
    /* exponent all ones = Inf/NaN; bf16 has 8 exponent bits, f16 5 */
    const uint16_t *p = t->data;
    const uint16_t mask = t->dtype == ST_BF16 ? 0x7f80 : 0x7c00;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
      const int64_t i1 = n - i0 < B ? n : i0 + B;
      unsigned bad = 0;
      for (int64_t i = i0; i < i1; i++) bad |= (p[i] & mask) == mask;
      if (bad) return FALSE;
    }
    return TRUE;
  }
  case ST_F32: {
    const uint32_t *p = t->data;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
      const int64_t i1 = n - i0 < B ? n : i0 + B;
      unsigned bad = 0;
      for (int64_t i = i0; i < i1; i++) bad |= (p[i] & 0x7f800000u) == 0x7f800000u;
      if (bad) return FALSE;
    }
    return TRUE;
  }
  default:
    return TRUE;
  }
}

/* The scan's threads (GLib's, not OpenMP's: joined threads are a synchronisation that
 * every tool, ThreadSanitizer included, sees): each takes the next tensor until none is
 * left and records the lowest index of a bad one. */
typedef struct {
  const Checkpoint *ck;
  gint next, first_bad, n;
  GMutex lock;
} ScanJob;

static gpointer scan_worker(gpointer data) {
  ScanJob *j = data;
  for (;;) {
    const gint i = g_atomic_int_add(&j->next, 1);
    if (i >= j->n) break;
    const CkptSpec *s = j->ck->expected->pdata[i];
    const StTensor *t = ckpt_tensor(j->ck, s->name);
    if (t && !all_finite(t)) {
      g_mutex_lock(&j->lock);
      if (i < j->first_bad) j->first_bad = i;
      g_mutex_unlock(&j->lock);
    }
  }
  return NULL;
}

gboolean ckpt_check_finite(const Checkpoint *ck, GError **error) {
  /* tensors split between the threads; the error names the first bad one in the
   * checkpoint's order, whichever thread finds it */
  ScanJob j = {.ck = ck, .next = 0, .n = (gint)ck->expected->len};
  j.first_bad = j.n;
  g_mutex_init(&j.lock);
  const guint nt = MIN(g_get_num_processors(), 8u);
  GThread *th[8];
  guint started = 0;
  for (guint t = 1; t < nt; t++) {
    th[started] = g_thread_try_new("bagel-scan", scan_worker, &j, NULL);
    if (th[started]) started++;   /* without a thread the others do its share */
  }
  scan_worker(&j);
  for (guint t = 0; t < started; t++) g_thread_join(th[t]);
  g_mutex_clear(&j.lock);
  if (j.first_bad < j.n) {
    const CkptSpec *s = ck->expected->pdata[j.first_bad];
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" contains NaN or "
                "Inf values (corrupt download?)",
                st_path(s->file == CKPT_FILE_EMA ? ck->ema : ck->ae), s->name);
    return FALSE;
  }
  return TRUE;
}

/* ---- the scan's verdict, remembered ----------------------------------------------------
 * One stamp per weights file under $BAGEL_CACHE_DIR (default: the user cache directory's
 * gimp-bagel/) verified/<sha256 of the absolute path>: device, inode, size, mtime and
 * ctime in ns of the file the scan passed on.  Any change to the file (a new download, an
 * edit in place, a copy that restores the mtime) changes one of them, and the next open
 * scans again. */

static char *stamp_path(const char *file) {
  const char *dir = g_getenv("BAGEL_CACHE_DIR");
  char *abs = g_canonicalize_filename(file, NULL);
  char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, abs, -1);
  char *p = dir && *dir ? g_build_filename(dir, "verified", sum, NULL)
                        : g_build_filename(g_get_user_cache_dir(), "gimp-bagel", "verified", sum, NULL);
  g_free(abs);
  g_free(sum);
  return p;
}

static char *stamp_line(const char *file) {
  struct stat st;
  if (stat(file, &st) != 0) return NULL;
  return g_strdup_printf("bagel-finite-1 %llu %llu %lld %lld.%09ld %lld.%09ld\n",
                         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                         (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                         (long)st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
                         (long)st.st_ctim.tv_nsec);
}

static gboolean stamp_matches(const char *file) {
  char *path = stamp_path(file), *want = stamp_line(file), *have = NULL;
  const gboolean ok = want && g_file_get_contents(path, &have, NULL, NULL) && !strcmp(have, want);
  g_free(path);
  g_free(want);
  g_free(have);
  return ok;
}

static void stamp_write(const char *file) {
  char *path = stamp_path(file), *line = stamp_line(file), *dir = g_path_get_dirname(path);
  /* best effort: without a cache directory the next open scans again */
  if (line && g_mkdir_with_parents(dir, 0700) == 0)
    (void)g_file_set_contents(path, line, -1, NULL);
  g_free(path);
  g_free(line);
  g_free(dir);
}

gboolean ckpt_check_finite_once(const Checkpoint *ck, gboolean *scanned, GError **error) {
  const char *files[2] = {st_path(ck->ema), ck->ae ? st_path(ck->ae) : NULL};
  gboolean known = TRUE;
  for (int i = 0; i < 2; i++)
    if (files[i] && !stamp_matches(files[i])) known = FALSE;
  if (scanned) *scanned = !known;
  if (known) return TRUE;
  if (!ckpt_check_finite(ck, error)) return FALSE;
  for (int i = 0; i < 2; i++)
    if (files[i]) stamp_write(files[i]);
  return TRUE;
}
