/* tests/unit/test_checkpoint.c — configs, the expected-tensor table, checkpoint_open on
 * generated checkpoints (tiny = the golden one byte for byte, and an odd-sized one), and
 * every way a model directory can be wrong.
 *
 * usage: test_checkpoint TINY_DIR MKCKPT ODD_CONFIG_JSON */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "bagel.h"
#include "checkpoint.h"

static const char *tiny_dir, *mkckpt, *odd_config;

/* SHA-256 of ../shared/golden/tiny/model/{ema,ae}.safetensors, the official
 * implementation's tiny checkpoint. */
#define GOLDEN_EMA_SHA256 "e6290d75be9a249b40b2ce133691068df8f5d4b8e8051f6afb7b056ff7fa640b"
#define GOLDEN_AE_SHA256 "923300066ed1572186006b3f392ef311bb5761bfe0bedce96f23f93b27866f87"

static char *sha256_file(const char *path) {
  GMappedFile *m = g_mapped_file_new(path, FALSE, NULL);
  g_assert_nonnull(m);
  char *s = g_compute_checksum_for_data(G_CHECKSUM_SHA256,
                                        (const guchar *)g_mapped_file_get_contents(m),
                                        g_mapped_file_get_length(m));
  g_mapped_file_unref(m);
  return s;
}

static void test_7b_table(void) {
  ModelConfig cfg;
  g_assert_true(model_config_preset("7b", &cfg));
  GPtrArray *t = ckpt_expected_tensors(&cfg);
  int64_t ema = 0, ae = 0, n_ema = 0;
  for (guint i = 0; i < t->len; i++) {
    const CkptSpec *s = t->pdata[i];
    if (s->file == CKPT_FILE_EMA) {
      ema += ckpt_spec_numel(s);
      n_ema++;
    } else {
      ae += ckpt_spec_numel(s);
    }
  }
  g_test_message("7B: ema %" G_GINT64_FORMAT " params in %" G_GINT64_FORMAT " tensors, ae %"
                 G_GINT64_FORMAT, ema, n_ema, ae);
  /* docs/bagel-spec.md §2.2: the parameter count that matches the official file size */
  g_assert_cmpint(ema, ==, G_GINT64_CONSTANT(14607260128));
  /* the FLUX.1 autoencoder: 83.8 M parameters (335 MB in fp32) */
  g_assert_cmpint(ae, >, 83700000);
  g_assert_cmpint(ae, <, 83900000);
  /* spec §2.2's header-size estimate counts ~1,223 entries */
  g_assert_cmpint(n_ema, >, 1200);
  g_assert_cmpint(n_ema, <, 1250);
  g_ptr_array_unref(t);
}

static void test_tiny_is_golden(void) {
  char *ema = g_build_filename(tiny_dir, "ema.safetensors", NULL);
  char *ae = g_build_filename(tiny_dir, "ae.safetensors", NULL);
  char *h1 = sha256_file(ema), *h2 = sha256_file(ae);
  g_assert_cmpstr(h1, ==, GOLDEN_EMA_SHA256);
  g_assert_cmpstr(h2, ==, GOLDEN_AE_SHA256);
  g_free(h1);
  g_free(h2);
  g_free(ema);
  g_free(ae);
}

static void test_tiny_loads(void) {
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(tiny_dir, &err);
  g_assert_no_error(err);
  ModelConfig want;
  model_config_preset("tiny", &want);
  g_assert_cmpint(ck->cfg.llm.hidden, ==, 64);
  g_assert_cmpint(ck->cfg.llm.layers, ==, 2);
  g_assert_cmpint(ck->cfg.llm.kv_heads, ==, 2);
  g_assert_cmpint(ck->cfg.llm.head_dim, ==, 16);
  g_assert_cmpint(ck->cfg.vit.layers, ==, 2);
  g_assert_cmpint(ck->cfg.vit.layers_config, ==, 3);
  g_assert_cmpint(ck->cfg.vae.ch, ==, 32);
  g_assert_cmpint(ck->cfg.vae.levels, ==, 4);
  g_assert_cmpint(ck->cfg.vae.ch_mult[3], ==, 4);
  g_assert_cmpint(ck->cfg.vae.num_res_blocks, ==, 2);
  g_assert_cmpint(ck->cfg.vae.z_channels, ==, 16);
  g_assert_cmpint(ck->cfg.geo.latent_grid, ==, 64);
  g_assert_cmpint(ck->cfg.geo.vit_grid, ==, 70);
  g_assert_cmpint(ck->cfg.geo.latent_channels, ==, 64);
  g_assert_cmpuint(ck->warnings->len, ==, 0);
  g_assert_true(ckpt_check_finite(ck, &err));
  const StTensor *t = ckpt_tensor(ck, "decoder.up.1.block.0.nin_shortcut.weight");
  g_assert_nonnull(t);
  g_assert_cmpint(t->shape[0], ==, 64);
  g_assert_cmpint(t->shape[1], ==, 128);
  checkpoint_free(ck);
}

