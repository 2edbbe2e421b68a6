/* tests/model/test_vae.c — the FLUX VAE (engine/model/vae.c) on the CPU backend against
 * the official implementation's golden runs (tests/data/golden/tiny), plus an odd-sized
 * 3-level VAE (tests/data/odd-config.json) for shapes, determinism, arena use and errors.
 *
 * Teacher-forced, as ../shared/golden/README.md asks: every check starts from the golden
 * input of the stage it tests.
 *   moments = encode(golden encoder input)             rel L2 ≤ 1e-4  (edit, edit_think)
 *   z       = posterior(golden moments, golden eps)    rel L2 ≤ 1e-6  (edit, edit_think)
 *   decoded = decode(golden decoder input)             rel L2 ≤ 1e-4  (every image mode)
 * The fp32 VAE differs from torch only by summation order (convs, GroupNorm statistics,
 * attention), ~1e-7 per op; 1e-4 is the README's tolerance for fp32 VAE tensors.
 *
 * usage: test_vae TINY_CKPT_DIR TESTS_DATA_DIR ODD_CKPT_DIR */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "bagel.h"
#include "checkpoint.h"
#include "golden_util.h"
#include "vae.h"

static const char *tiny_dir, *data_dir, *odd_dir;

typedef struct {
  Checkpoint *ck;
  BkBackend *be;
  VaeModel *m;
  Arena a;
} Fixture;

static void fixture_open(Fixture *f, const char *dir) {
  GError *err = NULL;
  f->ck = checkpoint_open(dir, &err);
  g_assert_no_error(err);
  f->be = bk_cpu_new(0);
  g_assert_nonnull(f->be);
  f->m = vae_load(f->be, f->ck, &err);
  g_assert_no_error(err);
  arena_init(&f->a, f->be, 16 << 20);
}

static void fixture_close(Fixture *f) {
  arena_clear(&f->a);
  vae_free(f->m);
  bk_backend_free(f->be);
  checkpoint_free(f->ck);
}

/* A golden [1, C, H, W] tensor as an arena tensor [C, H, W]. */
static BkTensor upload_golden(Fixture *f, const StTensor *t) {
  g_assert_cmpint(t->ndim, ==, 4);
  g_assert_cmpint(t->shape[0], ==, 1);
  BkTensor x = arena_tensor(&f->a, BK_F32, 3, &t->shape[1]);
  g_assert_true(bk_ok(f->be));
  float *v = golden_floats(t);
  f->be->ops->upload(f->be, &x, v);
  g_free(v);
  return x;
}

static float *download(Fixture *f, const BkTensor *t) {
  float *v = g_new(float, bk_numel(t));
  f->be->ops->download(f->be, v, t);
  return v;
}

static void test_encode_golden(gconstpointer data) {
  const char *mode = data;
  Fixture f;
  fixture_open(&f, tiny_dir);
  Golden *g = golden_open(data_dir, mode);
  const StTensor *in = golden_get(g, ".vae.encode.in.x", 0);
  const StTensor *ref = golden_get(g, ".vae.reg.moments", 0);
  BkTensor x = upload_golden(&f, in), moments;
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(vae_encode(f.m, &f.a, &x, &moments, NULL, &err));
  g_assert_no_error(err);
  double s = (g_get_monotonic_time() - t0) * 1e-6;
  golden_assert_shape(ref, 3, moments.ne);
  float *ours = download(&f, &moments);
  char *what = g_strdup_printf("%s vae moments", mode);
  golden_assert_close(what, ours, ref, 1e-4);
  g_test_message("%s: encode %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " in %.3f s (%.2f GFLOP)",
                 mode, in->shape[3], in->shape[2], s, f.m->last_flops * 1e-9);

  /* the chain as the pipeline runs it: our moments with the golden eps */
  const StTensor *eps = golden_get(g, ".vae.reg.eps", 0);
  const StTensor *zref = golden_get(g, ".vae.encode.out.z", 0);
  float *e = golden_floats(eps), *z = g_new(float, st_numel(zref));
  vae_posterior(&f.m->cfg, ours, e, (int)moments.ne[1], (int)moments.ne[2], z, NULL);
  g_free(what);
  what = g_strdup_printf("%s vae z (encode chain)", mode);
  golden_assert_close(what, z, zref, 1e-4);
  g_free(what);
  g_free(e);
  g_free(z);
  g_free(ours);
  golden_close(g);
  fixture_close(&f);
}

