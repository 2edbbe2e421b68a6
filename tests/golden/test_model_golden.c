/* tests/golden/test_model_golden.c — the model against the official implementation,
 * teacher-forced (issue "CPU model" proof).
 *
 * For each golden mode the test replays the official inferencer's exact sequence of
 * context updates (inferencer.py interleave_inference: which context gets which segment,
 * when the CFG contexts are copied), feeding the golden inputs — the text ids of every
 * segment, the ViT patches, the VAE latent of the input image, the initial noise — and
 * compares with the README's tolerances:
 *   ViT output, connector output, tokens; every layer's output of every context update;
 *   the K/V cache of every layer after every update; logits of every decode step and the
 *   generated ids (which then feed the next step, so a wrong id shows immediately);
 *   every denoising step's x_t, each CFG branch's raw velocity, the combined one and the
 *   final latent.
 * Beyond the tolerances, the CPU reference reproduces the golden run's arithmetic
 * (docs/numerics.md), so every compared tensor must be bit-identical: each comparison
 * also counts the differing elements and fails on any (BAGEL_GOLDEN_NO_PARITY=1 reports the counts without failing, e.g. on a libm whose
 * cosf/tanhf round differently from glibc's, or on the CUDA backend: --backend cuda).
 *
 * usage: test_model_golden TINY_CKPT_DIR TESTS_DATA_DIR [--backend cpu|cuda] */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "context.h"
#include "golden_util.h"
#include "model.h"
#include "sampler.h"
#include "textgen.h"

static const char *ckpt_dir, *data_dir, *backend = "cpu";
#define TOL_BF16 1e-2   /* README: tensors in the bf16 flow (the trajectory included) */

/* Count the elements of ours that differ from ref (as floats, NaN equal to NaN) and fail
 * on any unless BAGEL_GOLDEN_NO_PARITY is set. */
static void assert_parity(const char *what, const float *ours, const float *ref, int64_t n) {
  int64_t diff = 0;
  for (int64_t i = 0; i < n; i++)
    if (ours[i] != ref[i] && !(isnan(ours[i]) && isnan(ref[i]))) diff++;
  g_test_message("%-28s %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " elements differ", what,
                 diff, n);
  if (diff && !g_getenv("BAGEL_GOLDEN_NO_PARITY"))
    g_error("%s: %" G_GINT64_FORMAT " elements differ from the golden run (bit parity lost; "
            "see docs/numerics.md)", what, diff);
}

/* The denoising trajectory (x_t, the branch and combined velocities, the final latent).
 * A backend that cannot reproduce the golden arithmetic bit for bit (the CUDA backend:
 * cuBLASLt's and the tensor cores' summation orders) sees CFG amplify single-ulp
 * differences step after step; with BAGEL_GOLDEN_TRAJECTORY=report (its registration in
 * tests/golden/meson.build) a trajectory over the tolerance is reported and the test
 * marked incomplete instead of failed.  Every other check stays as strict as for the
 * CPU backend. */
static gboolean traj_over;

static void check_traj(const char *what, const float *ours, const float *ref, int64_t n) {
  GoldenDiff d = golden_compare_floats(ours, ref, n);
  g_test_message("%-28s rel L2 %.3e  max|d| %.3e%s", what, d.rel_l2, d.max_abs,
                 d.rel_l2 <= TOL_BF16 ? "" : "  OVER");
  if (!(d.rel_l2 <= TOL_BF16)) {
    if (g_strcmp0(g_getenv("BAGEL_GOLDEN_TRAJECTORY"), "report"))
      g_error("%s: relative L2 error %.3e exceeds %.0e", what, d.rel_l2, TOL_BF16);
    traj_over = TRUE;
  }
  assert_parity(what, ours, ref, n);
}

static void check_traj_st(const char *what, const float *ours, const StTensor *ref) {
  float *r = golden_floats(ref);
  check_traj(what, ours, r, st_numel(ref));
  g_free(r);
}

