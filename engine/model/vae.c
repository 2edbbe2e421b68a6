/* engine/model/vae.c — the FLUX.1 autoencoder (vae.h; docs/bagel-spec.md §1.7).
 *
 * The module tree is FLUX's (ByteDance-Seed/Bagel modeling/autoencoder.py):
 *   ResnetBlock  x + conv2(swish(GN2(conv1(swish(GN1(x))))))   (1×1 nin_shortcut on x
 *                when the width changes)
 *   AttnBlock    x + proj_out(attention(q, k, v)) with q, k, v = 1×1 convs of GN(x);
 *                one head over all H·W positions, dim C, scale 1/√C
 *   Downsample   zero-pad right and bottom by 1, conv 3×3 stride 2
 *   Upsample     nearest ×2, conv 3×3 pad 1
 * Activations are [C, H, W] fp32.  A block reads one of two ping-pong buffers (each the
 * size of the largest activation) and writes the other; its temporaries come from the
 * arena above a mark that is rewound when the block ends. */
#include "vae.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "bagel.h"

/* ---- loading ----------------------------------------------------------------------- */

static gboolean check_shape(const Checkpoint *ck, const BkTensor *t, const char *name, int nd,
                            const int64_t *ne, GError **error) {
  gboolean ok = t->dt == BK_F32 && t->nd == nd;
  for (int i = 0; ok && i < nd; i++) ok = t->ne[i] == ne[i];
  if (!ok) {
    GString *want = g_string_new("F32[");
    for (int i = 0; i < nd; i++)
      g_string_append_printf(want, "%s%" G_GINT64_FORMAT, i ? "," : "", ne[i]);
    g_string_append_c(want, ']');
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_MODEL, "%s: tensor \"%s\" is %s with %d "
                "dimensions, the VAE needs %s", ck->dir, name, bk_dtype_name(t->dt), t->nd,
                want->str);
    g_string_free(want, TRUE);
  }
  return ok;
}

/* weight [cout, cin, k, k] and bias [cout] under the printf prefix */
static gboolean G_GNUC_PRINTF(8, 9)
load_conv(BkBackend *be, const Checkpoint *ck, VaeConv *c, int cout, int cin, int k,
          GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *wn = g_strconcat(p, ".weight", NULL), *bn = g_strconcat(p, ".bias", NULL);
  gboolean ok = wt_load(be, ck, &c->weight, error, "%s", wn) &&
                check_shape(ck, &c->weight, wn, 4, (int64_t[]){cout, cin, k, k}, error) &&
                wt_load(be, ck, &c->bias, error, "%s", bn) &&
                check_shape(ck, &c->bias, bn, 1, (int64_t[]){cout}, error);
  g_free(wn);
  g_free(bn);
  g_free(p);
  return ok;
}

static gboolean G_GNUC_PRINTF(6, 7)
load_norm(BkBackend *be, const Checkpoint *ck, VaeNorm *n, int c, GError **error,
          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *wn = g_strconcat(p, ".weight", NULL), *bn = g_strconcat(p, ".bias", NULL);
  gboolean ok = wt_load(be, ck, &n->weight, error, "%s", wn) &&
                check_shape(ck, &n->weight, wn, 1, (int64_t[]){c}, error) &&
                wt_load(be, ck, &n->bias, error, "%s", bn) &&
                check_shape(ck, &n->bias, bn, 1, (int64_t[]){c}, error);
  g_free(wn);
  g_free(bn);
  g_free(p);
  return ok;
}

static gboolean load_resnet(BkBackend *be, const Checkpoint *ck, VaeResnetBlock *b, int cin,
                            int cout, const char *p, GError **error) {
  b->in_channels = cin;
  b->out_channels = cout;
  return load_norm(be, ck, &b->norm1, cin, error, "%s.norm1", p) &&
         load_conv(be, ck, &b->conv1, cout, cin, 3, error, "%s.conv1", p) &&
         load_norm(be, ck, &b->norm2, cout, error, "%s.norm2", p) &&
         load_conv(be, ck, &b->conv2, cout, cout, 3, error, "%s.conv2", p) &&
         (cin == cout ||
          load_conv(be, ck, &b->nin_shortcut, cout, cin, 1, error, "%s.nin_shortcut", p));
}