static void test_posterior_golden(gconstpointer data) {
  const char *mode = data;
  Golden *g = golden_open(data_dir, mode);
  const StTensor *mom = golden_get(g, ".vae.reg.moments", 0);
  const StTensor *eps = golden_get(g, ".vae.reg.eps", 0);
  const StTensor *zref = golden_get(g, ".vae.encode.out.z", 0);
  VaeConfig cfg = {0};
  vae_config_set_flux_constants(&cfg);
  cfg.z_channels = (int)eps->shape[1];
  g_assert_cmpint(mom->shape[1], ==, 2 * cfg.z_channels);
  float *m = golden_floats(mom), *e = golden_floats(eps);
  float *z = g_new(float, st_numel(zref)), *sample = g_new(float, st_numel(zref));
  vae_posterior(&cfg, m, e, (int)eps->shape[2], (int)eps->shape[3], z, sample);
  char *what = g_strdup_printf("%s vae z", mode);
  golden_assert_close(what, z, zref, 1e-6);
  /* the sample is z before scaling: mean + exp(logvar/2)·eps */
  for (int64_t i = 0; i < st_numel(zref); i++)
    g_assert_cmpfloat(fabsf(sample[i] - (z[i] / cfg.scale_factor + cfg.shift_factor)), <=,
                      1e-5f * (1 + fabsf(sample[i])));
  g_free(what);
  g_free(m);
  g_free(e);
  g_free(z);
  g_free(sample);
  golden_close(g);
}

static void test_decode_golden(gconstpointer data) {
  const char *mode = data;
  Fixture f;
  fixture_open(&f, tiny_dir);
  Golden *g = golden_open(data_dir, mode);
  const StTensor *in = golden_get(g, ".vae.decode.in.z", 0);
  const StTensor *ref = golden_get(g, ".vae.decode.out.x", 0);
  BkTensor z = upload_golden(&f, in), img;
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(vae_decode(f.m, &f.a, &z, &img, NULL, &err));
  g_assert_no_error(err);
  double s = (g_get_monotonic_time() - t0) * 1e-6;
  golden_assert_shape(ref, 3, img.ne);
  float *ours = download(&f, &img);
  char *what = g_strdup_printf("%s vae decoded", mode);
  golden_assert_close(what, ours, ref, 1e-4);
  g_test_message("%s: decode to %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " in %.3f s "
                 "(%.2f GFLOP)", mode, img.ne[2], img.ne[1], s, f.m->last_flops * 1e-9);
  g_free(what);
  g_free(ours);
  golden_close(g);
  fixture_close(&f);
}

/* ---- an odd-sized VAE: 3 levels (factor 4), 1 res block, ch 32, ch_mult [1, 2, 2] ---- */

static BkTensor random_tensor(Fixture *f, GRand *r, int64_t c, int64_t h, int64_t w) {
  BkTensor t = arena_tensor(&f->a, BK_F32, 3, (int64_t[]){c, h, w});
  float *v = g_new(float, c * h * w);
  for (int64_t i = 0; i < c * h * w; i++) v[i] = (float)g_rand_double_range(r, -1, 1);
  f->be->ops->upload(f->be, &t, v);
  g_free(v);
  return t;
}

