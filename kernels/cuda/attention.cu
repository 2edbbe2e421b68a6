/* kernels/cuda/attention.cu — attention for one sequence (kernels/ops.h): q[Lq, Hq, D]
 * against a cached prefix kc/vc[Lc, Hkv, D] followed by the block's own kn/vn[Lq, Hkv, D],
 * GQA, full or bottom-right causal, softmax in fp32, the score matrix never materialised.
 *
 * Two flash kernels (FlashAttention-2's structure: a block owns a tile of query rows and
 * streams K/V tiles through shared memory, keeping the running row max m, row sum l and
 * the output accumulator in registers, rescaled by e^(m_old − m_new) at each tile):
 *  - bf16 q/k/v with D <= 128 — every LLM and SigLIP call: this file, on tensor cores
 *    through the mma.m16n8k16 / ldmatrix wrappers of mma.cuh.  D is zero-padded to DP ∈
 *    {16, 32, 64, 80, 128} in shared memory (SigLIP's 72 -> 80; zeros add nothing to the
 *    dot products).  4 warps × 16 rows = 64 rows per block, BC keys per tile.
 *    S = Q·Kᵀ: A = Q fragments (ldmatrix, kept in registers for the whole block), B = K
 *    rows (ldmatrix, K is stored key-major, which is B's "col" layout).  P·V: the fp32 S
 *    accumulators of two adjacent 8-key tiles are exactly the A fragment of a 16-key k
 *    step (C layout rows g, g+8 / cols 2t, 2t+1 = A layout); V comes through
 *    ldmatrix.trans.  P goes in as two bf16 terms, P_hi = bf16(p) and P_lo = bf16(p − P_hi),
 *    two MMAs instead of one: p keeps ~16 significant bits instead of 8.  The golden run
 *    (torch's math SDPA) keeps P in fp32, and flash-attn's single bf16 P moved 30 % of
 *    the bf16 outputs by an ulp against the reference in tests/ops; the split costs 50 %
 *    more tensor-core work in attention, a few percent of a denoising step.
 *  - everything else (fp32 q/k/v: the VAE mid-block's single 512-wide head over up to
 *    16 384 positions; bf16 with D > 128): attention_f32.cu, fp32 SIMT.
 *
 * Numerics against the reference (kernels/cpu/cpu_attention.c: torch's math SDPA, a
 * two-pass softmax in fp32 with P normalised before P·V): scores are fp32 dots of the
 * bf16 values scaled by `scale`; p = e^(s − m) with SLEEF's exp (expf_torch, as the
 * reference); the row sum l adds the fp32 p; P·V sees p to ~2^-16 (the split above);
 * o = acc·(1/l) at the end.  Tensor cores sum in their own order, so the GPU cannot be
 * bit-identical to the reference here; tests/ops bounds the difference.
 *
 * Masking: keys past the causal limit of a row, or past the block's key range, score
 * −inf; a row that has seen no key yet keeps m = −inf and uses 0 as its reference (no
 * NaN from −inf − −inf); K/V rows past the end are zero-filled, so a masked p = 0 never
 * multiplies stale shared memory. */
#include "attention.cuh"
#include "mma.cuh"

#define FA_THREADS 128
#define FA_BR 64

/* 8 consecutive bf16 values of a row (cols c..c+7 of D), zero past D or for no row. */
__device__ __forceinline__ void fa_load8(__nv_bfloat16 *dst, const __nv_bfloat16 *row, int c, int D, int vec) {
  if (row && vec && c + 8 <= D) {
    *(uint4 *)dst = *(const uint4 *)(row + c);
    return;
  }
  for (int e = 0; e < 8; e++) dst[e] = row && c + e < D ? row[c + e] : __float2bfloat16_rn(0.0f);
}