static gboolean load_mid(BkBackend *be, const Checkpoint *ck, VaeMid *mid, int c,
                         const char *part, GError **error) {
  char *b1 = g_strdup_printf("%s.mid.block_1", part), *b2 = g_strdup_printf("%s.mid.block_2", part);
  VaeAttnBlock *at = &mid->attn_1;
  gboolean ok = load_resnet(be, ck, &mid->block_1, c, c, b1, error) &&
                load_norm(be, ck, &at->norm, c, error, "%s.mid.attn_1.norm", part) &&
                load_conv(be, ck, &at->q, c, c, 1, error, "%s.mid.attn_1.q", part) &&
                load_conv(be, ck, &at->k, c, c, 1, error, "%s.mid.attn_1.k", part) &&
                load_conv(be, ck, &at->v, c, c, 1, error, "%s.mid.attn_1.v", part) &&
                load_conv(be, ck, &at->proj_out, c, c, 1, error, "%s.mid.attn_1.proj_out", part) &&
                load_resnet(be, ck, &mid->block_2, c, c, b2, error);
  g_free(b1);
  g_free(b2);
  return ok;
}

static gboolean load_encoder(BkBackend *be, const Checkpoint *ck, const VaeConfig *c,
                             VaeEncoder *e, GError **error) {
  if (!load_conv(be, ck, &e->conv_in, c->ch, c->in_channels, 3, error, "encoder.conv_in"))
    return FALSE;
  int block_in = c->ch;
  for (int i = 0; i < c->levels; i++) {
    VaeLevel *lv = &e->down[i];
    const int block_out = c->ch * c->ch_mult[i];
    lv->n_block = c->num_res_blocks;
    lv->block = g_new0(VaeResnetBlock, lv->n_block);
    for (int j = 0; j < lv->n_block; j++) {
      char *p = g_strdup_printf("encoder.down.%d.block.%d", i, j);
      gboolean ok = load_resnet(be, ck, &lv->block[j], block_in, block_out, p, error);
      g_free(p);
      if (!ok) return FALSE;
      block_in = block_out;
    }
    if (i != c->levels - 1 &&
        !load_conv(be, ck, &lv->downsample_conv, block_in, block_in, 3, error,
                   "encoder.down.%d.downsample.conv", i))
      return FALSE;
  }
  const int zc2 = 2 * c->z_channels;
  return load_mid(be, ck, &e->mid, block_in, "encoder", error) &&
         load_norm(be, ck, &e->norm_out, block_in, error, "encoder.norm_out") &&
         load_conv(be, ck, &e->conv_out, zc2, block_in, 3, error, "encoder.conv_out");
}

static gboolean load_decoder(BkBackend *be, const Checkpoint *ck, const VaeConfig *c,
                             VaeDecoder *d, GError **error) {
  int block_in = c->ch * c->ch_mult[c->levels - 1];
  if (!load_conv(be, ck, &d->conv_in, block_in, c->z_channels, 3, error, "decoder.conv_in") ||
      !load_mid(be, ck, &d->mid, block_in, "decoder", error))
    return FALSE;
  for (int i = c->levels - 1; i >= 0; i--) {
    VaeLevel *lv = &d->up[i];
    const int block_out = c->ch * c->ch_mult[i];
    lv->n_block = c->num_res_blocks + 1;
    lv->block = g_new0(VaeResnetBlock, lv->n_block);
    for (int j = 0; j < lv->n_block; j++) {
      char *p = g_strdup_printf("decoder.up.%d.block.%d", i, j);
      gboolean ok = load_resnet(be, ck, &lv->block[j], block_in, block_out, p, error);
      g_free(p);
      if (!ok) return FALSE;
      block_in = block_out;
    }
    if (i != 0 && !load_conv(be, ck, &lv->upsample_conv, block_in, block_in, 3, error,
                             "decoder.up.%d.upsample.conv", i))
      return FALSE;
  }
  return load_norm(be, ck, &d->norm_out, block_in, error, "decoder.norm_out") &&
         load_conv(be, ck, &d->conv_out, c->out_channels, block_in, 3, error,
                   "decoder.conv_out");
}