/* README tolerance, then bit parity. */
static void check_close(const char *what, const float *ours, const StTensor *ref, double tol) {
  golden_assert_close(what, ours, ref, tol);
  float *r = golden_floats(ref);
  assert_parity(what, ours, r, st_numel(ref));
  g_free(r);
}

typedef struct {
  BagelModel *m;
  Arena a;
  Golden *g;
  Dump *dump;
  int n_update;   /* golden context updates consumed */
  int n_text;     /* golden text segments consumed */
  int n_layer_out;/* golden mod.llm.layer<l>.out consumed */
} Replay;

static Replay *replay_open(const char *mode) {
  Replay *r = g_new0(Replay, 1);
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(ckpt_dir, &err);
  g_assert_no_error(err);
  /* the special ids come from the tokenizer config in the product; the golden run used
   * the Qwen2.5 ones, recorded in each MODE.json as new_token_ids */
  BagelTokenIds ids = {151644, 151645, 151652, 151653};
  r->m = bagel_model_load(golden_backend_new(backend), ck, &ids, &err);
  g_assert_no_error(err);
  arena_init(&r->a, r->m->be, 8 << 20);
  r->g = golden_open(data_dir, mode);
  r->dump = dump_new();
  return r;
}

static void replay_close(Replay *r) {
  BkBackend *be = r->m->be;
  dump_free(r->dump);
  golden_close(r->g);
  arena_clear(&r->a);
  bagel_model_free(r->m);
  bk_backend_free(be);
  g_free(r);
}

/* Download a backend tensor as floats. */
static float *to_floats(BkBackend *be, const BkTensor *t) {
  int64_t n = bk_numel(t);
  float *f = g_new(float, n);
  if (t->dt == BK_F32) {
    be->ops->download(be, f, t);
  } else {
    uint16_t *h = g_new(uint16_t, n);
    be->ops->download(be, h, t);
    for (int64_t i = 0; i < n; i++) f[i] = bk_bf16_to_f32(h[i]);
    g_free(h);
  }
  return f;
}

static float *entry_floats(const DumpEntry *e) {
  int64_t n = e->nbytes / st_dtype_size(e->dtype);
  float *f = g_new(float, n);
  for (int64_t i = 0; i < n; i++)
    f[i] = e->dtype == ST_F32 ? ((float *)e->data)[i] : bk_bf16_to_f32(((uint16_t *)e->data)[i]);
  return f;
}

/* The golden key index (the NNNN prefix) of a tensor. */
static int key_index(const StTensor *t) { return atoi(t->name); }

static gint cmp_key_index(gconstpointer a, gconstpointer b) {
  return key_index(*(const StTensor *const *)a) - key_index(*(const StTensor *const *)b);
}

