/* engine/config.c — readers and checks of the model configuration (config.h). */
#include "config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "bagel.h"

static void cfg_err(GError **error, const char *label, const char *field, const char *fmt, ...)
  G_GNUC_PRINTF(4, 5);

static void cfg_err(GError **error, const char *label, const char *field, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (field)
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: field \"%s\": %s", label, field, msg);
  else
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: %s", label, msg);
  g_free(msg);
}

/* A required positive integer field (at most max). */
static gboolean get_int(JsonObject *o, const char *label, const char *field, int max, int *out,
                        GError **error) {
  JsonNode *n = json_object_get_member(o, field);
  if (!n) {
    cfg_err(error, label, field, "missing");
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) {
    cfg_err(error, label, field, "must be an integer");
    return FALSE;
  }
  gint64 v = json_node_get_int(n);
  if (v <= 0 || v > max) {
    cfg_err(error, label, field, "%" G_GINT64_FORMAT " is out of range (1..%d)", v, max);
    return FALSE;
  }
  *out = (int)v;
  return TRUE;
}

/* An optional positive number (integer or float) with a default. */
static gboolean get_num(JsonObject *o, const char *label, const char *field, double def,
                        double *out, GError **error) {
  JsonNode *n = json_object_get_member(o, field);
  if (!n) {
    *out = def;
    return TRUE;
  }
  GType t = JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n) : G_TYPE_INVALID;
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE) {
    cfg_err(error, label, field, "must be a number");
    return FALSE;
  }
  double v = json_node_get_double(n);
  if (!(v > 0) || !isfinite(v)) {
    cfg_err(error, label, field, "%g must be a positive finite number", v);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

static JsonParser *load_json_object(const char *path, JsonObject **out, GError **error) {
  JsonParser *p = json_parser_new();
  GError *e = NULL;
  if (!json_parser_load_from_file(p, path, &e)) {
    if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: file not found", path);
    else if (strstr(e->message, path))  /* json-glib already names the file */
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s", e->message);
    else
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: %s", path, e->message);
    g_error_free(e);
    g_object_unref(p);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(p);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: not a JSON object", path);
    g_object_unref(p);
    return NULL;
  }
  *out = json_node_get_object(root);
  return p;
}

gboolean llm_config_check(const LlmConfig *c, const char *label, GError **error) {
  if (c->hidden % c->heads) {
    cfg_err(error, label, "num_attention_heads", "%d heads do not divide hidden_size %d",
            c->heads, c->hidden);
    return FALSE;
  }
  if (c->heads % c->kv_heads) {
    cfg_err(error, label, "num_key_value_heads", "%d KV heads do not divide %d attention heads",
            c->kv_heads, c->heads);
    return FALSE;
  }
  if ((c->hidden / c->heads) % 2) {
    cfg_err(error, label, "num_attention_heads", "head dim %d is odd (RoPE needs pairs)",
            c->hidden / c->heads);
    return FALSE;
  }
  return TRUE;
}

gboolean llm_config_from_json(gpointer json_object, const char *label, LlmConfig *out,
                              GError **error) {
  JsonObject *o = json_object;
  LlmConfig c = {0};
  if (!get_int(o, label, "hidden_size", 1 << 16, &c.hidden, error) ||
      !get_int(o, label, "num_hidden_layers", 1024, &c.layers, error) ||
      !get_int(o, label, "num_attention_heads", 1024, &c.heads, error) ||
      !get_int(o, label, "num_key_value_heads", 1024, &c.kv_heads, error) ||
      !get_int(o, label, "intermediate_size", 1 << 20, &c.intermediate, error) ||
      !get_int(o, label, "vocab_size", 1 << 24, &c.vocab, error) ||
      !get_num(o, label, "rms_norm_eps", 1e-6, &c.rms_eps, error) ||
      !get_num(o, label, "rope_theta", 1e6, &c.rope_theta, error))
    return FALSE;
  JsonNode *act = json_object_get_member(o, "hidden_act");
  if (act && (!JSON_NODE_HOLDS_VALUE(act) || json_node_get_value_type(act) != G_TYPE_STRING ||
              strcmp(json_node_get_string(act), "silu"))) {
    cfg_err(error, label, "hidden_act", "only \"silu\" is supported (Qwen2)");
    return FALSE;
  }
  if (!llm_config_check(&c, label, error)) return FALSE;
  c.head_dim = c.hidden / c.heads;
  *out = c;
  return TRUE;
}

gboolean vit_config_check(const VitConfig *c, const char *label, GError **error) {
  if (c->hidden % c->heads) {
    cfg_err(error, label, "num_attention_heads", "%d heads do not divide hidden_size %d",
            c->heads, c->hidden);
    return FALSE;
  }
  if (c->layers_config < 2) {
    cfg_err(error, label, "num_hidden_layers", "%d: BAGEL drops the last layer, so at least "
            "2 are needed", c->layers_config);
    return FALSE;
  }
  if (c->image_size % c->patch) {
    cfg_err(error, label, "image_size", "%d is not a multiple of patch_size %d", c->image_size,
            c->patch);
    return FALSE;
  }
  return TRUE;
}

gboolean vit_config_from_json(gpointer json_object, const char *label, VitConfig *out,
                              GError **error) {
  JsonObject *o = json_object;
  VitConfig c = {0};
  c.channels = 3;
  if (!get_int(o, label, "hidden_size", 1 << 16, &c.hidden, error) ||
      !get_int(o, label, "intermediate_size", 1 << 20, &c.intermediate, error) ||
      !get_int(o, label, "num_attention_heads", 1024, &c.heads, error) ||
      !get_int(o, label, "num_hidden_layers", 1024, &c.layers_config, error) ||
      !get_int(o, label, "patch_size", 1024, &c.patch, error) ||
      !get_int(o, label, "image_size", 1 << 16, &c.image_size, error) ||
      !get_num(o, label, "layer_norm_eps", 1e-6, &c.ln_eps, error))
    return FALSE;
  if (json_object_has_member(o, "num_channels") &&
      !get_int(o, label, "num_channels", 16, &c.channels, error))
    return FALSE;
  if (c.channels != 3) {
    cfg_err(error, label, "num_channels", "%d: only RGB (3) is supported", c.channels);
    return FALSE;
  }
  JsonNode *act = json_object_get_member(o, "hidden_act");
  if (act && (!JSON_NODE_HOLDS_VALUE(act) || json_node_get_value_type(act) != G_TYPE_STRING ||
              (strcmp(json_node_get_string(act), "gelu_pytorch_tanh") &&
               strcmp(json_node_get_string(act), "gelu_tanh")))) {
    cfg_err(error, label, "hidden_act", "only \"gelu_pytorch_tanh\" is supported (SigLIP)");
    return FALSE;
  }
  if (!vit_config_check(&c, label, error)) return FALSE;
  c.head_dim = c.hidden / c.heads;
  c.layers = c.layers_config - 1;
  *out = c;
  return TRUE;
}

gboolean llm_config_load(const char *path, LlmConfig *out, GError **error) {
  JsonObject *o;
  JsonParser *p = load_json_object(path, &o, error);
  if (!p) return FALSE;
  gboolean ok = llm_config_from_json(o, path, out, error);
  g_object_unref(p);
  return ok;
}

gboolean vit_config_load(const char *path, VitConfig *out, GError **error) {
  JsonObject *o;
  JsonParser *p = load_json_object(path, &o, error);
  if (!p) return FALSE;
  gboolean ok = vit_config_from_json(o, path, out, error);
  g_object_unref(p);
  return ok;
}

void vae_config_set_flux_constants(VaeConfig *c) {
  c->groups = 32;
  c->scale_factor = 0.3611f;
  c->shift_factor = 0.1159f;
  c->gn_eps = 1e-6;
}

gboolean vae_config_check(const VaeConfig *c, const char *label, GError **error) {
  if (c->ch <= 0 || c->levels <= 0 || c->levels > VAE_MAX_LEVELS || c->num_res_blocks <= 0 ||
      c->z_channels <= 0 || c->in_channels != 3 || c->out_channels != 3) {
    cfg_err(error, label, NULL, "VAE geometry out of range (ch %d, %d levels, %d res blocks, "
            "z %d, in %d, out %d)", c->ch, c->levels, c->num_res_blocks, c->z_channels,
            c->in_channels, c->out_channels);
    return FALSE;
  }
  for (int i = 0; i < c->levels; i++) {
    if (c->ch_mult[i] <= 0 || (c->ch * c->ch_mult[i]) % c->groups) {
      cfg_err(error, label, NULL, "VAE level %d width %d is not a positive multiple of %d "
              "GroupNorm groups", i, c->ch * c->ch_mult[i], c->groups);
      return FALSE;
    }
  }
  return TRUE;
}

static const StTensor *need(const StFile *f, const char *name, int ndim, GError **error) {
  const StTensor *t = st_find(f, name);
  if (!t) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" is missing (needed "
                "to read the VAE geometry)", st_path(f), name);
    return NULL;
  }
  if (t->ndim != ndim) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" has %d dimensions, "
                "expected %d", st_path(f), name, t->ndim, ndim);
    return NULL;
  }
  for (int i = 0; i < ndim; i++) {
    if (t->shape[i] <= 0 || t->shape[i] > (1 << 16)) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" has an out-of-range "
                  "dimension %" G_GINT64_FORMAT, st_path(f), name, t->shape[i]);
      return NULL;
    }
  }
  return t;
}