VaeModel *vae_load(BkBackend *be, const Checkpoint *ck, GError **error) {
  VaeModel *m = g_new0(VaeModel, 1);
  m->be = be;
  m->cfg = ck->cfg.vae;
  if (!vae_config_check(&m->cfg, ck->dir, error) ||
      !load_encoder(be, ck, &m->cfg, &m->encoder, error) ||
      !load_decoder(be, ck, &m->cfg, &m->decoder, error)) {
    vae_free(m);
    return NULL;
  }
  return m;
}

static void free_conv(BkBackend *be, VaeConv *c) {
  wt_free(be, &c->weight);
  wt_free(be, &c->bias);
}

static void free_norm(BkBackend *be, VaeNorm *n) {
  wt_free(be, &n->weight);
  wt_free(be, &n->bias);
}

static void free_resnet(BkBackend *be, VaeResnetBlock *b) {
  free_norm(be, &b->norm1);
  free_conv(be, &b->conv1);
  free_norm(be, &b->norm2);
  free_conv(be, &b->conv2);
  free_conv(be, &b->nin_shortcut);
}

static void free_mid(BkBackend *be, VaeMid *mid) {
  free_resnet(be, &mid->block_1);
  free_norm(be, &mid->attn_1.norm);
  free_conv(be, &mid->attn_1.q);
  free_conv(be, &mid->attn_1.k);
  free_conv(be, &mid->attn_1.v);
  free_conv(be, &mid->attn_1.proj_out);
  free_resnet(be, &mid->block_2);
}

static void free_level(BkBackend *be, VaeLevel *lv) {
  for (int j = 0; lv->block && j < lv->n_block; j++) free_resnet(be, &lv->block[j]);
  g_free(lv->block);
  free_conv(be, &lv->downsample_conv);
  free_conv(be, &lv->upsample_conv);
}

void vae_free(VaeModel *m) {
  if (!m) return;
  BkBackend *be = m->be;
  free_conv(be, &m->encoder.conv_in);
  for (int i = 0; i < VAE_MAX_LEVELS; i++) {
    free_level(be, &m->encoder.down[i]);
    free_level(be, &m->decoder.up[i]);
  }
  free_mid(be, &m->encoder.mid);
  free_norm(be, &m->encoder.norm_out);
  free_conv(be, &m->encoder.conv_out);
  free_conv(be, &m->decoder.conv_in);
  free_mid(be, &m->decoder.mid);
  free_norm(be, &m->decoder.norm_out);
  free_conv(be, &m->decoder.conv_out);
  g_free(m);
}

int vae_downsample_factor(const VaeConfig *cfg) { return 1 << (cfg->levels - 1); }

/* ---- the forward pass -------------------------------------------------------------- */

/* One encode or decode call. */
typedef struct {
  VaeModel *m;
  BkBackend *be;
  Arena *a;
  Dump *dump;
  const char *part;     /* "encoder" / "decoder": the dump names' prefix */
  BkTensor pp[2];       /* ping-pong activation buffers (flat, the largest activation) */
  int cur;              /* pp[cur] holds the current activation */
} VaeRun;

static BkTensor chw(void *data, int64_t c, int64_t h, int64_t w) {
  return bk_tensor(data, BK_F32, 3, (int64_t[]){c, h, w});
}

/* The buffer the next stage writes, shaped [c, h, w]; vae_flip() makes it current. */
static BkTensor vae_next(VaeRun *r, int64_t c, int64_t h, int64_t w) {
  return chw(r->pp[r->cur ^ 1].data, c, h, w);
}

static void vae_flip(VaeRun *r) { r->cur ^= 1; }