/* After an update: compare the layers' outputs and the whole cache. */
static void check_update(Replay *r, Ctx *c, const char *what) {
  BkBackend *be = r->m->be;
  const int L = r->m->llm->cfg.layers;
  /* the n_update-th context update of the golden run, in event order */
  const char *kinds[] = {"text", "vit", "vae"};
  GPtrArray *all = g_ptr_array_new();
  for (unsigned i = 0; i < G_N_ELEMENTS(kinds); i++) {
    char suffix[96];
    g_snprintf(suffix, sizeof suffix, ".forward_cache_update_%s.out.cache.k.L0", kinds[i]);
    for (int j = 0; j < golden_count(r->g, suffix); j++)
      g_ptr_array_add(all, (gpointer)golden_get(r->g, suffix, j));
  }
  g_ptr_array_sort(all, cmp_key_index);
  g_assert_cmpuint((guint)r->n_update, <, all->len);
  const StTensor *k0 = all->pdata[r->n_update];
  g_ptr_array_free(all, TRUE);
  g_assert_nonnull(k0);
  const int event = key_index(k0);
  char prefix[128];
  g_strlcpy(prefix, k0->name, sizeof prefix);
  *strstr(prefix, ".cache.k.L0") = '\0';
  g_assert_cmpint(ctx_kv_len(c), ==, k0->shape[0]);

  for (int l = 0; l < L; l++) {
    char label[128];
    /* layer output: the last golden layer<l> output before the cache event */
    char suffix[64];
    g_snprintf(suffix, sizeof suffix, ".mod.llm.layer%d.out", l);
    const StTensor *lo = NULL;
    for (int j = 0; j < golden_count(r->g, suffix); j++) {
      const StTensor *t = golden_get(r->g, suffix, j);
      if (key_index(t) < event) lo = t;
    }
    char name[64];
    g_snprintf(name, sizeof name, "upd.u%d.layer%d", 0, l);
    const DumpEntry *e = dump_find(r->dump, name);
    g_assert_nonnull(e);
    g_assert_nonnull(lo);
    float *ours = entry_floats(e);
    g_snprintf(label, sizeof label, "%s layer%d out", what, l);
    check_close(label, ours, lo, TOL_BF16);
    g_free(ours);
    /* cache after the update */
    const KvStore *kv = ctx_store(c);
    for (int v = 0; v < 2; v++) {
      BkTensor rows = kv_rows(kv, v, l, 0, ctx_kv_len(c));
      char key[160];
      g_snprintf(key, sizeof key, "%s.cache.%c.L%d", prefix, v ? 'v' : 'k', l);
      const StTensor *ref = st_find(r->g->st, key);
      g_assert_nonnull(ref);
      g_assert_cmpint(st_numel(ref), ==, bk_numel(&rows));
      float *f = to_floats(be, &rows);
      g_snprintf(label, sizeof label, "%s cache %c L%d", what, v ? 'v' : 'k', l);
      check_close(label, f, ref, TOL_BF16);
      g_free(f);
    }
  }
  r->n_update++;
}

static void upd_text(Replay *r, Ctx *c) {
  const StTensor *ids = golden_get(r->g, ".prepare_prompts.out.packed_text_ids", r->n_text++);
  int64_t n = st_numel(ids);
  int32_t *v = g_new(int32_t, n);
  for (int64_t i = 0; i < n; i++) v[i] = (int32_t)golden_value(ids, i);
  g_assert_cmpint(v[0], ==, r->m->ids.bos);
  g_assert_cmpint(v[n - 1], ==, r->m->ids.eos);
  ctx_set_dump(c, r->dump, "upd");
  GError *err = NULL;
  g_assert_true(ctx_append_text(c, &r->a, v, n, &err));
  g_assert_no_error(err);
  check_update(r, c, "text");
  g_free(v);
}

/* The ViT block from the golden patches (inverse patchify to a CHW image). */
static void upd_vit(Replay *r, Ctx *c) {
  BkBackend *be = r->m->be;
  const StTensor *px = golden_get(r->g, ".mod.vit_model.in.packed_pixel_values", 0);
  const StTensor *rs = golden_get(r->g, ".vit_transform.resize.out_uint8", 0);
  const int H = (int)rs->shape[0], W = (int)rs->shape[1], p = r->m->vit->cfg.patch;
  const int gw = W / p;
  float *chw = g_new(float, 3 * H * W);
  for (int i = 0; i < st_numel(px); i++) {
    int tok = i / (3 * p * p), e = i % (3 * p * p);
    int ky = e / (3 * p), kx = (e / 3) % p, ch = e % 3;
    int y = (tok / gw) * p + ky, x = (tok % gw) * p + kx;
    chw[(ch * H + y) * W + x] = (float)golden_value(px, i);
  }
  BkTensor tokens;
  GError *err = NULL;
  ArenaMark mk = arena_mark(&r->a);
  g_assert_true(vit_encode(r->m->vit, &r->a, chw, H, W, &tokens, r->dump, &err));
  g_assert_no_error(err);
  float *f = entry_floats(dump_find(r->dump, "vit_out"));
  check_close("vit_out (post-layernorm)", f, golden_get(r->g, ".mod.vit_model.out", 0), TOL_BF16);
  g_free(f);
  /* tokens = bf16(connector + vit_pos_embed): build the reference from the golden parts */
  const StTensor *conn = golden_get(r->g, ".mod.connector.out", 0);
  const StTensor *pos = golden_get(r->g, ".mod.vit_pos_embed.out", 0);
  float *ref = g_new(float, st_numel(conn));
  for (int64_t i = 0; i < st_numel(conn); i++)
    ref[i] = bk_round_bf16((float)(golden_value(conn, i) + golden_value(pos, i)));
  f = to_floats(be, &tokens);
  GoldenDiff d = golden_compare_floats(f, ref, st_numel(conn));
  g_test_message("%-28s rel L2 %.3e  max|d| %.3e", "vit_tokens", d.rel_l2, d.max_abs);
  g_assert_cmpfloat(d.rel_l2, <=, TOL_BF16);
  assert_parity("vit_tokens", f, ref, st_numel(conn));
  /* the position table part alone is exact */
  g_free(f);
  g_free(ref);
  ctx_set_dump(c, r->dump, "upd");
  g_assert_true(ctx_append_vit(c, &r->a, &tokens, &err));
  g_assert_no_error(err);
  arena_reset(&r->a, mk);
  check_update(r, c, "vit");
  g_free(chw);
}