template <int DP, int BC>
__global__ void __launch_bounds__(FA_THREADS) flash_attn_bf16(void *o, int odt, const __nv_bfloat16 *q,
                                                              const __nv_bfloat16 *kc, const __nv_bfloat16 *vc,
                                                              const __nv_bfloat16 *kn, const __nv_bfloat16 *vn,
                                                              float *part, int split_tiles, AttnGeo g) {
  constexpr int LD = DP + 8, KS = DP / 16, NT = BC / 8, DT = DP / 8, C8 = DP / 8;
  DYN_SHARED(__nv_bfloat16, smem);
  __nv_bfloat16 *Qs = smem, *Ks = smem + FA_BR * LD, *Vs = Ks + BC * LD;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, t4 = lane & 3;
  const int hk = blockIdx.y;
  const int64_t M = (int64_t)g.Lq * g.group, r0 = (int64_t)blockIdx.x * FA_BR;

  for (int idx = tid; idx < FA_BR * C8; idx += FA_THREADS) {
    const int r = idx / C8, c = (idx % C8) * 8;
    const int64_t pr = r0 + r;
    const __nv_bfloat16 *src = NULL;
    if (pr < M) src = q + ((pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group) * g.D;
    fa_load8(&Qs[r * LD + c], src, c, g.D, g.vec);
  }
  __syncthreads();
  uint32_t qf[KS][4];
  for (int kk = 0; kk < KS; kk++) ldmatrix_x4(qf[kk], &Qs[(warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8]);

  int qi[2];
  int64_t orow[2];  /* output row index (query i, head h) of this thread's two rows */
  for (int h = 0; h < 2; h++) {
    const int64_t pr = r0 + warp * 16 + gq + 8 * h;
    qi[h] = pr < M ? (int)(pr / g.group) : -1;
    orow[h] = pr < M ? (pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group : 0;
  }
  float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};
  float acc[DT][4];
  for (int d = 0; d < DT; d++)
    for (int i = 0; i < 4; i++) acc[d][i] = 0.0f;

  const int kv_end = attn_kv_end(g, r0, FA_BR);
  /* split-KV (part != NULL): this block takes split_tiles tiles starting at tile z */
  const int kv_begin = part ? (int)blockIdx.z * split_tiles * BC : 0;
  const int kv_stop = part ? min(kv_end, kv_begin + split_tiles * BC) : kv_end;
  for (int kt = kv_begin; kt < kv_stop; kt += BC) {
    __syncthreads();  /* the previous tile (and the Q fragments' shared reads) are done */
    for (int idx = tid; idx < BC * C8; idx += FA_THREADS) {
      const int r = idx / C8, c = (idx % C8) * 8, j = kt + r;
      const __nv_bfloat16 *ks = NULL, *vs = NULL;
      if (j < kv_end) {
        const int64_t off = j < g.Lc ? ((int64_t)j * g.Hkv + hk) * g.D : ((int64_t)(j - g.Lc) * g.Hkv + hk) * g.D;
        ks = (j < g.Lc ? kc : kn) + off;
        vs = (j < g.Lc ? vc : vn) + off;
      }
      fa_load8(&Ks[r * LD + c], ks, c, g.D, g.vec);
      fa_load8(&Vs[r * LD + c], vs, c, g.D, g.vec);
    }
    __syncthreads();

    /* S = Q·Kᵀ for this warp's 16 rows and BC keys */
    float s[NT][4];
    for (int nt = 0; nt < NT; nt++)
      for (int i = 0; i < 4; i++) s[nt][i] = 0.0f;
    for (int kk = 0; kk < KS; kk++)
      for (int nt = 0; nt < NT; nt++) {
        uint32_t b[2];
        ldmatrix_x2(b, &Ks[(nt * 8 + (lane & 7)) * LD + kk * 16 + ((lane >> 3) & 1) * 8]);
        mma_m16n8k16_bf16(s[nt], qf[kk], b, s[nt]);
      }

    /* online softmax: C element i of tile nt is row gq + 8(i/2), key kt + nt·8 + 2t4 + i%2 */
    float mx[2] = {m_i[0], m_i[1]};
    for (int nt = 0; nt < NT; nt++)
      for (int i = 0; i < 4; i++) {
        const int h = i >> 1, j = kt + nt * 8 + 2 * t4 + (i & 1);
        s[nt][i] = attn_visible(g, qi[h], j, kv_end) ? s[nt][i] * g.scale : -INFINITY;
        mx[h] = fmaxf(mx[h], s[nt][i]);
      }
    float mref[2], corr[2], rs[2] = {0.0f, 0.0f};
    for (int h = 0; h < 2; h++) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(FULL_MASK, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(FULL_MASK, mx[h], 2));
      mref[h] = mx[h] == -INFINITY ? 0.0f : mx[h];
      corr[h] = expf_torch(m_i[h] - mref[h]);
      m_i[h] = mx[h];
    }
    for (int nt = 0; nt < NT; nt++)
      for (int i = 0; i < 4; i++) {
        const float p = expf_torch(s[nt][i] - mref[i >> 1]);
        s[nt][i] = p;
        rs[i >> 1] += p;
      }
    for (int h = 0; h < 2; h++) l_i[h] = l_i[h] * corr[h] + rs[h];
    for (int d = 0; d < DT; d++)
      for (int i = 0; i < 4; i++) acc[d][i] *= corr[i >> 1];

    /* O += P·V, 16 keys per k step, P = P_hi + P_lo in two bf16 terms (see the top) */
    for (int ks = 0; ks < BC / 16; ks++) {
      uint32_t hi[4], lo[4];
      for (int r = 0; r < 4; r++) {
        const float p0 = s[2 * ks + (r >> 1)][2 * (r & 1)], p1 = s[2 * ks + (r >> 1)][2 * (r & 1) + 1];
        const __nv_bfloat16 h0 = __float2bfloat16_rn(p0), h1 = __float2bfloat16_rn(p1);
        hi[r] = pack_bf16x2(h0, h1);
        lo[r] = pack_bf16x2(__float2bfloat16_rn(p0 - __bfloat162float(h0)),
                            __float2bfloat16_rn(p1 - __bfloat162float(h1)));
      }
      for (int d = 0; d < DT; d++) {
        uint32_t b[2];
        ldmatrix_x2_trans(b, &Vs[(ks * 16 + (lane & 15)) * LD + d * 8]);
        mma_m16n8k16_bf16(acc[d], lo, b, acc[d]);
        mma_m16n8k16_bf16(acc[d], hi, b, acc[d]);
      }
    }
  }

  for (int h = 0; h < 2; h++) {
    float l = l_i[h];
    l += __shfl_xor_sync(FULL_MASK, l, 1);
    l += __shfl_xor_sync(FULL_MASK, l, 2);
    if (qi[h] < 0) continue;
    if (part) {
      /* unnormalised partial: [split][kv head][row] × (DP values, m, l) */
      const int64_t prow = r0 + warp * 16 + gq + 8 * h;
      float *dst = part + (((int64_t)blockIdx.z * g.Hkv + hk) * M + prow) * (DP + 2);
      for (int d = 0; d < DT; d++)
        for (int i = 2 * h; i < 2 * h + 2; i++) dst[d * 8 + 2 * t4 + (i & 1)] = acc[d][i];
      if (t4 == 0) {
        dst[DP] = m_i[h];
        dst[DP + 1] = l;
      }
      continue;
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = 0; d < DT; d++)
      for (int i = 2 * h; i < 2 * h + 2; i++) {
        const int col = d * 8 + 2 * t4 + (i & 1);
        if (col < g.D) st_any(o, odt, orow[h] * g.D + col, acc[d][i] * inv);
      }
  }
}

/* Split-KV combine: o = Σ_s acc_s·e^(m_s − m) / Σ_s l_s·e^(m_s − m), m = max_s m_s, the
 * splits in order. */
__global__ void flash_combine(void *o, int odt, const float *part, int nsplit, int DP, AttnGeo g) {
  const int64_t M = (int64_t)g.Lq * g.group, total = M * g.Hkv * g.D;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % g.D);
    const int64_t row = i / g.D, hk = row / M, pr = row % M;
    float m = -INFINITY;
    for (int s = 0; s < nsplit; s++) m = fmaxf(m, part[((s * g.Hkv + hk) * M + pr) * (DP + 2) + DP]);
    float l = 0.0f, acc = 0.0f;
    for (int s = 0; s < nsplit; s++) {
      const float *p = part + ((s * g.Hkv + hk) * M + pr) * (DP + 2);
      const float c = p[DP] == -INFINITY ? 0.0f : expf_torch(p[DP] - m);
      l = l + p[DP + 1] * c;
      acc = acc + p[d] * c;
    }
    const int64_t orow = (pr / g.group) * g.Hq + hk * g.group + pr % g.group;
    st_any(o, odt, orow * g.D + d, l > 0.0f ? acc * (1.0f / l) : 0.0f);
  }
}

