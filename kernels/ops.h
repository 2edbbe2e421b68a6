/* kernels/ops.h — the seam between the model (engine/) and the compute backends.
 *
 * Every backend implements this table: kernels/cpu (the plain-C reference, the truth
 * for tests), kernels/cuda (CUDA C + cuBLASLt; also built for the host under the CUDA
 * emulation), and the FLOP/byte-counting backend used for projections.
 *
 * Tensors are plain descriptors (BkTensor) over backend memory: host memory for the CPU
 * backend, device memory for CUDA, nothing at all for the counting backend.  Shapes are
 * row-major, outermost dimension first, like torch.  A "row" is the last dimension;
 * views along dimension 0 are free (bk_rows_view).
 *
 * Precision is part of each op's contract.  The rules reproduce the official BAGEL code
 * under bf16 autocast (docs/bagel-spec.md §13): where the official dtype flow stores
 * bf16, the op rounds to bf16 (round-to-nearest-even); accumulation is always fp32.
 * Most ops choose their recipe from the dtypes of their operands, exactly as torch does.
 *
 * Errors: ops are called with shapes the model has already validated; a backend checks
 * its own preconditions (dtype/shape combinations it supports) and reports violations
 * through bk_fail() (a programming error, not bad user input), which records the first
 * failure in the backend; the engine checks bk_ok() at stage boundaries.
 */
#ifndef BAGEL_KERNELS_OPS_H
#define BAGEL_KERNELS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BK_F32 = 0,
  BK_BF16,
  BK_F16,
  BK_I32,
  BK_I64,
  BK_U8,
  BK_NDTYPES
} BkDType;

#define BK_MAX_DIMS 4

typedef struct {
  void *data;               /* backend memory; NULL on the counting backend */
  BkDType dt;
  int nd;                   /* 1..BK_MAX_DIMS */
  int64_t ne[BK_MAX_DIMS];  /* shape, outermost first */
} BkTensor;

typedef struct BkBackend BkBackend;

/* ---- dtype helpers (host, header-only) --------------------------------------------- */

static inline size_t bk_dtype_size(BkDType dt) {
  switch (dt) {
  case BK_F32: case BK_I32: return 4;
  case BK_BF16: case BK_F16: return 2;
  case BK_I64: return 8;
  case BK_U8: return 1;
  default: return 0;
  }
}

const char *bk_dtype_name(BkDType dt);

static inline int64_t bk_numel(const BkTensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->nd; i++) n *= t->ne[i];
  return n;
}
static inline int64_t bk_cols(const BkTensor *t) { return t->nd ? t->ne[t->nd - 1] : 1; }
static inline int64_t bk_rows(const BkTensor *t) {
  int64_t c = bk_cols(t);
  return c ? bk_numel(t) / c : 0;
}
static inline size_t bk_nbytes(const BkTensor *t) {
  return (size_t)bk_numel(t) * bk_dtype_size(t->dt);
}

/* bf16 <-> f32 on the host, round-to-nearest-even (NaN stays NaN), as torch does. */
static inline uint16_t bk_f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = { f };
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
  v.u += 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)(v.u >> 16);
}
static inline float bk_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
  return v.f;
}
/* Round an f32 value to the nearest bf16 value, kept as f32. */
static inline float bk_round_bf16(float f) { return bk_bf16_to_f32(bk_f32_to_bf16(f)); }

/* Build a tensor descriptor. */
BkTensor bk_tensor(void *data, BkDType dt, int nd, const int64_t *ne);
BkTensor bk_tensor_2d(void *data, BkDType dt, int64_t rows, int64_t cols);
/* Rows [r0, r0+n) along dimension 0 (no copy). */
BkTensor bk_rows_view(BkTensor t, int64_t r0, int64_t n);
/* Same memory, another shape with the same element count. */
BkTensor bk_reshape(BkTensor t, int nd, const int64_t *ne);
bool bk_same_shape(const BkTensor *a, const BkTensor *b);

/* ---- the backend ------------------------------------------------------------------- */

typedef enum {
  BK_CAUSAL_NONE = 0,   /* every query sees every key */
  BK_CAUSAL_BOTTOM_RIGHT /* new query i sees all cached keys and new keys 0..i */
} BkCausal;

typedef enum {
  BK_RENORM_GLOBAL = 0,
  BK_RENORM_CHANNEL,
  BK_RENORM_TEXT_CHANNEL
} BkRenorm;