static void G_GNUC_PRINTF(3, 4) vae_dump(VaeRun *r, const BkTensor *t, const char *fmt, ...) {
  if (!r->dump || !bk_ok(r->be)) return;
  va_list ap;
  va_start(ap, fmt);
  char *sub = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  char *name = g_strdup_printf("vae.%s.%s", r->part, sub);
  dump_tensor(r->dump, r->be, name, t);
  g_free(name);
  g_free(sub);
}

static void conv(VaeRun *r, BkTensor *y, const BkTensor *x, const VaeConv *c, int stride,
                 int pad) {
  static const int pad_none[4] = {0, 0, 0, 0}, pad_one[4] = {1, 1, 1, 1};
  /* Downsample: F.pad(x, (0, 1, 0, 1)) = right and bottom by 1, then no padding */
  static const int pad_down[4] = {0, 0, 1, 1};
  const int *p = stride == 2 ? pad_down : pad ? pad_one : pad_none;
  r->be->ops->conv2d(r->be, y, x, &c->weight, &c->bias, stride, p);
  r->m->last_flops += 2.0 * (double)bk_numel(y) * (double)(bk_numel(&c->weight) / y->ne[0]);
}

static void group_norm(VaeRun *r, BkTensor *y, const BkTensor *x, const VaeNorm *n, bool swish) {
  r->be->ops->group_norm(r->be, y, x, &n->weight, &n->bias, r->m->cfg.groups,
                         (float)r->m->cfg.gn_eps, swish);
}

/* out = shortcut(x) + conv2(swish(GN2(conv1(swish(GN1(x)))))) */
static void resnet_block(VaeRun *r, const VaeResnetBlock *b, const BkTensor *x, BkTensor *out) {
  BkBackend *be = r->be;
  const int64_t cin = b->in_channels, cout = b->out_channels, H = x->ne[1], W = x->ne[2];
  ArenaMark mk = arena_mark(r->a);
  /* t1 holds GN1(x) [cin], later GN2 [cout], then the shortcut [cout]; t2 conv1, conv2 */
  BkTensor t1 = arena_tensor(r->a, BK_F32, 3, (int64_t[]){MAX(cin, cout), H, W});
  BkTensor t2 = arena_tensor(r->a, BK_F32, 3, (int64_t[]){cout, H, W});
  if (bk_ok(be)) {
    BkTensor n1 = chw(t1.data, cin, H, W), n2 = chw(t1.data, cout, H, W);
    group_norm(r, &n1, x, &b->norm1, true);
    conv(r, &t2, &n1, &b->conv1, 1, 1);
    group_norm(r, &n2, &t2, &b->norm2, true);
    conv(r, &t2, &n2, &b->conv2, 1, 1);
    if (cin != cout) {
      conv(r, &n2, x, &b->nin_shortcut, 1, 0);
      be->ops->add(be, out, &n2, &t2);
    } else {
      be->ops->add(be, out, x, &t2);
    }
  }
  arena_reset(r->a, mk);
}

/* out = x + proj_out(softmax(q·kᵀ/√C)·v), q/k/v = 1×1 convs of GN(x), positions = H·W.
 * The convs work channel-major [C, L]; attention wants position-major [L, 1, C]. */
