/* kernels/cuda/exact.cu — BAGEL_CUDA_NUMERICS=exact: linear and attention with the CPU
 * reference's arithmetic, bit for bit (kernels/cpu/cpu_linear.c, cpu_attention.c; the
 * orders are docs/numerics.md).  Plain SIMT CUDA C, no tensor cores, no cuBLASLt, so the
 * GPU and the emulation compute the same bits as the reference: every rounding step is
 * one IEEE operation written out (__fmul_rn / __fadd_rn / __fdiv_rn, which nvcc never
 * contracts), fmaf only where the reference's two roundings are one (a bf16·bf16 or
 * f16·bf16 product is exact in fp32, so round(acc + round(a·b)) = fmaf(a, b, acc) —
 * unless the product underflows below 2^-126, where the reference's own golden hardware
 * flushes to zero anyway; docs/cuda-backend.md).  Each output is owned by one thread,
 * which walks the sum in the reference's order; tiles through shared memory only share
 * the loads.
 *
 * linear (y[M,N] = x·wᵀ + b): 256 threads own a 16·TM × 64 output tile (TM = 1 for
 * M <= 16, else 4; thread (ty, tx) owns rows ty + 16i and columns tx + 16j); x and w come
 * through shared memory in k slices of 32 as fp32 (x rounded to bf16 under autocast).
 *  - bf16/f16 weights: k in pairs (0,1), (2,3), …, the odd term of each pair first, an
 *    odd K ends with the last term alone (VDPBF16PS order);
 *  - fp32 weights: k = 0 … K−1, separate multiply and add;
 *  then y = round(acc + bias) (bias 0 when there is none, as the reference adds it).
 *
 * attention, per chunk of query rows (packed per KV head as in attention.cuh), three
 * launches on a scratch of scores S[Hkv][rows][Lk] from the caching pool:
 *  1. attn_exact_scores: s_j = Σ_d q'_d·k'_jd, d in order, q' = q·√scale and
 *     k' = k·√scale each rounded; masked keys −∞ (a tile of rows and keys per block, as
 *     the linear);
 *  2. attn_exact_softmax (one warp per row): m = max over the visible keys;
 *     e_j = expf_torch(s_j − m); Σ in torch's 16-lane vec::reduce_all order over the
 *     whole row of Lk keys (lane l sums e_l, e_16+l, … in order — lane l of the warp does
 *     exactly that — then the lanes fold l+8, l+4, l+2, l+1 by shuffles; a row of fewer
 *     than 16 keys is summed left to right by lane 0); masked keys add their zeros, which
 *     change nothing, so they are skipped; p_j = e_j·(1/Σ), in place;
 *  3. attn_exact_pv: o_d = Σ_j p_j·v_jd over the visible keys, j in order, separate
 *     multiply and add; one rounding to o's dtype.
 * The chunk keeps S under 64 MiB (256 KiB on the emulation, so that tests run several
 * chunks); pool memory, so a denoising loop reuses it. */
#include "attention.cuh"

#define EX_THREADS 256
#define EX_BK 32        /* k (or d, or key) slice through shared memory: even, so k pairs never straddle */
#define EX_BN 64        /* output columns per block (16 threads × 4) */
#define EX_TN 4
#define EX_SM_THREADS 32
/* Scores per chunk of rows: 64 MiB on the GPU; 256 KiB on the emulation, so that the
 * parity test's larger cases run in several chunks (a launch geometry, not numerics). */
#ifdef BAGEL_CUDA_EMU
#define EX_SCRATCH_FLOATS ((int64_t)64 << 10)
#else
#define EX_SCRATCH_FLOATS ((int64_t)16 << 20)
#endif

/* ---- linear -------------------------------------------------------------------------- */