gboolean vae_config_from_file(const StFile *ae, VaeConfig *out, GError **error) {
  VaeConfig c = {0};
  vae_config_set_flux_constants(&c);
  const StTensor *t;
  if (!(t = need(ae, "encoder.conv_in.weight", 4, error))) return FALSE;
  c.ch = (int)t->shape[0];
  c.in_channels = (int)t->shape[1];
  for (c.levels = 0; c.levels < VAE_MAX_LEVELS; c.levels++) {
    char name[96];
    g_snprintf(name, sizeof name, "encoder.down.%d.block.0.conv1.weight", c.levels);
    const StTensor *b = st_find(ae, name);
    if (!b) break;
    if (!(b = need(ae, name, 4, error))) return FALSE;
    if (b->shape[0] % c.ch) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\": width %"
                  G_GINT64_FORMAT " is not a multiple of the base width %d", st_path(ae), name,
                  b->shape[0], c.ch);
      return FALSE;
    }
    c.ch_mult[c.levels] = (int)(b->shape[0] / c.ch);
  }
  if (c.levels == 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"encoder.down.0.block.0."
                "conv1.weight\" is missing (needed to read the VAE geometry)", st_path(ae));
    return FALSE;
  }
  for (c.num_res_blocks = 0; c.num_res_blocks < 64; c.num_res_blocks++) {
    char name[96];
    g_snprintf(name, sizeof name, "encoder.down.0.block.%d.conv1.weight", c.num_res_blocks);
    if (!st_find(ae, name)) break;
  }
  if (!(t = need(ae, "decoder.conv_in.weight", 4, error))) return FALSE;
  c.z_channels = (int)t->shape[1];
  if (!(t = need(ae, "decoder.conv_out.weight", 4, error))) return FALSE;
  c.out_channels = (int)t->shape[0];
  if (!vae_config_check(&c, st_path(ae), error)) return FALSE;
  *out = c;
  return TRUE;
}