static void attn_block(VaeRun *r, const VaeAttnBlock *b, const BkTensor *x, BkTensor *out) {
  BkBackend *be = r->be;
  const int64_t C = x->ne[0], H = x->ne[1], W = x->ne[2], L = H * W;
  ArenaMark mk = arena_mark(r->a);
  BkTensor hn = arena_tensor(r->a, BK_F32, 3, x->ne), q = arena_tensor(r->a, BK_F32, 3, x->ne),
           k = arena_tensor(r->a, BK_F32, 3, x->ne), v = arena_tensor(r->a, BK_F32, 3, x->ne),
           spare = arena_tensor(r->a, BK_F32, 3, x->ne);
  if (bk_ok(be)) {
    group_norm(r, &hn, x, &b->norm, false);
    conv(r, &q, &hn, &b->q, 1, 0);
    conv(r, &k, &hn, &b->k, 1, 0);
    conv(r, &v, &hn, &b->v, 1, 0);
    /* each transpose frees its source for the next one: qᵀ -> spare, kᵀ -> q, vᵀ -> k,
     * the attention output -> v, back to [C, L] -> hn, proj_out -> q */
    BkTensor q_cl = bk_tensor_2d(q.data, BK_F32, C, L), k_cl = bk_tensor_2d(k.data, BK_F32, C, L),
             v_cl = bk_tensor_2d(v.data, BK_F32, C, L), o_cl = bk_tensor_2d(hn.data, BK_F32, C, L);
    BkTensor qt = bk_tensor_2d(spare.data, BK_F32, L, C), kt = bk_tensor_2d(q.data, BK_F32, L, C),
             vt = bk_tensor_2d(k.data, BK_F32, L, C), ot = bk_tensor_2d(v.data, BK_F32, L, C);
    be->ops->transpose(be, &qt, &q_cl);
    be->ops->transpose(be, &kt, &k_cl);
    be->ops->transpose(be, &vt, &v_cl);
    const int64_t seq[3] = {L, 1, C};   /* one head of dim C */
    BkTensor qs = bk_reshape(qt, 3, seq), ks = bk_reshape(kt, 3, seq),
             vs = bk_reshape(vt, 3, seq), os = bk_reshape(ot, 3, seq);
    be->ops->attention(be, &os, &qs, NULL, NULL, &ks, &vs, BK_CAUSAL_NONE,
                       (float)(1.0 / sqrt((double)C)));
    r->m->last_flops += 4.0 * (double)L * (double)L * (double)C;
    be->ops->transpose(be, &o_cl, &ot);
    BkTensor proj = chw(q.data, C, H, W);
    conv(r, &proj, &hn, &b->proj_out, 1, 0);
    be->ops->add(be, out, x, &proj);
  }
  arena_reset(r->a, mk);
}

/* h = the current activation; runs block_1, attn_1, block_2 and returns the new one. */
static BkTensor mid_forward(VaeRun *r, const VaeMid *mid, BkTensor h) {
  const int64_t C = h.ne[0], H = h.ne[1], W = h.ne[2];
  BkTensor o = vae_next(r, C, H, W);
  resnet_block(r, &mid->block_1, &h, &o);
  vae_flip(r);
  vae_dump(r, &o, "mid.block_1");
  h = o;
  o = vae_next(r, C, H, W);
  attn_block(r, &mid->attn_1, &h, &o);
  vae_flip(r);
  vae_dump(r, &o, "mid.attn_1");
  h = o;
  o = vae_next(r, C, H, W);
  resnet_block(r, &mid->block_2, &h, &o);
  vae_flip(r);
  vae_dump(r, &o, "mid.block_2");
  return o;
}

/* GN + swish + conv_out into y (an arena tensor of the caller's) */
static void out_forward(VaeRun *r, const VaeNorm *n, const VaeConv *c, const BkTensor *h,
                        BkTensor *y) {
  ArenaMark mk = arena_mark(r->a);
  BkTensor t = arena_tensor(r->a, BK_F32, 3, h->ne);
  if (bk_ok(r->be)) {
    group_norm(r, &t, h, n, true);
    conv(r, y, &t, c, 1, 1);
  }
  arena_reset(r->a, mk);
}

static gboolean backend_error(VaeModel *m, Arena *a, ArenaMark entry, const char *what,
                              GError **error) {
  arena_reset(a, entry);
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "VAE %s: %s", what, m->be->error);
  return FALSE;
}

/* Size the ping-pong buffers: the largest [C, H, W] a block reads or writes. */
static int64_t max_activation(const VaeConfig *c, int64_t H0, int64_t W0, bool decoder) {
  int64_t best = 0;
  for (int i = 0; i < c->levels; i++) {
    /* encoder level i runs at full/2^i; decoder level i at the same size */
    int64_t hw = (H0 >> i) * (W0 >> i);
    int64_t cin = decoder ? c->ch * c->ch_mult[MIN(i + 1, c->levels - 1)]
                          : c->ch * (i ? c->ch_mult[i - 1] : 1);
    int64_t cmax = MAX(cin, (int64_t)c->ch * c->ch_mult[i]);
    best = MAX(best, cmax * hw);
  }
  return best;
}