/* The VAE block from the golden latent of the input image. */
static void upd_vae(Replay *r, Ctx *c, int *h, int *w) {
  BkBackend *be = r->m->be;
  const StTensor *z = golden_get(r->g, ".vae.encode.out.z", 0);  /* [1,16,H/8,W/8] */
  const int zc = (int)z->shape[1], zh = (int)z->shape[2], zw = (int)z->shape[3];
  *h = zh / 2;
  *w = zw / 2;
  ArenaMark mk = arena_mark(&r->a);
  BkTensor zt = arena_tensor(&r->a, BK_F32, 3, (int64_t[]){zc, zh, zw});
  float *zf = golden_floats(z);
  be->ops->upload(be, &zt, zf);
  g_free(zf);
  BkTensor lat = arena_2d(&r->a, BK_F32, (int64_t)*h * *w, 4 * zc);
  be->ops->latent_pack(be, &lat, &zt);
  ctx_set_dump(c, r->dump, "upd");
  GError *err = NULL;
  g_assert_true(ctx_append_vae(c, &r->a, &lat, *h, *w, &err));
  g_assert_no_error(err);
  arena_reset(&r->a, mk);
  check_update(r, c, "vae");
}

/* Greedy decoding with teacher-forced ids (golden generate_text.out: [n,1], bos first). */
static void decode(Replay *r, Ctx *ctx, int decode_call) {
  BkBackend *be = r->m->be;
  const StTensor *gold = golden_get(r->g, ".generate_text.out.out", decode_call);
  const int64_t n = st_numel(gold);
  const int64_t V = r->m->llm->cfg.vocab;
  g_assert_cmpint((int32_t)golden_value(gold, 0), ==, r->m->ids.bos);
  Ctx *c = ctx_fork(ctx);
  ArenaMark mk = arena_mark(&r->a);
  BkTensor logits = arena_2d(&r->a, BK_BF16, 1, V);
  uint16_t *host = g_new(uint16_t, V);
  int n_logits = golden_count(r->g, ".mod.lm_head.out");
  for (int64_t k = 0; k < n; k++) {
    int32_t tok = (int32_t)golden_value(gold, k);   /* teacher forcing */
    GError *err = NULL;
    g_assert_true(ctx_decode(c, &r->a, tok, &logits, &err));
    be->ops->download(be, host, &logits);
    int32_t pred = textgen_argmax_bf16(host, V);
    int32_t want = k + 1 < n ? (int32_t)golden_value(gold, k + 1) : -1;
    if (want >= 0) {
      if (pred != want) g_error("decode step %" G_GINT64_FORMAT ": predicted %d, golden %d", k, pred, want);
    }
    /* golden logits of this step, when extracted (all for und, the first two otherwise) */
    const StTensor *gl = NULL;
    for (int j = 0; j < n_logits; j++) {
      const StTensor *t = golden_get(r->g, ".mod.lm_head.out", j);
      if (j == k && decode_call == 0) gl = t;
    }
    if (gl) {
      float *f = g_new(float, V);
      for (int64_t i = 0; i < V; i++) f[i] = bk_bf16_to_f32(host[i]);
      char label[64];
      g_snprintf(label, sizeof label, "logits step %" G_GINT64_FORMAT, k);
      check_close(label, f, gl, TOL_BF16);
      g_free(f);
    }
  }
  g_test_message("decode: %" G_GINT64_FORMAT " golden ids reproduced", n - 1);
  g_free(host);
  arena_reset(&r->a, mk);
  ctx_free(c);
}