/* One CFG-combine + Euler step (docs/bagel-spec.md §6 steps 5-6, §13). */
typedef struct {
  float cfg_text;      /* s_t; <= 1 means the combine returns c */
  float cfg_img;       /* s_i; the image stage runs only when > 1 */
  BkRenorm renorm;
  float renorm_min;
  float dt;            /* Δ_j = t_j − t_{j+1}, fp32 */
} BkCfgStep;

typedef struct BkOps {
  const char *name;
  void (*destroy)(BkBackend *be);                         /* frees be->impl and be */

  /* memory */
  void *(*alloc)(BkBackend *be, size_t nbytes);          /* NULL on failure (bk_fail set) */
  void (*free)(BkBackend *be, void *p);
  void (*upload)(BkBackend *be, BkTensor *dst, const void *host);
  void (*download)(BkBackend *be, void *host, const BkTensor *src);
  void (*copy)(BkBackend *be, BkTensor *dst, const BkTensor *src);   /* same dtype+numel */
  void (*fill_zero)(BkBackend *be, BkTensor *t);
  /* Wrap checkpoint bytes (host memory, typically an mmap) as a weight tensor.  The CPU
   * backend keeps the pointer (no copy); CUDA uploads once. */
  bool (*weight)(BkBackend *be, BkTensor *out, const void *host, BkDType dt, int nd,
                 const int64_t *ne);
  void (*weight_free)(BkBackend *be, BkTensor *w);
  void (*sync)(BkBackend *be);

  /* y[M,N] = x[M,K] · w[N,K]ᵀ + b[N].  w BF16: x is rounded to bf16 (autocast), fp32
   * accumulation, bias (bf16 values) added in fp32, one rounding to y's dtype.
   * w F32: all fp32.  b may be NULL. */
  void (*linear)(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                 const BkTensor *b);

  /* Qwen2 RMSNorm over the last dimension (weight w[cols], BF16 values), mean in fp32.
   * x BF16: n = bf16(x·rsqrt(mean(x²)+eps)), y = bf16(w·n).
   * x F32:  y = w·x·rsqrt(mean(x²)+eps) in fp32 (gen-mode QK-norm).
   * x may have more than 2 dims: the norm runs over the last one (per head). */
  void (*rms_norm)(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps);

  /* LayerNorm over the last dimension, fp32 compute, affine (w, b any float dtype),
   * output in y's dtype (F32 under autocast). */
  void (*layer_norm)(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                     const BkTensor *b, float eps);

  /* Rotary embedding ("rotate half") on x[L, H, D]: token i has position pos0 + i·pos_step
   * (pos_step 0 for an image block).  cos/sin tables: inv_freq_k = 1/θ^(2k/D) in fp32,
   * angle fp32(pos·inv_freq), cos/sin in fp32 rounded to bf16.
   * x BF16: op by op in bf16 (x·cos, rot(x)·sin, sum; each rounded).
   * x F32: fp32 arithmetic with the bf16 cos/sin values.  y may alias x. */
  void (*rope)(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int pos_step,
               float theta);

  /* dtype conversion (round-to-nearest-even into bf16). */
  void (*convert)(BkBackend *be, BkTensor *y, const BkTensor *x);

  /* y = a + b rounded to y's dtype.  b has the same shape as a, or a single row that is
   * broadcast over a's rows. */
  void (*add)(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b);

  /* y = x·s + t elementwise, fp32 compute, rounded to y's dtype. */
  void (*scale_shift)(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t);

  /* SwiGLU: y = bf16(bf16(silu(gate)) · up)  (gate/up BF16).  up NULL: y = silu(gate)
   * rounded to y's dtype (nn.SiLU).  y may alias gate. */
  void (*silu_mul)(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up);

  /* GELU with tanh approximation, fp32 compute, rounded to y's dtype. */
  void (*gelu_tanh)(BkBackend *be, BkTensor *y, const BkTensor *x);

  /* y[i,:] = table[ids[i],:], ids on the host, n = rows of y. */
  void (*gather_rows)(BkBackend *be, BkTensor *y, const BkTensor *table, const int32_t *ids);

  /* Attention for one sequence.  q[Lq, Hq, D]; keys/values are the cached prefix
   * kc/vc[Lc, Hkv, D] (Lc may be 0: pass NULL) followed by the block's own kn/vn[Lq, Hkv, D].
   * GQA: query head h uses kv head h / (Hq/Hkv).  Softmax in fp32 with the given scale;
   * o[Lq, Hq, D] rounded to o's dtype.  BK_CAUSAL_BOTTOM_RIGHT: query i sees the whole
   * cache and new keys 0..i.  Never materialises the full score matrix. */
  void (*attention)(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc,
                    const BkTensor *vc, const BkTensor *kn, const BkTensor *vn,
                    BkCausal causal, float scale);

  /* 2-D convolution, fp32, batch 1: x[Cin,H,W], w[Cout,Cin,kh,kw], b[Cout] (nullable),
   * zero padding (top, left, bottom, right), stride s.  y[Cout,Ho,Wo]. */
  void (*conv2d)(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                 const BkTensor *b, int stride, const int pad[4]);

  /* GroupNorm over x[C,H,W] (fp32), affine, then optional swish (x·sigmoid(x)). */
  void (*group_norm)(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w,
                     const BkTensor *b, int groups, float eps, bool swish);

  /* Nearest-neighbour ×2 upsampling of x[C,H,W]. */
  void (*upsample2x)(BkBackend *be, BkTensor *y, const BkTensor *x);

  /* y = xᵀ for a 2-D x[R,C] (any dtype). */
  void (*transpose)(BkBackend *be, BkTensor *y, const BkTensor *x);

  /* Latent packing (§1.7): z[16, 2h, 2w] <-> tokens[h·w, 64], element (py·2+px)·16+c.
   * fp32 both sides. */
  void (*latent_pack)(BkBackend *be, BkTensor *tokens, const BkTensor *z);
  void (*latent_unpack)(BkBackend *be, BkTensor *z, const BkTensor *tokens);

  /* One sampler step (§6 steps 5-6, §13 rounding): combine the branch velocities
   * c, ut (nullable when not run), ui (nullable) — BF16 [N,64] — per p, then
   * x ← x − v·Δ in fp32, x F32 [N,64].  If v_out is non-NULL the combined velocity is
   * also stored there (F32, for dumps). */
  void (*cfg_euler)(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut,
                    const BkTensor *ui, const BkCfgStep *p, BkTensor *v_out);
} BkOps;