gboolean vae_encode(VaeModel *m, Arena *a, const BkTensor *image, BkTensor *moments_out,
                    Dump *dump, GError **error) {
  const VaeConfig *c = &m->cfg;
  const int f = vae_downsample_factor(c);
  if (image->dt != BK_F32 || image->nd != 3 || image->ne[0] != c->in_channels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "VAE encode: the image must be "
                "F32 [%d, H, W], got %s with %d dimensions", c->in_channels,
                bk_dtype_name(image->dt), image->nd);
    return FALSE;
  }
  const int64_t H = image->ne[1], W = image->ne[2];
  if (H <= 0 || W <= 0 || H % f || W % f) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "VAE encode: image size %"
                G_GINT64_FORMAT "x%" G_GINT64_FORMAT " (WxH) is not a positive multiple of %d "
                "in both directions (the VAE downsamples by %d)", W, H, f, f);
    return FALSE;
  }
  if (!bk_ok(m->be)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "VAE encode: backend already failed: "
                "%s", m->be->error);
    return FALSE;
  }
  const ArenaMark entry = arena_mark(a);
  m->last_flops = 0;
  *moments_out = arena_tensor(a, BK_F32, 3, (int64_t[]){2 * c->z_channels, H / f, W / f});
  const ArenaMark mk = arena_mark(a);
  const int64_t big = max_activation(c, H, W, false);
  VaeRun r = {.m = m, .be = m->be, .a = a, .dump = dump, .part = "encoder"};
  r.pp[0] = arena_tensor(a, BK_F32, 1, &big);
  r.pp[1] = arena_tensor(a, BK_F32, 1, &big);
  if (!bk_ok(m->be)) return backend_error(m, a, entry, "encode", error);

  const VaeEncoder *e = &m->encoder;
  BkTensor h = chw(r.pp[0].data, c->ch, H, W);
  conv(&r, &h, image, &e->conv_in, 1, 1);
  vae_dump(&r, &h, "conv_in");
  for (int i = 0; i < c->levels; i++) {
    const VaeLevel *lv = &e->down[i];
    for (int j = 0; j < lv->n_block; j++) {
      BkTensor o = vae_next(&r, lv->block[j].out_channels, h.ne[1], h.ne[2]);
      resnet_block(&r, &lv->block[j], &h, &o);
      vae_flip(&r);
      vae_dump(&r, &o, "down.%d.block.%d", i, j);
      h = o;
    }
    if (i != c->levels - 1) {
      BkTensor o = vae_next(&r, h.ne[0], h.ne[1] / 2, h.ne[2] / 2);
      conv(&r, &o, &h, &lv->downsample_conv, 2, 0);
      vae_flip(&r);
      vae_dump(&r, &o, "down.%d.downsample", i);
      h = o;
    }
    if (!bk_ok(m->be)) return backend_error(m, a, entry, "encode", error);
  }
  h = mid_forward(&r, &e->mid, h);
  out_forward(&r, &e->norm_out, &e->conv_out, &h, moments_out);
  vae_dump(&r, moments_out, "conv_out");
  if (!bk_ok(m->be)) return backend_error(m, a, entry, "encode", error);
  arena_reset(a, mk);
  return TRUE;
}

void vae_posterior(const VaeConfig *cfg, const float *moments, const float *eps, int h, int w,
                   float *z_out, float *sample_out) {
  const int64_t n = (int64_t)cfg->z_channels * h * w;
  const float *mean = moments, *logvar = moments + n;
  /* python floats become fp32 scalars in fp32 tensor ops: every step rounds to fp32 */
  const float scale = cfg->scale_factor, shift = cfg->shift_factor;
  for (int64_t i = 0; i < n; i++) {
    float std = expf(0.5f * logvar[i]);
    float s = mean[i] + std * eps[i];
    if (sample_out) sample_out[i] = s;
    z_out[i] = scale * (s - shift);
  }
}