/* ---- dispatch ----------------------------------------------------------------------------- */

template <int DP>
static constexpr int fa_bc() { return DP >= 128 ? 32 : 64; }
template <int DP>
static constexpr size_t fa_smem() { return (size_t)(FA_BR + 2 * fa_bc<DP>()) * (DP + 8) * 2; }

template <int DP>
static bool fa_init(BkBackend *be) {
  auto k = flash_attn_bf16<DP, fa_bc<DP>()>;
  return CUDA_OK(be, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)fa_smem<DP>()));
}

/* Split the keys over more blocks when the query tiles alone cannot fill the device (a
 * decode step: one query, 7 rows per KV head, 4 blocks on a 132-SM GPU) and there are
 * enough keys: each split takes a run of at least 4 key tiles, then flash_combine merges. */
static int fa_splits(const CudaImpl *impl, int64_t blocks, int64_t keys, int bc, int *split_tiles) {
  const int64_t target = 4 * (int64_t)(impl->sm_count > 1 ? impl->sm_count : 1);
  const int64_t tiles = (keys + bc - 1) / bc;
  int64_t s = 1;
  if (blocks < target && tiles >= 8) {
    s = (target + blocks - 1) / blocks;
    if (s > tiles / 4) s = tiles / 4;
    if (s > 64) s = 64;
  }
  *split_tiles = (int)((tiles + s - 1) / s);
  return (int)((tiles + *split_tiles - 1) / *split_tiles);
}