char *llm_config_to_json(const LlmConfig *c) {
  return g_strdup_printf(
    "{\n"
    "  \"architectures\": [\n    \"Qwen2ForCausalLM\"\n  ],\n"
    "  \"attention_dropout\": 0.0,\n"
    "  \"bos_token_id\": 151643,\n"
    "  \"eos_token_id\": 151645,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": %d,\n"
    "  \"initializer_range\": 0.02,\n"
    "  \"intermediate_size\": %d,\n"
    "  \"max_position_embeddings\": 32768,\n"
    "  \"max_window_layers\": 28,\n"
    "  \"model_type\": \"qwen2\",\n"
    "  \"num_attention_heads\": %d,\n"
    "  \"num_hidden_layers\": %d,\n"
    "  \"num_key_value_heads\": %d,\n"
    "  \"rms_norm_eps\": %g,\n"
    "  \"rope_theta\": %.1f,\n"
    "  \"sliding_window\": 131072,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"use_cache\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": %d\n"
    "}\n",
    c->hidden, c->intermediate, c->heads, c->layers, c->kv_heads, c->rms_eps, c->rope_theta,
    c->vocab);
}

char *vit_config_to_json(const VitConfig *c) {
  return g_strdup_printf(
    "{\n"
    "  \"model_type\": \"siglip_vision_model\",\n"
    "  \"hidden_size\": %d,\n"
    "  \"image_size\": %d,\n"
    "  \"intermediate_size\": %d,\n"
    "  \"num_attention_heads\": %d,\n"
    "  \"num_hidden_layers\": %d,\n"
    "  \"patch_size\": %d,\n"
    "  \"num_channels\": %d,\n"
    "  \"hidden_act\": \"gelu_pytorch_tanh\",\n"
    "  \"layer_norm_eps\": %g,\n"
    "  \"attention_dropout\": 0.0\n"
    "}\n",
    c->hidden, c->image_size, c->intermediate, c->heads, c->layers_config, c->patch, c->channels,
    c->ln_eps);
}