/* The denoising loop from the golden initial noise; compares every step. */
static void denoise(Replay *r, Ctx *cond, Ctx *ut, Ctx *ui, int h, int w, const BagelSampler *s) {
  const int64_t N = (int64_t)h * w, C = r->m->gen->latent_channels;
  const StTensor *noise = golden_get(r->g, ".prepare_vae_latent.out.packed_init_noises", 0);
  g_assert_cmpint(st_numel(noise), ==, N * C);
  float *x = golden_floats(noise);
  Dump *d = dump_new();
  GError *err = NULL;
  g_assert_true(sampler_run(r->m, &r->a, cond, ut, ui, h, w, s, x, NULL, d, &err));
  g_assert_no_error(err);
  float *t = g_new(float, s->steps), *dt = g_new(float, s->steps);
  sampler_schedule(s->steps, s->timestep_shift, t, dt);
  int branch = 0;
  for (int j = 0; j < s->steps - 1; j++) {
    char name[32], label[64];
    const StTensor *gt = golden_get(r->g, "._forward_flow.in.timestep", j);
    g_assert_cmpfloat((float)golden_value(gt, 0), ==, t[j]);   /* schedule is bit-exact */
    g_snprintf(name, sizeof name, "x_t.%d", j);
    float *f = entry_floats(dump_find(d, name));
    g_snprintf(label, sizeof label, "x_t step %d", j);
    check_traj_st(label, f, golden_get(r->g, "._forward_flow.in.x_t", j));
    g_free(f);
    const char *br[] = {"v_cond", "v_text", "v_img"};
    for (int b = 0; b < 3; b++) {
      g_snprintf(name, sizeof name, "%s.%d", br[b], j);
      const DumpEntry *e = dump_find(d, name);
      if (!e) continue;
      /* golden llm2vae outputs cover the block's N+2 rows; the latents are rows 1..N */
      const StTensor *gv = golden_get(r->g, ".mod.llm2vae.out", branch++);
      float *full = golden_floats(gv), *ours = entry_floats(e);
      check_traj(name, ours, full + C, N * C);
      g_free(full);
      g_free(ours);
    }
    g_snprintf(name, sizeof name, "v.%d", j);
    f = entry_floats(dump_find(d, name));
    g_snprintf(label, sizeof label, "velocity after CFG step %d", j);
    check_traj_st(label, f, golden_get(r->g, "._forward_flow.out.out", j));
    g_free(f);
  }
  g_assert_cmpint(branch, ==, golden_count(r->g, ".mod.llm2vae.out"));
  check_traj_st("final latent", x, golden_get(r->g, ".generate_image.out.out.0", 0));
  if (traj_over)
    g_test_incomplete("denoising trajectory beyond the 1e-2 tolerance on this backend (reported, "
                      "BAGEL_GOLDEN_TRAJECTORY=report)");
  traj_over = FALSE;
  g_free(t);
  g_free(dt);
  g_free(x);
  dump_free(d);
}

static Ctx *new_ctx(Replay *r) {
  GError *err = NULL;
  Ctx *c = ctx_new(r->m, 256, &err);
  g_assert_no_error(err);
  return c;
}

/* Each mode mirrors inferencer.py interleave_inference for its input list. */

static void test_und(void) {
  Replay *r = replay_open("und");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  upd_vit(r, gen);      /* image (understanding: ViT only) */
  upd_text(r, gen);     /* prompt */
  upd_text(r, img);     /* the unused image-guidance context also gets the prompt */
  decode(r, gen, 0);
  ctx_free(gen);
  ctx_free(img);
  replay_close(r);
}