template <int DP>
static bool fa_launch(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                      const BkTensor *kn, const BkTensor *vn, const AttnGeo &g) {
  CudaImpl *impl = cuda_impl(be);
  auto k = flash_attn_bf16<DP, fa_bc<DP>()>;
  const int64_t M = (int64_t)g.Lq * g.group, mtiles = (M + FA_BR - 1) / FA_BR;
  int split_tiles;
  const int nsplit = fa_splits(impl, mtiles * g.Hkv, (int64_t)g.Lc + g.Lq, fa_bc<DP>(), &split_tiles);
  float *part = NULL;
  if (nsplit > 1) {
    part = (float *)cuda_pool_alloc(be, sizeof(float) * (size_t)nsplit * g.Hkv * M * (DP + 2));
    if (!part) return false;
  }
  const dim3 grid((unsigned)mtiles, (unsigned)g.Hkv, (unsigned)nsplit);
  typedef const __nv_bfloat16 *P;
  bool ok = CUDA_OK(be, LAUNCH(k, grid, dim3(FA_THREADS), fa_smem<DP>(), impl->stream, o->data, (int)o->dt,
                               (P)q->data, kc ? (P)kc->data : (P)NULL, vc ? (P)vc->data : (P)NULL, (P)kn->data,
                               (P)vn->data, part, split_tiles, g));
  if (ok && part)
    ok = CUDA_OK(be, LAUNCH(flash_combine, dim3(cuda_grid(impl, M * g.Hkv * g.D, 256)), dim3(256), 0, impl->stream,
                            o->data, (int)o->dt, (const float *)part, nsplit, DP, g));
  cuda_pool_free(be, part);
  return ok;
}

extern "C" bool cuda_attention_init(BkBackend *be) {
  return fa_init<16>(be) && fa_init<32>(be) && fa_init<64>(be) && fa_init<80>(be) && fa_init<128>(be) &&
         cuda_attention_f32_init(be);
}

