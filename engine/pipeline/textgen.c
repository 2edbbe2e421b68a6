/* engine/pipeline/textgen.c — greedy / sampled text decoding (textgen.h). */
#include "textgen.h"

#include <math.h>

int32_t textgen_argmax_bf16(const uint16_t *logits, int64_t n) {
  int32_t best = 0;
  float bv = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    float v = bk_bf16_to_f32(logits[i]);
    if (v > bv) { /* strictly greater: the lowest index wins ties */
      bv = v;
      best = (int32_t)i;
    }
  }
  return best;
}

/* torch.multinomial(softmax(l/T), 1): q_i ~ Exp(1) per element (double, −log1p(−u)),
 * then argmax(p_i / q_i). */
static int32_t sample_bf16(const uint16_t *logits, int64_t n, float temperature, TorchGen *g) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, bk_bf16_to_f32(logits[i]) / temperature);
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += exp(bk_bf16_to_f32(logits[i]) / temperature - mx);
  int32_t best = 0;
  double bv = -1;
  for (int64_t i = 0; i < n; i++) {
    double p = exp(bk_bf16_to_f32(logits[i]) / temperature - mx) / sum;
    uint64_t a = tg_u32(g), b = tg_u32(g);
    double u = (double)(((a << 32) | b) & ((1ULL << 53) - 1)) * 0x1p-53;
    double q = -log1p(-u);
    double r = q > 0 ? p / q : INFINITY;
    if (r > bv) {
      bv = r;
      best = (int32_t)i;
    }
  }
  return best;
}

gboolean textgen_run(BagelModel *m, Arena *a, const Ctx *ctx, const BagelDecode *d,
                     TorchGen *rng, GArray *out_ids, Progress *prog, const char *stage,
                     Dump *dump, GError **error) {
  if (d->max_tokens < 0 || d->max_tokens > 32768) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "max tokens %d is out of range (0..32768)", d->max_tokens);
    return FALSE;
  }
  if (d->sample && !(d->temperature > 0 && isfinite(d->temperature))) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "temperature must be a positive number when sampling");
    return FALSE;
  }
  BkBackend *be = m->be;
  const int64_t V = m->llm->cfg.vocab;
  Ctx *c = ctx_fork(ctx);
  ArenaMark mk = arena_mark(a);
  BkTensor logits = arena_2d(a, BK_BF16, 1, V);
  uint16_t *host = g_new(uint16_t, V);
  int32_t tok = m->ids.bos;
  gboolean ok = TRUE;
  for (int k = 0; k < d->max_tokens; k++) {
    if (!(ok = progress_report(prog, stage, k, d->max_tokens, error))) break;
    if (!(ok = ctx_decode(c, a, tok, &logits, error))) break;
    be->ops->download(be, host, &logits);
    if (dump) {
      char name[32];
      g_snprintf(name, sizeof name, "logits.%d", k);
      dump_host(dump, name, ST_BF16, 1, (int64_t[]){V}, host);
    }
    tok = d->sample ? sample_bf16(host, V, d->temperature, rng) : textgen_argmax_bf16(host, V);
    if (tok == m->ids.eos) break;
    g_array_append_val(out_ids, tok);
  }
  g_free(host);
  arena_reset(a, mk);
  ctx_free(c);
  return ok;
}