gboolean vae_decode(VaeModel *m, Arena *a, const BkTensor *z, BkTensor *image_out, Dump *dump,
                    GError **error) {
  const VaeConfig *c = &m->cfg;
  const int f = vae_downsample_factor(c);
  if (z->dt != BK_F32 || z->nd != 3 || z->ne[0] != c->z_channels || z->ne[1] <= 0 ||
      z->ne[2] <= 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG, "VAE decode: the latent must be "
                "F32 [%d, h, w], got %s with %d dimensions, %" G_GINT64_FORMAT " channels",
                c->z_channels, bk_dtype_name(z->dt), z->nd, z->nd ? z->ne[0] : 0);
    return FALSE;
  }
  if (!bk_ok(m->be)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_BACKEND, "VAE decode: backend already failed: "
                "%s", m->be->error);
    return FALSE;
  }
  const int64_t h = z->ne[1], w = z->ne[2], H = h * f, W = w * f;
  const ArenaMark entry = arena_mark(a);
  m->last_flops = 0;
  *image_out = arena_tensor(a, BK_F32, 3, (int64_t[]){c->out_channels, H, W});
  const ArenaMark mk = arena_mark(a);
  const int64_t big = max_activation(c, H, W, true);
  VaeRun r = {.m = m, .be = m->be, .a = a, .dump = dump, .part = "decoder"};
  r.pp[0] = arena_tensor(a, BK_F32, 1, &big);
  r.pp[1] = arena_tensor(a, BK_F32, 1, &big);
  BkTensor zin = arena_tensor(a, BK_F32, 3, z->ne);
  if (!bk_ok(m->be)) return backend_error(m, a, entry, "decode", error);

  /* z / scale + shift: a true fp32 division, as torch does on the CPU */
  const int64_t n = bk_numel(z);
  float *host = g_new(float, n);
  m->be->ops->download(m->be, host, z);
  for (int64_t i = 0; i < n; i++) host[i] = host[i] / c->scale_factor + c->shift_factor;
  m->be->ops->upload(m->be, &zin, host);
  g_free(host);
  vae_dump(&r, &zin, "in");

  const VaeDecoder *d = &m->decoder;
  BkTensor x = chw(r.pp[0].data, c->ch * c->ch_mult[c->levels - 1], h, w);
  conv(&r, &x, &zin, &d->conv_in, 1, 1);
  vae_dump(&r, &x, "conv_in");
  x = mid_forward(&r, &d->mid, x);
  for (int i = c->levels - 1; i >= 0; i--) {
    const VaeLevel *lv = &d->up[i];
    for (int j = 0; j < lv->n_block; j++) {
      BkTensor o = vae_next(&r, lv->block[j].out_channels, x.ne[1], x.ne[2]);
      resnet_block(&r, &lv->block[j], &x, &o);
      vae_flip(&r);
      vae_dump(&r, &o, "up.%d.block.%d", i, j);
      x = o;
    }
    if (i != 0) {
      ArenaMark um = arena_mark(a);
      BkTensor u = arena_tensor(a, BK_F32, 3, (int64_t[]){x.ne[0], 2 * x.ne[1], 2 * x.ne[2]});
      BkTensor o = vae_next(&r, x.ne[0], 2 * x.ne[1], 2 * x.ne[2]);
      if (bk_ok(m->be)) {
        m->be->ops->upsample2x(m->be, &u, &x);
        conv(&r, &o, &u, &lv->upsample_conv, 1, 1);
      }
      arena_reset(a, um);
      vae_flip(&r);
      vae_dump(&r, &o, "up.%d.upsample", i);
      x = o;
    }
    if (!bk_ok(m->be)) return backend_error(m, a, entry, "decode", error);
  }
  out_forward(&r, &d->norm_out, &d->conv_out, &x, image_out);
  vae_dump(&r, image_out, "conv_out");
  if (!bk_ok(m->be)) return backend_error(m, a, entry, "decode", error);
  arena_reset(a, mk);
  return TRUE;
}