template <int TM, bool PAIRS>
__global__ void __launch_bounds__(EX_THREADS) linear_exact(void *y, int ydt, const void *x, int xdt, const void *w,
                                                           int wdt, const void *b, int bdt, int64_t M, int64_t N,
                                                           int64_t K) {
  constexpr int BM = 16 * TM;
  SHARED(float, xs, [EX_BK][BM + 1]);
  SHARED(float, ws, [EX_BK][EX_BN + 1]);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t n0 = (int64_t)blockIdx.x * EX_BN, mblocks = (M + BM - 1) / BM;
  for (int64_t mb = blockIdx.y; mb < mblocks; mb += gridDim.y) {
    const int64_t m0 = mb * BM;
    float acc[TM][EX_TN];
    for (int i = 0; i < TM; i++)
      for (int j = 0; j < EX_TN; j++) acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += EX_BK) {
      const int kt = K - k0 < EX_BK ? (int)(K - k0) : EX_BK;
      __syncthreads();  /* the previous slice is consumed */
      for (int idx = tid; idx < BM * EX_BK; idx += EX_THREADS) {
        const int r = idx / EX_BK, c = idx % EX_BK;
        float v = 0.0f;
        if (m0 + r < M && c < kt) {
          v = ld_any(x, xdt, (m0 + r) * K + k0 + c);
          if (PAIRS) v = round_bf16(v);
        }
        xs[c][r] = v;
      }
      for (int idx = tid; idx < EX_BN * EX_BK; idx += EX_THREADS) {
        const int r = idx / EX_BK, c = idx % EX_BK;
        ws[c][r] = n0 + r < N && c < kt ? ld_any(w, wdt, (n0 + r) * K + k0 + c) : 0.0f;
      }
      __syncthreads();
      int c = 0;
      if (PAIRS) {
        /* (c, c+1): the odd term first; both products exact in fp32 */
        for (; c + 1 < kt; c += 2)
          for (int i = 0; i < TM; i++) {
            const float x1 = xs[c + 1][ty + 16 * i], x0 = xs[c][ty + 16 * i];
            for (int j = 0; j < EX_TN; j++) {
              acc[i][j] = fmaf(x1, ws[c + 1][tx + 16 * j], acc[i][j]);
              acc[i][j] = fmaf(x0, ws[c][tx + 16 * j], acc[i][j]);
            }
          }
        if (c < kt)  /* odd K: the last term alone */
          for (int i = 0; i < TM; i++)
            for (int j = 0; j < EX_TN; j++) acc[i][j] = fmaf(xs[c][ty + 16 * i], ws[c][tx + 16 * j], acc[i][j]);
      } else {
        for (; c < kt; c++)
          for (int i = 0; i < TM; i++)
            for (int j = 0; j < EX_TN; j++)
              acc[i][j] = __fadd_rn(acc[i][j], __fmul_rn(xs[c][ty + 16 * i], ws[c][tx + 16 * j]));
      }
    }
    for (int i = 0; i < TM; i++)
      for (int j = 0; j < EX_TN; j++) {
        const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
        if (m < M && n < N) st_any(y, ydt, m * N + n, __fadd_rn(acc[i][j], b ? ld_any(b, bdt, n) : 0.0f));
      }
  }
}

template <int TM, bool PAIRS>
static bool linear_exact_launch(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                                int64_t M, int64_t N, int64_t K) {
  CudaImpl *impl = cuda_impl(be);
  auto k = linear_exact<TM, PAIRS>;
  const int64_t mblocks = (M + 16 * TM - 1) / (16 * TM);
  const dim3 grid((unsigned)((N + EX_BN - 1) / EX_BN), (unsigned)(mblocks < 65535 ? mblocks : 65535));
  return CUDA_OK(be, LAUNCH(k, grid, dim3(EX_THREADS), 0, impl->stream, y->data, (int)y->dt,
                            (const void *)x->data, (int)x->dt, (const void *)w->data, (int)w->dt,
                            b ? (const void *)b->data : (const void *)NULL, b ? (int)b->dt : 0, M, N, K));
}

/* Shapes and dtypes are checked by cuda_linear. */
void cuda_linear_exact(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b) {
  const int64_t K = bk_cols(x), M = bk_rows(x), N = w->ne[0];
  if ((N + EX_BN - 1) / EX_BN > INT32_MAX) {
    bk_fail(be, "cuda linear (exact): %lld outputs is too many", (long long)N);
    return;
  }
  const bool pairs = w->dt != BK_F32;  /* autocast */
  if (M <= 16) {
    if (pairs) linear_exact_launch<1, true>(be, y, x, w, b, M, N, K);
    else linear_exact_launch<1, false>(be, y, x, w, b, M, N, K);
  } else {
    if (pairs) linear_exact_launch<4, true>(be, y, x, w, b, M, N, K);
    else linear_exact_launch<4, false>(be, y, x, w, b, M, N, K);
  }
}