static void finish_preset(ModelConfig *m) {
  m->llm.head_dim = m->llm.hidden / m->llm.heads;
  m->vit.head_dim = m->vit.hidden / m->vit.heads;
  m->vit.layers = m->vit.layers_config - 1;
  m->vit.channels = 3;
  vae_config_set_flux_constants(&m->vae);
  m->vae.in_channels = m->vae.out_channels = 3;
  m->geo.latent_patch = 2;
  m->geo.latent_channels = m->vae.z_channels * 4;
}

gboolean model_config_preset(const char *name, ModelConfig *out) {
  ModelConfig m;
  memset(&m, 0, sizeof m);
  const VaeConfig flux = {.ch = 128, .levels = 4, .ch_mult = {1, 2, 4, 4}, .num_res_blocks = 2,
                          .z_channels = 16};
  const VitConfig siglip = {.hidden = 1152, .intermediate = 4304, .heads = 16,
                            .layers_config = 27, .patch = 14, .image_size = 980,
                            .ln_eps = 1e-6};
  if (!strcmp(name, "7b")) {
    m.llm = (LlmConfig){.hidden = 3584, .layers = 28, .heads = 28, .kv_heads = 4,
                        .intermediate = 18944, .vocab = 152064, .rms_eps = 1e-6,
                        .rope_theta = 1e6};
    m.vit = siglip;
    m.vae = flux;
    m.geo = (BagelGeometry){.vit_grid = 70, .latent_grid = 64};
  } else if (!strcmp(name, "medium")) {
    /* Qwen2.5-1.5B geometry with the real ViT and VAE. */
    m.llm = (LlmConfig){.hidden = 1536, .layers = 28, .heads = 12, .kv_heads = 2,
                        .intermediate = 8960, .vocab = 151936, .rms_eps = 1e-6,
                        .rope_theta = 1e6};
    m.vit = siglip;
    m.vae = flux;
    m.geo = (BagelGeometry){.vit_grid = 70, .latent_grid = 64};
  } else if (!strcmp(name, "tiny")) {
    /* The geometry of the golden set (../shared/golden/README.md). */
    m.llm = (LlmConfig){.hidden = 64, .layers = 2, .heads = 4, .kv_heads = 2,
                        .intermediate = 128, .vocab = 152064, .rms_eps = 1e-6,
                        .rope_theta = 1e6};
    m.vit = (VitConfig){.hidden = 32, .intermediate = 64, .heads = 2, .layers_config = 3,
                        .patch = 14, .image_size = 980, .ln_eps = 1e-6};
    m.vae = (VaeConfig){.ch = 32, .levels = 4, .ch_mult = {1, 2, 4, 4}, .num_res_blocks = 2,
                        .z_channels = 16};
    m.geo = (BagelGeometry){.vit_grid = 70, .latent_grid = 64};
  } else {
    return FALSE;
  }
  finish_preset(&m);
  *out = m;
  return TRUE;
}