static void test_und_think(void) {
  Replay *r = replay_open("und_think");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  upd_text(r, gen);     /* VLM think system prompt */
  upd_text(r, img);
  upd_vit(r, gen);
  upd_text(r, gen);
  upd_text(r, img);
  decode(r, gen, 0);
  ctx_free(gen);
  ctx_free(img);
  replay_close(r);
}

static const BagelSampler t2i_sampler = {.steps = 5, .cfg_text = 4, .cfg_image = 1,
                                         .cfg_interval = {0.6f, 1.0f}, .timestep_shift = 3,
                                         .renorm = BAGEL_RENORM_GLOBAL, .renorm_min = 0};
static const BagelSampler edit_sampler = {.steps = 5, .cfg_text = 4, .cfg_image = 2,
                                          .cfg_interval = {0.0f, 1.0f}, .timestep_shift = 3,
                                          .renorm = BAGEL_RENORM_TEXT_CHANNEL, .renorm_min = 0};

static void test_t2i(void) {
  Replay *r = replay_open("t2i");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  Ctx *txt = ctx_fork(gen);  /* cfg_text = deepcopy(gen) before the prompt: empty */
  upd_text(r, gen);
  upd_text(r, img);
  denoise(r, gen, txt, img, 64 / 16, 96 / 16, &t2i_sampler);
  ctx_free(gen);
  ctx_free(txt);
  ctx_free(img);
  replay_close(r);
}

static void test_t2i_think(void) {
  Replay *r = replay_open("t2i_think");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  upd_text(r, gen);     /* GEN think system prompt */
  upd_text(r, img);
  Ctx *txt = ctx_fork(gen);
  upd_text(r, gen);     /* prompt */
  upd_text(r, img);
  decode(r, gen, 0);    /* the reasoning */
  upd_text(r, gen);     /* the reasoning, re-encoded, appended to gen only */
  denoise(r, gen, txt, img, 64 / 16, 96 / 16, &t2i_sampler);
  ctx_free(gen);
  ctx_free(txt);
  ctx_free(img);
  replay_close(r);
}

static void test_edit(void) {
  Replay *r = replay_open("edit");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  int h, w;
  upd_vae(r, gen, &h, &w);
  upd_vit(r, gen);
  Ctx *txt = ctx_fork(gen);  /* cfg_text = [V, T] */
  upd_text(r, gen);
  upd_text(r, img);
  denoise(r, gen, txt, img, h, w, &edit_sampler);
  ctx_free(gen);
  ctx_free(txt);
  ctx_free(img);
  replay_close(r);
}

static void test_edit_think(void) {
  Replay *r = replay_open("edit_think");
  Ctx *gen = new_ctx(r), *img = new_ctx(r);
  int h, w;
  upd_text(r, gen);
  upd_text(r, img);
  upd_vae(r, gen, &h, &w);
  upd_vit(r, gen);
  Ctx *txt = ctx_fork(gen);  /* [S, V, T] */
  upd_text(r, gen);
  upd_text(r, img);
  decode(r, gen, 0);
  upd_text(r, gen);
  denoise(r, gen, txt, img, h, w, &edit_sampler);
  ctx_free(gen);
  ctx_free(txt);
  ctx_free(img);
  replay_close(r);
}

int main(int argc, char **argv) {
  backend = golden_take_backend(&argc, argv);
  g_test_init(&argc, &argv, NULL);
  if (argc != 3) {
    g_printerr("usage: %s TINY_CKPT_DIR TESTS_DATA_DIR [--backend cpu|cuda]\n", argv[0]);
    return 2;
  }
  ckpt_dir = argv[1];
  data_dir = argv[2];
  g_test_add_func("/model-golden/und", test_und);
  g_test_add_func("/model-golden/t2i", test_t2i);
  g_test_add_func("/model-golden/edit", test_edit);
  g_test_add_func("/model-golden/und_think", test_und_think);
  g_test_add_func("/model-golden/t2i_think", test_t2i_think);
  g_test_add_func("/model-golden/edit_think", test_edit_think);
  return g_test_run();
}