/* ---- attention ---------------------------------------------------------------------- */

/* The dtypes of q, the cache's k/v and the block's k/v (any float dtype each). */
struct ExDt {
  int q, kc, vc, kn, vn;
};

/* Keys visible to query qi (1 … Lk). */
__device__ __forceinline__ int ex_visible(const AttnGeo &g, int64_t qi) {
  const int Lk = g.Lc + g.Lq;
  return g.causal ? (int)(g.Lc + qi + 1 < Lk ? g.Lc + qi + 1 : Lk) : Lk;
}

/* Element d of key/value row j (cache first, then the block's own). */
__device__ __forceinline__ float ex_kv(const void *cache, int cdt, const void *own, int odt, const AttnGeo &g, int hk,
                                       int j, int d) {
  if (j < g.Lc) return ld_any(cache, cdt, ((int64_t)j * g.Hkv + hk) * g.D + d);
  return ld_any(own, odt, ((int64_t)(j - g.Lc) * g.Hkv + hk) * g.D + d);
}

/* 1. scores of rows [pr0, pr1) (packed per KV head) against all Lk keys. */
template <int TM>
__global__ void __launch_bounds__(EX_THREADS) attn_exact_scores(float *S, const void *q, const void *kc,
                                                                const void *kn, ExDt dt, AttnGeo g, int64_t pr0,
                                                                int64_t pr1) {
  constexpr int BR = 16 * TM;
  SHARED(float, qs, [EX_BK][BR + 1]);
  SHARED(float, ks, [EX_BK][EX_BN + 1]);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4, hk = blockIdx.z;
  const int Lk = g.Lc + g.Lq;
  const int j0 = blockIdx.x * EX_BN;
  const int64_t r0 = pr0 + (int64_t)blockIdx.y * BR, rows = pr1 - pr0;
  const float sf = g.sqrt_scale;
  /* the keys any row of this block sees (uniform: the last valid row sees the most) */
  const int64_t rlast = (r0 + BR < pr1 ? r0 + BR : pr1) - 1;
  const int kv_end = ex_visible(g, rlast / g.group);
  float acc[TM][EX_TN];
  for (int i = 0; i < TM; i++)
    for (int j = 0; j < EX_TN; j++) acc[i][j] = 0.0f;
  if (j0 < kv_end) {
    for (int d0 = 0; d0 < g.D; d0 += EX_BK) {
      const int dt_n = g.D - d0 < EX_BK ? g.D - d0 : EX_BK;
      __syncthreads();
      for (int idx = tid; idx < BR * EX_BK; idx += EX_THREADS) {
        const int r = idx / EX_BK, c = idx % EX_BK;
        const int64_t pr = r0 + r;
        float v = 0.0f;
        if (pr < pr1 && c < dt_n) {
          const int64_t qrow = (pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group;
          v = __fmul_rn(ld_any(q, dt.q, qrow * g.D + d0 + c), sf);
        }
        qs[c][r] = v;
      }
      for (int idx = tid; idx < EX_BN * EX_BK; idx += EX_THREADS) {
        const int r = idx / EX_BK, c = idx % EX_BK, j = j0 + r;
        ks[c][r] = j < Lk && c < dt_n ? __fmul_rn(ex_kv(kc, dt.kc, kn, dt.kn, g, hk, j, d0 + c), sf) : 0.0f;
      }
      __syncthreads();
      for (int c = 0; c < dt_n; c++)
        for (int i = 0; i < TM; i++) {
          const float qv = qs[c][ty + 16 * i];
          for (int j = 0; j < EX_TN; j++) acc[i][j] = __fadd_rn(acc[i][j], __fmul_rn(qv, ks[c][tx + 16 * j]));
        }
    }
  }
  for (int i = 0; i < TM; i++) {
    const int64_t pr = r0 + ty + 16 * i;
    if (pr >= pr1) continue;
    const int vis = ex_visible(g, pr / g.group);
    float *srow = S + ((int64_t)hk * rows + (pr - pr0)) * Lk;
    for (int j = 0; j < EX_TN; j++) {
      const int key = j0 + tx + 16 * j;
      if (key < Lk) srow[key] = key < vis ? acc[i][j] : -INFINITY;
    }
  }
}

/* 2. the softmax of one row per warp, in place: S becomes P over the visible keys. */
__global__ void __launch_bounds__(EX_SM_THREADS) attn_exact_softmax(float *S, AttnGeo g, int64_t pr0, int64_t pr1) {
  const int lane = threadIdx.x, hk = blockIdx.y;
  const int64_t pr = pr0 + blockIdx.x, rows = pr1 - pr0;
  const int Lk = g.Lc + g.Lq, vis = ex_visible(g, pr / g.group);
  float *s = S + ((int64_t)hk * rows + (pr - pr0)) * Lk;
  /* the reference's `if (s > m) m = s`: the first of equal maxima; ±0 ties give the
   * same e either way */
  float mx = -INFINITY;
  for (int j = lane; j < vis; j += 32)
    if (s[j] > mx) mx = s[j];
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(FULL_MASK, mx, off);
    if (o > mx) mx = o;
  }
  __syncwarp();  /* every lane has read its scores before the lanes below overwrite them */
  const int nl = Lk < 16 ? 1 : 16;
  float acc = 0.0f;
  if (lane < nl)
    for (int j = lane; j < vis; j += nl) {
      const float e = expf_torch(__fsub_rn(s[j], mx));
      s[j] = e;
      acc = __fadd_rn(acc, e);
    }
  if (nl == 16)
    for (int wdt = 8; wdt >= 1; wdt >>= 1) acc = __fadd_rn(acc, __shfl_down_sync(FULL_MASK, acc, wdt));
  const float inv = __fdiv_rn(1.0f, __shfl_sync(FULL_MASK, acc, 0));
  if (lane < nl)
    for (int j = lane; j < vis; j += nl) s[j] = __fmul_rn(s[j], inv);
}