gboolean model_config_load_json(const char *path, ModelConfig *out, GError **error) {
  JsonObject *o;
  JsonParser *p = load_json_object(path, &o, error);
  if (!p) return FALSE;
  ModelConfig m;
  memset(&m, 0, sizeof m);
  gboolean ok = FALSE;
  JsonNode *ln = json_object_get_member(o, "llm"), *vn = json_object_get_member(o, "vit"),
           *an = json_object_get_member(o, "vae");
  if (!ln || !JSON_NODE_HOLDS_OBJECT(ln) || !vn || !JSON_NODE_HOLDS_OBJECT(vn) || !an ||
      !JSON_NODE_HOLDS_OBJECT(an)) {
    cfg_err(error, path, NULL, "needs objects \"llm\", \"vit\" and \"vae\"");
    goto out;
  }
  char *label = g_strdup_printf("%s (llm)", path);
  ok = llm_config_from_json(json_node_get_object(ln), label, &m.llm, error);
  g_free(label);
  if (!ok) goto out;
  label = g_strdup_printf("%s (vit)", path);
  ok = vit_config_from_json(json_node_get_object(vn), label, &m.vit, error);
  g_free(label);
  if (!ok) goto out;
  ok = FALSE;
  JsonObject *ao = json_node_get_object(an);
  if (!get_int(ao, path, "ch", 1 << 14, &m.vae.ch, error) ||
      !get_int(ao, path, "num_res_blocks", 64, &m.vae.num_res_blocks, error) ||
      !get_int(ao, path, "z_channels", 1024, &m.vae.z_channels, error))
    goto out;
  JsonNode *mn = json_object_get_member(ao, "ch_mult");
  if (!mn || !JSON_NODE_HOLDS_ARRAY(mn) ||
      json_array_get_length(json_node_get_array(mn)) == 0 ||
      json_array_get_length(json_node_get_array(mn)) > VAE_MAX_LEVELS) {
    cfg_err(error, path, "ch_mult", "must be an array of 1..%d integers", VAE_MAX_LEVELS);
    goto out;
  }
  JsonArray *ma = json_node_get_array(mn);
  m.vae.levels = (int)json_array_get_length(ma);
  for (int i = 0; i < m.vae.levels; i++) {
    gint64 v = json_array_get_int_element(ma, (guint)i);
    if (v <= 0 || v > 64) {
      cfg_err(error, path, "ch_mult", "entry %d out of range", i);
      goto out;
    }
    m.vae.ch_mult[i] = (int)v;
  }
  if (!get_int(o, path, "vit_grid", 1024, &m.geo.vit_grid, error) ||
      !get_int(o, path, "latent_grid", 1024, &m.geo.latent_grid, error))
    goto out;
  finish_preset(&m);
  if (!vae_config_check(&m.vae, path, error)) goto out;
  *out = m;
  ok = TRUE;
out:
  g_object_unref(p);
  return ok;
}