static bool shape3(const BkTensor *t, int64_t h, int64_t d) {
  return t->nd == 3 && t->ne[1] == h && t->ne[2] == d && cuda_float_dt(t->dt);
}

static bool aligned16(const BkTensor *t) { return !t || (uintptr_t)t->data % 16 == 0; }

extern "C" void cuda_attention(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                               const BkTensor *kn, const BkTensor *vn, BkCausal causal, float scale) {
  if (q->nd != 3 || kn->nd != 3) {
    bk_fail(be, "cuda attention: q and k must be [L, heads, dim]");
    return;
  }
  const int64_t Lq = q->ne[0], Hq = q->ne[1], D = q->ne[2], Hkv = kn->ne[1];
  const int64_t Lc = kc ? kc->ne[0] : 0;
  if (Hkv == 0 || Hq % Hkv || !shape3(kn, Hkv, D) || !shape3(vn, Hkv, D) || kn->ne[0] != Lq || vn->ne[0] != Lq ||
      !bk_same_shape(o, q) || !cuda_float_dt(q->dt) || !cuda_float_dt(o->dt) ||
      (kc && (!vc || !shape3(kc, Hkv, D) || !shape3(vc, Hkv, D) || vc->ne[0] != Lc))) {
    bk_fail(be, "cuda attention: inconsistent shapes (q [%lld,%lld,%lld], new k [%lld,%lld,%lld], cache %lld)",
            (long long)Lq, (long long)Hq, (long long)D, (long long)kn->ne[0], (long long)kn->ne[1],
            (long long)kn->ne[2], (long long)Lc);
    return;
  }
  if (Lc + Lq > INT32_MAX || Lq * Hq > INT32_MAX || Hkv > 65535) {
    bk_fail(be, "cuda attention: %lld keys, %lld queries × %lld heads is too large", (long long)(Lc + Lq),
            (long long)Lq, (long long)Hq);
    return;
  }
  if (!Lq || !D) return;
  AttnGeo g;
  g.Lq = (int)Lq;
  g.Lc = (int)Lc;
  g.Hq = (int)Hq;
  g.Hkv = (int)Hkv;
  g.D = (int)D;
  g.group = (int)(Hq / Hkv);
  g.causal = causal == BK_CAUSAL_BOTTOM_RIGHT;
  g.scale = scale;
  g.sqrt_scale = (float)sqrt((double)scale);
  const bool bf16 = q->dt == BK_BF16 && kn->dt == BK_BF16 && vn->dt == BK_BF16 &&
                    (!kc || (kc->dt == BK_BF16 && vc->dt == BK_BF16));
  if (cuda_impl(be)->exact) {  /* BAGEL_CUDA_NUMERICS=exact: the reference's order, exact.cu */
    cuda_attention_exact(be, o, q, kc, vc, kn, vn, g);
    return;
  }
  g.vec = D % 8 == 0 && aligned16(q) && aligned16(kn) && aligned16(vn) && aligned16(kc) && aligned16(vc);
  if (bf16 && D <= 128) {
    if (D <= 16) fa_launch<16>(be, o, q, kc, vc, kn, vn, g);
    else if (D <= 32) fa_launch<32>(be, o, q, kc, vc, kn, vn, g);
    else if (D <= 64) fa_launch<64>(be, o, q, kc, vc, kn, vn, g);
    else if (D <= 80) fa_launch<80>(be, o, q, kc, vc, kn, vn, g);
    else fa_launch<128>(be, o, q, kc, vc, kn, vn, g);
    return;
  }
  if ((kc && (kc->dt != q->dt || vc->dt != q->dt)) || kn->dt != q->dt || vn->dt != q->dt) {
    bk_fail(be, "cuda attention: q, k and v must have one dtype (q %s, k %s, v %s)", bk_dtype_name(q->dt),
            bk_dtype_name(kn->dt), bk_dtype_name(vn->dt));
    return;
  }
  cuda_attention_f32(be, o, q, kc, vc, kn, vn, g);
}