static char *make_ckpt(const char *config, int seed) {
  char *dir = g_dir_make_tmp("ckpt-XXXXXX", NULL);
  char *seed_s = g_strdup_printf("%d", seed);
  const char *argv[] = {mkckpt, "--config", config, "--seed", seed_s, "--out", dir, NULL};
  int status = -1;
  GError *err = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL,
                             &status, &err));
  g_assert_no_error(err);
  g_assert_true(g_spawn_check_wait_status(status, NULL));
  g_free(seed_s);
  return dir;
}

static void rm_rf(const char *dir) {
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d))) {
    char *p = g_build_filename(dir, n, NULL);
    g_unlink(p);
    g_free(p);
  }
  if (d) g_dir_close(d);
  g_rmdir(dir);
}

static void test_odd_sized(void) {
  char *dir = make_ckpt(odd_config, 7);
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  ModelConfig want;
  g_assert_true(model_config_load_json(odd_config, &want, &err));
  g_assert_cmpint(ck->cfg.llm.hidden, ==, want.llm.hidden);
  g_assert_cmpint(ck->cfg.llm.heads, ==, want.llm.heads);
  g_assert_cmpint(ck->cfg.llm.kv_heads, ==, want.llm.kv_heads);
  g_assert_cmpint(ck->cfg.llm.layers, ==, want.llm.layers);
  g_assert_cmpint(ck->cfg.vit.layers, ==, want.vit.layers);
  g_assert_cmpint(ck->cfg.vae.levels, ==, want.vae.levels);
  g_assert_cmpint(ck->cfg.vae.num_res_blocks, ==, want.vae.num_res_blocks);
  g_assert_cmpint(ck->cfg.vae.ch, ==, want.vae.ch);
  for (int i = 0; i < want.vae.levels; i++)
    g_assert_cmpint(ck->cfg.vae.ch_mult[i], ==, want.vae.ch_mult[i]);
  g_assert_cmpint(ck->cfg.geo.latent_grid, ==, want.geo.latent_grid);
  g_assert_cmpint(ck->cfg.geo.vit_grid, ==, want.geo.vit_grid);
  checkpoint_free(ck);
  /* the seed changes the weights */
  char *dir2 = make_ckpt(odd_config, 8);
  char *a = g_build_filename(dir, "ema.safetensors", NULL);
  char *b = g_build_filename(dir2, "ema.safetensors", NULL);
  char *ha = sha256_file(a), *hb = sha256_file(b);
  g_assert_cmpstr(ha, !=, hb);
  g_free(ha);
  g_free(hb);
  g_free(a);
  g_free(b);
  rm_rf(dir);
  rm_rf(dir2);
  g_free(dir);
  g_free(dir2);
}

/* A copy of the tiny checkpoint in a temp dir: symlinks, except the files a test edits. */
static char *tiny_copy(void) {
  char *dir = g_dir_make_tmp("ckpt-XXXXXX", NULL);
  const char *files[] = {"ema.safetensors", "ae.safetensors", "llm_config.json",
                         "vit_config.json", "vocab.json", "merges.txt", "tokenizer_config.json"};
  for (unsigned i = 0; i < G_N_ELEMENTS(files); i++) {
    char *src = g_build_filename(tiny_dir, files[i], NULL);
    char *abs = g_canonicalize_filename(src, NULL);
    char *dst = g_build_filename(dir, files[i], NULL);
    g_assert_cmpint(symlink(abs, dst), ==, 0);
    g_free(src);
    g_free(abs);
    g_free(dst);
  }
  return dir;
}