/* 3. o = P·V for rows [pr0, pr1), 64 dims per block column. */
template <int TM>
__global__ void __launch_bounds__(EX_THREADS) attn_exact_pv(void *o, int odt, const float *S, const void *vc,
                                                            const void *vn, ExDt dt, AttnGeo g, int64_t pr0,
                                                            int64_t pr1) {
  constexpr int BR = 16 * TM;
  SHARED(float, ps, [EX_BK][BR + 1]);
  SHARED(float, vs, [EX_BK][EX_BN + 1]);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4, hk = blockIdx.z;
  const int Lk = g.Lc + g.Lq;
  const int d0 = blockIdx.x * EX_BN;
  const int64_t r0 = pr0 + (int64_t)blockIdx.y * BR, rows = pr1 - pr0;
  const int64_t rlast = (r0 + BR < pr1 ? r0 + BR : pr1) - 1;
  const int kv_end = ex_visible(g, rlast / g.group);
  int vis[TM];
  for (int i = 0; i < TM; i++) {
    const int64_t pr = r0 + ty + 16 * i;
    vis[i] = pr < pr1 ? ex_visible(g, pr / g.group) : 0;
  }
  float acc[TM][EX_TN];
  for (int i = 0; i < TM; i++)
    for (int j = 0; j < EX_TN; j++) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < kv_end; k0 += EX_BK) {
    const int kt = kv_end - k0 < EX_BK ? kv_end - k0 : EX_BK;
    __syncthreads();
    for (int idx = tid; idx < BR * EX_BK; idx += EX_THREADS) {
      const int r = idx / EX_BK, c = idx % EX_BK;
      const int64_t pr = r0 + r;
      ps[c][r] = pr < pr1 && c < kt ? S[((int64_t)hk * rows + (pr - pr0)) * Lk + k0 + c] : 0.0f;
    }
    for (int idx = tid; idx < EX_BN * EX_BK; idx += EX_THREADS) {
      const int r = idx / EX_BN, c = idx % EX_BN;  /* key r, dim c: consecutive threads, consecutive dims */
      vs[r][c] = r < kt && d0 + c < g.D ? ex_kv(vc, dt.vc, vn, dt.vn, g, hk, k0 + r, d0 + c) : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < kt; c++)
      for (int i = 0; i < TM; i++) {
        if (k0 + c >= vis[i]) continue;  /* masked: the reference skips the key */
        const float p = ps[c][ty + 16 * i];
        for (int j = 0; j < EX_TN; j++) acc[i][j] = __fadd_rn(acc[i][j], __fmul_rn(p, vs[c][tx + 16 * j]));
      }
  }
  for (int i = 0; i < TM; i++) {
    const int64_t pr = r0 + ty + 16 * i;
    if (pr >= pr1) continue;
    const int64_t orow = (pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group;
    for (int j = 0; j < EX_TN; j++) {
      const int d = d0 + tx + 16 * j;
      if (d < g.D) st_any(o, odt, orow * g.D + d, acc[i][j]);
    }
  }
}