static void test_odd_geometry(void) {
  Fixture f;
  fixture_open(&f, odd_dir);
  const VaeConfig *c = &f.m->cfg;
  g_assert_cmpint(c->levels, ==, 3);
  g_assert_cmpint(vae_downsample_factor(c), ==, 4);
  g_assert_cmpint(f.m->encoder.down[0].n_block, ==, 1);
  g_assert_cmpint(f.m->decoder.up[0].n_block, ==, 2);
  GRand *r = g_rand_new_with_seed(11);
  const int64_t H = 20, W = 28;   /* non-square, multiples of 4 but not of 8 */
  BkTensor img = random_tensor(&f, r, 3, H, W);
  BkTensor zs = random_tensor(&f, r, c->z_channels, H / 4, W / 4);
  GError *err = NULL;

  /* encode twice: same bits; the second run allocates no new arena chunk */
  ArenaMark before = arena_mark(&f.a);
  BkTensor m1, m2;
  Dump *dump = dump_new();
  g_assert_true(vae_encode(f.m, &f.a, &img, &m1, dump, &err));
  g_assert_no_error(err);
  int64_t want[3] = {2 * c->z_channels, H / 4, W / 4};
  g_assert_true(m1.nd == 3 && m1.ne[0] == want[0] && m1.ne[1] == want[1] && m1.ne[2] == want[2]);
  size_t in_use = f.a.in_use;
  guint64 chunks = f.a.n_chunk_allocs;
  arena_reset(&f.a, before);
  g_assert_true(vae_encode(f.m, &f.a, &img, &m2, NULL, &err));
  g_assert_cmpuint(f.a.in_use, ==, in_use);          /* only the output stays allocated */
  g_assert_cmpuint(f.a.n_chunk_allocs, ==, chunks);
  float *a1 = download(&f, &m1);   /* m1 and m2 share memory: compare against a copy */
  BkTensor m3;
  g_assert_true(vae_encode(f.m, &f.a, &img, &m3, NULL, &err));
  float *a3 = download(&f, &m3);
  g_assert_cmpint(memcmp(a1, a3, bk_nbytes(&m1)), ==, 0);
  for (int64_t i = 0; i < bk_numel(&m1); i++) g_assert_true(isfinite(a1[i]));

  /* the dump names the module path; its conv_out is the returned moments */
  const char *names[] = {"vae.encoder.conv_in", "vae.encoder.down.0.block.0",
                         "vae.encoder.down.0.downsample", "vae.encoder.down.2.block.0",
                         "vae.encoder.mid.block_1", "vae.encoder.mid.attn_1",
                         "vae.encoder.mid.block_2", "vae.encoder.conv_out"};
  for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) g_assert_nonnull(dump_find(dump, names[i]));
  g_assert_null(dump_find(dump, "vae.encoder.down.2.downsample"));   /* last level: none */
  g_assert_cmpuint(dump_count(dump), ==, 1 + 3 * 1 + 2 + 3 + 1);
  const DumpEntry *de = dump_find(dump, "vae.encoder.conv_out");
  g_assert_cmpint(memcmp(de->data, a1, de->nbytes), ==, 0);
  de = dump_find(dump, "vae.encoder.down.1.downsample");
  g_assert_true(de->shape[0] == 64 && de->shape[1] == H / 4 && de->shape[2] == W / 4);
  dump_free(dump);

  /* decode twice: shapes, same bits */
  BkTensor d1, d2;
  g_assert_true(vae_decode(f.m, &f.a, &zs, &d1, NULL, &err));
  g_assert_no_error(err);
  g_assert_true(d1.ne[0] == 3 && d1.ne[1] == H && d1.ne[2] == W);
  float *b1 = download(&f, &d1);
  g_assert_true(vae_decode(f.m, &f.a, &zs, &d2, NULL, &err));
  float *b2 = download(&f, &d2);
  g_assert_cmpint(memcmp(b1, b2, bk_nbytes(&d1)), ==, 0);
  for (int64_t i = 0; i < bk_numel(&d1); i++) g_assert_true(isfinite(b1[i]));
  g_test_message("odd VAE: encode %lldx%lld -> [%lld,%lld,%lld], decode -> [%lld,%lld,%lld], "
                 "arena peak %.1f MB", (long long)W, (long long)H, (long long)m1.ne[0],
                 (long long)m1.ne[1], (long long)m1.ne[2], (long long)d1.ne[0],
                 (long long)d1.ne[1], (long long)d1.ne[2], f.a.peak / 1048576.0);

  /* bad input: clear errors, arena untouched */
  BkTensor bad = random_tensor(&f, r, 3, 22, 28), out;
  size_t used = f.a.in_use;
  g_assert_false(vae_encode(f.m, &f.a, &bad, &out, NULL, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_assert_nonnull(strstr(err->message, "multiple of 4"));
  g_test_message("error: %s", err->message);
  g_clear_error(&err);
  g_assert_cmpuint(f.a.in_use, ==, used);
  BkTensor badz = random_tensor(&f, r, c->z_channels + 1, 5, 7);
  used = f.a.in_use;
  g_assert_false(vae_decode(f.m, &f.a, &badz, &out, NULL, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_test_message("error: %s", err->message);
  g_clear_error(&err);
  g_assert_cmpuint(f.a.in_use, ==, used);

  g_free(a1); g_free(a3); g_free(b1); g_free(b2);
  g_rand_free(r);
  fixture_close(&f);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (argc < 4) g_error("usage: %s TINY_CKPT_DIR TESTS_DATA_DIR ODD_CKPT_DIR", argv[0]);
  tiny_dir = argv[1];
  data_dir = argv[2];
  odd_dir = argv[3];
  static const char *enc_modes[] = {"edit", "edit_think"};
  static const char *dec_modes[] = {"t2i", "t2i_think", "edit", "edit_think"};
  for (unsigned i = 0; i < G_N_ELEMENTS(enc_modes); i++) {
    char *p = g_strdup_printf("/vae/golden/%s/encode", enc_modes[i]);
    g_test_add_data_func(p, enc_modes[i], test_encode_golden);
    g_free(p);
    p = g_strdup_printf("/vae/golden/%s/posterior", enc_modes[i]);
    g_test_add_data_func(p, enc_modes[i], test_posterior_golden);
    g_free(p);
  }
  for (unsigned i = 0; i < G_N_ELEMENTS(dec_modes); i++) {
    char *p = g_strdup_printf("/vae/golden/%s/decode", dec_modes[i]);
    g_test_add_data_func(p, dec_modes[i], test_decode_golden);
    g_free(p);
  }
  g_test_add_func("/vae/odd-geometry", test_odd_geometry);
  return g_test_run();
}