static void test_missing_files(void) {
  char *dir = tiny_copy();
  char *p1 = g_build_filename(dir, "ae.safetensors", NULL);
  char *p2 = g_build_filename(dir, "merges.txt", NULL);
  g_unlink(p1);
  g_unlink(p2);
  GError *err = NULL;
  g_assert_null(checkpoint_open(dir, &err));
  g_test_message("%s", err->message);
  g_assert_nonnull(strstr(err->message, "ae.safetensors"));
  g_assert_nonnull(strstr(err->message, "merges.txt"));
  g_assert_nonnull(strstr(err->message, "huggingface-cli download ByteDance-Seed/BAGEL-7B-MoT"));
  g_assert_cmpint(err->code, ==, BAGEL_ERROR_MODEL);
  g_clear_error(&err);
  g_assert_null(checkpoint_open("/nonexistent/bagel", &err));
  g_assert_nonnull(strstr(err->message, "does not exist"));
  g_clear_error(&err);
  rm_rf(dir);
  g_free(p1);
  g_free(p2);
  g_free(dir);
}

/* Rewrite ema.safetensors with: one tensor dropped, one reshaped, one in another dtype,
 * one extra, and optionally a NaN. */
static void write_broken_ema(const char *dir, gboolean nan_only) {
  char *src = g_build_filename(tiny_dir, "ema.safetensors", NULL);
  GError *err = NULL;
  StFile *f = st_open(src, &err);
  g_assert_no_error(err);
  char *dst = g_build_filename(dir, "ema.safetensors", NULL);
  g_unlink(dst);
  StWriter *w = st_writer_new();
  for (size_t i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    if (!nan_only && !strcmp(t->name, "llm2vae.bias")) continue;
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    StDType dt = t->dtype;
    if (!nan_only && !strcmp(t->name, "connector.fc1.weight")) shape[1] = 16;
    if (!nan_only && !strcmp(t->name, "vae2llm.bias")) dt = ST_F32;
    st_writer_add(w, t->name, dt, t->ndim, shape);
  }
  if (!nan_only) st_writer_add(w, "extra.tensor", ST_F32, 1, (int64_t[]){2});
  g_assert_true(st_writer_begin(w, dst, &err));
  for (size_t i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    if (!nan_only && !strcmp(t->name, "llm2vae.bias")) continue;
    uint64_t n = t->nbytes;
    guint8 *buf = g_malloc0(n * 2 + 16);
    memcpy(buf, t->data, n);
    if (nan_only && !strcmp(t->name, "time_embedder.mlp.2.bias")) ((uint16_t *)buf)[5] = 0x7fc0;
    if (!nan_only && !strcmp(t->name, "connector.fc1.weight")) n /= 2;
    if (!nan_only && !strcmp(t->name, "vae2llm.bias")) n *= 2;
    g_assert_true(st_writer_write(w, t->name, 0, buf, n, &err));
    g_free(buf);
  }
  if (!nan_only) {
    float z[2] = {0, 0};
    g_assert_true(st_writer_write(w, "extra.tensor", 0, z, 8, &err));
  }
  g_assert_true(st_writer_finish(w, &err));
  st_close(f);
  g_free(src);
  g_free(dst);
}

static void test_all_problems_at_once(void) {
  char *dir = tiny_copy();
  write_broken_ema(dir, FALSE);
  GError *err = NULL;
  g_assert_null(checkpoint_open(dir, &err));
  g_test_message("%s", err->message);
  g_assert_nonnull(strstr(err->message, "3 problems"));
  g_assert_nonnull(strstr(err->message, "\"llm2vae.bias\" is missing (expected BF16[64])"));
  g_assert_nonnull(strstr(err->message, "\"connector.fc1.weight\" is BF16[64,16], expected BF16[64,32]"));
  g_assert_nonnull(strstr(err->message, "\"vae2llm.bias\" is F32[64], expected BF16[64]"));
  g_clear_error(&err);
  rm_rf(dir);
  g_free(dir);
}

static void test_nan_detected(void) {
  char *dir = tiny_copy();
  write_broken_ema(dir, TRUE);
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  g_assert_false(ckpt_check_finite(ck, &err));
  g_assert_nonnull(strstr(err->message, "\"time_embedder.mlp.2.bias\" contains NaN or Inf"));
  g_clear_error(&err);
  checkpoint_free(ck);
  rm_rf(dir);
  g_free(dir);
}