template <int TM>
static bool attn_exact_chunk(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                             const BkTensor *kn, const BkTensor *vn, const ExDt &dt, const AttnGeo &g, float *S,
                             int64_t pr0, int64_t pr1) {
  CudaImpl *impl = cuda_impl(be);
  const int Lk = g.Lc + g.Lq;
  const int64_t rows = pr1 - pr0;
  const unsigned rblocks = (unsigned)((rows + 16 * TM - 1) / (16 * TM));
  auto ks = attn_exact_scores<TM>;
  auto kp = attn_exact_pv<TM>;
  return CUDA_OK(be, LAUNCH(ks, dim3((unsigned)((Lk + EX_BN - 1) / EX_BN), rblocks, (unsigned)g.Hkv),
                            dim3(EX_THREADS), 0, impl->stream, S, (const void *)q->data,
                            kc ? (const void *)kc->data : (const void *)NULL, (const void *)kn->data, dt, g, pr0,
                            pr1)) &&
         CUDA_OK(be, LAUNCH(attn_exact_softmax, dim3((unsigned)rows, (unsigned)g.Hkv), dim3(EX_SM_THREADS), 0,
                            impl->stream, S, g, pr0, pr1)) &&
         CUDA_OK(be, LAUNCH(kp, dim3((unsigned)((g.D + EX_BN - 1) / EX_BN), rblocks, (unsigned)g.Hkv),
                            dim3(EX_THREADS), 0, impl->stream, o->data, (int)o->dt, (const float *)S,
                            vc ? (const void *)vc->data : (const void *)NULL, (const void *)vn->data, dt, g, pr0,
                            pr1));
}

/* Shapes are checked by cuda_attention; g describes them (Lq, D > 0). */
bool cuda_attention_exact(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                          const BkTensor *kn, const BkTensor *vn, const AttnGeo &g) {
  const int64_t M = (int64_t)g.Lq * g.group, Lk = (int64_t)g.Lc + g.Lq;
  int64_t chunk = EX_SCRATCH_FLOATS / (Lk * g.Hkv);
  if (chunk < 1) chunk = 1;
  if (chunk > M) chunk = M;
  if (chunk > 65535 * 16) chunk = 65535 * 16;  /* grid rows of the tiled kernels */
  float *S = (float *)cuda_pool_alloc(be, sizeof(float) * (size_t)(chunk * Lk * g.Hkv));
  if (!S) return false;
  ExDt dt;
  dt.q = (int)q->dt;
  dt.kc = kc ? (int)kc->dt : 0;
  dt.vc = vc ? (int)vc->dt : 0;
  dt.kn = (int)kn->dt;
  dt.vn = (int)vn->dt;
  bool ok = true;
  for (int64_t pr0 = 0; pr0 < M && ok; pr0 += chunk) {
    const int64_t pr1 = pr0 + chunk < M ? pr0 + chunk : M;
    ok = pr1 - pr0 <= 16 ? attn_exact_chunk<1>(be, o, q, kc, vc, kn, vn, dt, g, S, pr0, pr1)
                         : attn_exact_chunk<4>(be, o, q, kc, vc, kn, vn, dt, g, S, pr0, pr1);
  }
  cuda_pool_free(be, S);
  return ok;
}