struct BkBackend {
  const BkOps *ops;
  char error[512];      /* first failure, "" when none */
  bool failed;
  void *impl;           /* backend private state */
};

/* Record a failure (first one wins).  Returns false for convenience. */
bool bk_fail(BkBackend *be, const char *fmt, ...)
#ifdef __GNUC__
  __attribute__((format(printf, 2, 3)))
#endif
  ;
static inline bool bk_ok(const BkBackend *be) { return !be->failed; }
void bk_clear_error(BkBackend *be);

/* Constructors of the backends that are built in. */
BkBackend *bk_cpu_new(int n_threads);     /* n_threads <= 0: all cores */
/* The CUDA backend on device 0 (kernels/cuda; builds with BAGEL_HAVE_CUDA only).  NULL
 * when the host is out of memory; when the device cannot be used the backend is
 * returned failed (bk_ok false, be->error says why) for the caller to report and free. */
BkBackend *bk_cuda_new(void);
void bk_backend_free(BkBackend *be);      /* NULL-safe; calls ops->destroy */

/* ---- the counting backend (kernels/count): computes nothing, counts FLOPs and bytes --- */

typedef enum {
  BK_CLASS_GEMM = 0,    /* linear */
  BK_CLASS_ATTENTION,
  BK_CLASS_CONV,
  BK_CLASS_NORM,        /* rms/layer/group norm */
  BK_CLASS_ELTWISE,     /* everything else that runs on the device */
  BK_CLASS_TRANSFER,    /* upload / download */
  BK_NCLASSES
} BkOpClass;

typedef struct {
  BkOpClass cls;
  const char *op;       /* the BkOps field name */
  double flops;
  double bytes;         /* read + written, everything included */
  double weight_bytes;  /* of which weights (GEMM, conv) */
  int64_t m;            /* GEMM rows / attention queries / conv output pixels */
} BkCountOp;

typedef struct {
  double flops[BK_NCLASSES], bytes[BK_NCLASSES];
  int64_t calls[BK_NCLASSES];
} BkCounts;

typedef void (*BkCountHook)(const BkCountOp *op, void *user);

BkBackend *bk_count_new(void);
bool bk_is_count(const BkBackend *be);
/* fn is called once per op (NULL: none); the totals run regardless. */
void bk_count_set_hook(BkBackend *be, BkCountHook fn, void *user);
void bk_count_totals(BkBackend *be, BkCounts *out);   /* zeros for other backends */
const char *bk_op_class_name(BkOpClass c);

#ifdef __cplusplus
}
#endif
#endif
