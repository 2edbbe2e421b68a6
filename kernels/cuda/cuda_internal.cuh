/* kernels/cuda/cuda_internal.cuh — what the CUDA backend's sources share: the backend
 * state (CudaImpl), device-side loads/stores of every float dtype, launch geometry, and
 * the op entry points (one .cu file per op family, the table in cuda_backend.cu).
 *
 * One stream: every kernel, copy and cuBLASLt call of the backend is issued on
 * impl->stream, so device memory freed into the caching pool (cuda_pool.cu) can be
 * handed out again at once — later work on the same stream runs after the work that
 * used it.  Temporaries of an op (a bf16 copy of a linear's input, GroupNorm's partial
 * sums, gather ids) come from that pool: after the first pass of a loop nothing reaches
 * cudaMalloc any more. */
#ifndef BAGEL_CUDA_INTERNAL_CUH
#define BAGEL_CUDA_INTERNAL_CUH

#include "cuda_common.cuh"
#include "cuda_backend.h"

#include <math.h>
#include <stdint.h>

/* ---- backend state -------------------------------------------------------------------- */

typedef struct {
  void *p;
  size_t size;
} PoolBlock;

/* The caching allocator (cuda_pool.cu): live blocks in an open-addressing table keyed by
 * address, freed blocks kept in a list and reused best-fit. */
typedef struct {
  PoolBlock *live;            /* hash table, p == NULL is empty, p == POOL_TOMB deleted */
  size_t live_cap, live_n, live_used;
  PoolBlock *cached;          /* freed blocks, unordered */
  size_t cached_n, cached_cap;
  size_t live_bytes, cached_bytes;
} Pool;

/* Weights: bump-allocated in large slabs, a slab freed when its last weight is. */
typedef struct {
  char *base;
  size_t size, used;
  int64_t n_live;
} WeightSlab;

typedef struct GemmPlan GemmPlan;

typedef struct {
  float theta;
  int dim;                    /* head dim D; the table holds D/2 (cos, sin) pairs */
  int64_t npos;               /* positions 0 .. npos-1 */
  uint16_t *table;            /* device: [npos][D/2][2] bf16 bits (cos, sin) */
} RopeTable;

typedef struct CudaImpl {
  cudaStream_t stream;
  int device, sm_count, max_blocks;
  size_t smem_optin;
  cublasLtHandle_t lt;
  void *lt_ws;
  size_t lt_ws_size;
  GemmPlan *plans;            /* cuda_linear.cu: cuBLASLt plan cache */
  int n_plans;
  uint64_t plan_clock;
  Pool pool;
  WeightSlab *slabs;
  int n_slabs, cap_slabs;
  void *stage[2];             /* pinned staging buffers of weight uploads */
  cudaEvent_t stage_ev[2];
  size_t stage_size;
  int stage_next;
  RopeTable rope[2];
  BkCudaStats stats;
  bool exact;                 /* BAGEL_CUDA_NUMERICS=exact: linear/attention in exact.cu */
#ifdef BAGEL_CUDA_EMU
  BkBackend *ref;             /* CUEMU_REFERENCE_OPS: the CPU reference for those ops */
  bool ref_linear, ref_attention;
#endif
} CudaImpl;

static inline CudaImpl *cuda_impl(BkBackend *be) { return (CudaImpl *)be->impl; }

/* ---- memory (cuda_pool.cu) ------------------------------------------------------------ */
/* Device memory from the caching pool; NULL after bk_fail (out of memory says how much
 * was needed and how much is free). */
void *cuda_pool_alloc(BkBackend *be, size_t n);
void cuda_pool_free(BkBackend *be, void *p);
void cuda_pool_release(BkBackend *be);   /* cudaFree every cached block */
void cuda_pool_destroy(BkBackend *be);
/* Weight memory (slabs) and its release. */
void *cuda_weight_alloc(BkBackend *be, size_t n);
void cuda_weight_release(BkBackend *be, void *p);

/* ---- launch geometry ------------------------------------------------------------------- */
/* Blocks for a grid-stride loop over n items, t per block: never more than the backend's
 * cap (a few waves of the device), so every kernel's loop is exercised by the tests. */
static inline unsigned cuda_grid(const CudaImpl *impl, int64_t n, int t) {
  int64_t b = (n + t - 1) / t;
  if (b < 1) b = 1;
  if (b > impl->max_blocks) b = impl->max_blocks;
  return (unsigned)b;
}