/* The scan's verdict is remembered per file (BAGEL_CACHE_DIR) and forgotten when the
 * file changes: an edit in place that puts a NaN in a tensor is found on the next open. */
static void test_scan_remembered(void) {
  char *dir = tiny_copy();
  /* ema.safetensors as a file of its own (tiny_copy links to the shared checkpoint,
   * which this test must not write into) */
  {
    char *link = g_build_filename(dir, "ema.safetensors", NULL), *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(link, &data, &len, NULL));
    g_assert_cmpint(g_unlink(link), ==, 0);
    g_assert_true(g_file_set_contents(link, data, (gssize)len, NULL));
    g_free(data);
    g_free(link);
  }
  char *cache = g_build_filename(dir, "cache", NULL);
  g_setenv("BAGEL_CACHE_DIR", cache, TRUE);
  GError *err = NULL;
  gboolean scanned = FALSE;
  Checkpoint *ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  g_assert_true(ckpt_check_finite_once(ck, &scanned, &err));
  g_assert_true(scanned);
  g_assert_true(ckpt_check_finite_once(ck, &scanned, &err));
  g_assert_false(scanned);   /* remembered */
  const StTensor *t = ckpt_tensor(ck, "time_embedder.mlp.2.bias");
  g_assert_nonnull(t);
  const uint64_t off = t->offset;
  const StDType dt = t->dtype;
  char *ema = g_strdup(st_path(ck->ema));
  checkpoint_free(ck);
  g_usleep(20000);   /* past a coarse timestamp tick on kernels without fine-grained ones */
  FILE *f = fopen(ema, "r+b");
  g_assert_nonnull(f);
  uint64_t hlen = 0;
  g_assert_cmpint(fread(&hlen, 8, 1, f), ==, 1);
  g_assert_cmpint(fseek(f, (long)(8 + hlen + off), SEEK_SET), ==, 0);
  const uint32_t nan32 = 0x7fc00000u;
  const uint16_t nan16 = 0x7fc0;
  if (dt == ST_F32) g_assert_cmpint(fwrite(&nan32, 4, 1, f), ==, 1);
  else g_assert_cmpint(fwrite(&nan16, 2, 1, f), ==, 1);
  fclose(f);
  ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  g_assert_false(ckpt_check_finite_once(ck, &scanned, &err));
  g_assert_true(scanned);
  g_assert_nonnull(strstr(err->message, "\"time_embedder.mlp.2.bias\" contains NaN or Inf"));
  g_clear_error(&err);
  checkpoint_free(ck);
  g_unsetenv("BAGEL_CACHE_DIR");
  g_free(ema);
  g_free(cache);
  rm_rf(dir);
  g_free(dir);
}

static void test_unexpected_tensor_warns(void) {
  /* an extra tensor alone is a warning, not an error */
  char *dir = tiny_copy();
  char *src = g_build_filename(tiny_dir, "ae.safetensors", NULL);
  char *dst = g_build_filename(dir, "ae.safetensors", NULL);
  GError *err = NULL;
  StFile *f = st_open(src, &err);
  g_unlink(dst);
  StWriter *w = st_writer_new();
  for (size_t i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    st_writer_add(w, t->name, t->dtype, t->ndim, t->shape);
  }
  st_writer_add(w, "encoder.quant_conv.weight", ST_F32, 1, (int64_t[]){1});
  g_assert_true(st_writer_begin(w, dst, &err));
  for (size_t i = 0; i < st_count(f); i++) {
    const StTensor *t = st_get(f, i);
    g_assert_true(st_writer_write(w, t->name, 0, t->data, t->nbytes, &err));
  }
  float one = 1;
  g_assert_true(st_writer_write(w, "encoder.quant_conv.weight", 0, &one, 4, &err));
  g_assert_true(st_writer_finish(w, &err));
  st_close(f);
  Checkpoint *ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(ck->warnings->len, ==, 1);
  g_assert_nonnull(strstr(ck->warnings->pdata[0], "unexpected tensor \"encoder.quant_conv.weight\""));
  checkpoint_free(ck);
  rm_rf(dir);
  g_free(dir);
  g_free(src);
  g_free(dst);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char *p = g_build_filename(dir, name, NULL);
  g_unlink(p);
  g_assert_true(g_file_set_contents(p, text, -1, NULL));
  g_free(p);
}