/* ---- dtypes on the device --------------------------------------------------------------- */
/* Element i of a float tensor of runtime dtype dt (BK_F32, BK_BF16, BK_F16) as fp32. */
__device__ __forceinline__ float ld_any(const void *p, int dt, int64_t i) {
  if (dt == BK_F32) return ((const float *)p)[i];
  if (dt == BK_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  return __half2float(((const __half *)p)[i]);
}
/* Store v into element i, rounding (to nearest even) to the tensor's dtype. */
__device__ __forceinline__ void st_any(void *p, int dt, int64_t i, float v) {
  if (dt == BK_F32) ((float *)p)[i] = v;
  else if (dt == BK_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
  else ((__half *)p)[i] = __float2half_rn(v);
}
/* v rounded as a store into dtype dt would. */
__device__ __forceinline__ float round_to(int dt, float v) {
  if (dt == BK_BF16) return __bfloat162float(__float2bfloat16_rn(v));
  if (dt == BK_F16) return __half2float(__float2half_rn(v));
  return v;
}
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

static inline bool cuda_float_dt(BkDType dt) { return dt == BK_F32 || dt == BK_BF16 || dt == BK_F16; }

/* ---- the reference's arithmetic (docs/numerics.md) ------------------------------------ */
/* SLEEF's expf_u10, as torch's vectorised CPU kernels (and kernels/cpu's cpu_expf) use
 * it: q = rint(x·log2 e), s = x − q·ln2 in two fused steps, a degree-6 Horner polynomial
 * of fused multiply-adds, u = 1 + (s²·P(s) + s), scaled by 2^⌊q/2⌋·2^(q−⌊q/2⌋).  Every
 * step is one correctly rounded IEEE operation (fmaf, _rn), so the GPU, the emulation and
 * the CPU reference give the same bits; CUDA's expf would differ by an ulp at times. */
__device__ __forceinline__ float pow2i_f(int q) { return __uint_as_float((unsigned)(q + 0x7f) << 23); }
__device__ __forceinline__ float expf_torch(float x) {
  if (isnan(x)) return x;
  if (x < -104.0f) return 0.0f;
  if (x > 100.0f) return INFINITY;
  const int q = (int)rintf(__fmul_rn(x, 1.442695040888963407359924681001892137426645954152985934135449406931f));
  const float qf = (float)q;
  float s = fmaf(qf, -0.693145751953125f, x);
  s = fmaf(qf, -1.428606765330187045e-06f, s);
  float u = 0.000198527617612853646278381f;
  u = fmaf(u, s, 0.00139304355252534151077271f);
  u = fmaf(u, s, 0.00833336077630519866943359f);
  u = fmaf(u, s, 0.0416664853692054748535156f);
  u = fmaf(u, s, 0.166666671633720397949219f);
  u = fmaf(u, s, 0.5f);
  u = __fadd_rn(1.0f, fmaf(__fmul_rn(s, s), u, s));
  return __fmul_rn(__fmul_rn(u, pow2i_f(q >> 1)), pow2i_f(q - (q >> 1)));
}

/* Warp sums (butterfly: every lane gets the total). */
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}
__device__ __forceinline__ float warp_sum_f(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

/* ---- the ops (one file per family) -------------------------------------------------------- */
#ifdef __cplusplus
extern "C" {
#endif
void cuda_linear(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b);
void cuda_linear_destroy(BkBackend *be);
/* exact.cu: the reference's arithmetic bit for bit (BAGEL_CUDA_NUMERICS=exact); shapes
 * already checked by cuda_linear */
void cuda_linear_exact(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b);
void cuda_rms_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, float eps);
void cuda_layer_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                     float eps);
void cuda_rope(BkBackend *be, BkTensor *y, const BkTensor *x, int64_t pos0, int pos_step, float theta);
void cuda_rope_destroy(BkBackend *be);
void cuda_convert(BkBackend *be, BkTensor *y, const BkTensor *x);
void cuda_add(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b);
void cuda_scale_shift(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t);
void cuda_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up);
void cuda_gelu_tanh(BkBackend *be, BkTensor *y, const BkTensor *x);
void cuda_gather_rows(BkBackend *be, BkTensor *y, const BkTensor *table, const int32_t *ids);
void cuda_transpose(BkBackend *be, BkTensor *y, const BkTensor *x);
void cuda_upsample2x(BkBackend *be, BkTensor *y, const BkTensor *x);
void cuda_latent_pack(BkBackend *be, BkTensor *tokens, const BkTensor *z);
void cuda_latent_unpack(BkBackend *be, BkTensor *z, const BkTensor *tokens);
void cuda_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                    const BkTensor *kn, const BkTensor *vn, BkCausal causal, float scale);
bool cuda_attention_init(BkBackend *be);
void cuda_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b, int stride,
                 const int pad[4]);
void cuda_group_norm(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                     int groups, float eps, bool swish);
void cuda_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut, const BkTensor *ui,
                    const BkCfgStep *p, BkTensor *v_out);
/* convert n elements between float dtypes on the backend's stream (used by linear) */
bool cuda_convert_raw(BkBackend *be, void *y, BkDType ydt, const void *x, BkDType xdt, int64_t n);
#ifdef __cplusplus
}
#endif

#endif