static void expect_open_error(const char *dir, const char *needle) {
  GError *err = NULL;
  g_assert_null(checkpoint_open(dir, &err));
  g_test_message("%s", err->message);
  if (!strstr(err->message, needle)) g_error("\"%s\" not in \"%s\"", needle, err->message);
  g_clear_error(&err);
}

static void test_bad_configs(void) {
  char *dir = tiny_copy();
  const char *base = "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"intermediate_size\": 128,"
                     "\"vocab_size\": 152064, ";
  char *t;
  t = g_strdup_printf("{%s \"num_attention_heads\": 5, \"num_key_value_heads\": 1}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "\"num_attention_heads\": 5 heads do not divide hidden_size 64");
  g_free(t);
  t = g_strdup_printf("{%s \"num_attention_heads\": 4, \"num_key_value_heads\": 3}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "num_key_value_heads");
  g_free(t);
  t = g_strdup_printf("{%s \"num_attention_heads\": 0, \"num_key_value_heads\": 2}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "\"num_attention_heads\": 0 is out of range");
  g_free(t);
  t = g_strdup_printf("{%s \"num_attention_heads\": -4, \"num_key_value_heads\": 2}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "\"num_attention_heads\": -4 is out of range");
  g_free(t);
  write_text(dir, "llm_config.json", "{\"hidden_size\": 64,");
  expect_open_error(dir, "llm_config.json");
  write_text(dir, "llm_config.json", "{\"hidden_size\": \"64\"}");
  expect_open_error(dir, "\"hidden_size\": must be an integer");
  t = g_strdup_printf("{%s \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                      "\"rms_norm_eps\": -1}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "\"rms_norm_eps\"");
  g_free(t);
  /* a consistent config that does not match the weights */
  t = g_strdup_printf("{%s \"num_attention_heads\": 8, \"num_key_value_heads\": 2}", base);
  write_text(dir, "llm_config.json", t);
  expect_open_error(dir, "does not match the configuration");
  g_free(t);
  char *src = g_build_filename(tiny_dir, "llm_config.json", NULL);
  char *good;
  g_file_get_contents(src, &good, NULL, NULL);
  write_text(dir, "llm_config.json", good);
  write_text(dir, "vit_config.json", "{\"hidden_size\": 32, \"intermediate_size\": 64, "
             "\"num_attention_heads\": 3, \"num_hidden_layers\": 3, \"patch_size\": 14, "
             "\"image_size\": 980}");
  expect_open_error(dir, "vit_config.json: field \"num_attention_heads\"");
  write_text(dir, "vit_config.json", "{\"hidden_size\": 32, \"intermediate_size\": 64, "
             "\"num_attention_heads\": 2, \"num_hidden_layers\": 1, \"patch_size\": 14, "
             "\"image_size\": 980}");
  expect_open_error(dir, "drops the last layer");
  g_free(good);
  g_free(src);
  rm_rf(dir);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (argc != 4) {
    g_printerr("usage: %s TINY_DIR MKCKPT ODD_CONFIG_JSON\n", argv[0]);
    return 2;
  }
  tiny_dir = argv[1];
  mkckpt = argv[2];
  odd_config = argv[3];
  g_test_add_func("/checkpoint/7b-table", test_7b_table);
  g_test_add_func("/checkpoint/tiny-is-golden", test_tiny_is_golden);
  g_test_add_func("/checkpoint/tiny-loads", test_tiny_loads);
  g_test_add_func("/checkpoint/odd-sized", test_odd_sized);
  g_test_add_func("/checkpoint/missing-files", test_missing_files);
  g_test_add_func("/checkpoint/all-problems-at-once", test_all_problems_at_once);
  g_test_add_func("/checkpoint/nan-detected", test_nan_detected);
  g_test_add_func("/checkpoint/scan-remembered", test_scan_remembered);
  g_test_add_func("/checkpoint/unexpected-tensor-warns", test_unexpected_tensor_warns);
  g_test_add_func("/checkpoint/bad-configs", test_bad_configs);
  return g_test_run();
}
