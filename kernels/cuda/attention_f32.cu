/* kernels/cuda/attention_f32.cu — the fp32 SIMT flash-attention kernel: the VAE
 * mid-block's attention (one head of dim 512 over H/8·W/8 positions, 16 384 at 1024²,
 * fp32 like the official decoder) and any bf16 call with D > 128 (none in BAGEL).
 * The entry point and the shared row packing are in attention.cu / attention.cuh.
 *
 * Why not tensor cores: the contract computes this attention in fp32 and the VAE's golden
 * tolerance is 1e-4; bf16 (or TF32) scores would not meet it.  At 1024² it is 2·16 384²·512
 * multiply-adds ≈ 0.55 TFLOP once per decode, tens of milliseconds on an H100 in fp32.
 *
 * Structure: 128 threads own 16 packed query rows (8 threads per row); K/V stream
 * through shared memory in tiles of 32 keys × 64 dims.  Q stays in shared memory
 * ([16][D padded to 64·NCH], 32 KiB at D = 512); each thread computes the scores of 4
 * keys of its row (keys sub, sub+8, sub+16, sub+24), summing d = 0 … D−1 in order, on
 * q·√scale and k·√scale as the reference (torch's math SDPA) does, so the scores agree
 * with it to the bit under the emulation.  The online
 * softmax state (m, l) is per row (the 8 threads agree through shuffles), the output
 * accumulator per thread holds dims sub + 8c of every 64-chunk (NCH·8 registers), and
 * P·V reads p back from shared memory.  Softmax and output are fp32; only the online
 * rescaling orders the sums differently from the reference's two passes (~1e-7). */
#include "attention.cuh"

#define AF_THREADS 128
#define AF_BQ 16
#define AF_BK 32

template <int NCH>
static constexpr size_t af_smem() {
  return sizeof(float) * ((size_t)AF_BQ * NCH * 64 + AF_BK * 65 + AF_BK * 64 + AF_BQ * (AF_BK + 1));
}

/* Element d of the key/value row j (cache first, then the block's own). */
__device__ __forceinline__ float af_kv(const void *cache, const void *own, int dt, const AttnGeo &g, int hk, int j,
                                       int d) {
  if (j < g.Lc) return ld_any(cache, dt, ((int64_t)j * g.Hkv + hk) * g.D + d);
  return ld_any(own, dt, ((int64_t)(j - g.Lc) * g.Hkv + hk) * g.D + d);
}

template <int NCH>
__global__ void __launch_bounds__(AF_THREADS) flash_attn_f32(void *o, int odt, const void *q, const void *kc,
                                                             const void *vc, const void *kn, const void *vn, int dt,
                                                             AttnGeo g) {
  constexpr int DPAD = NCH * 64, PLD = AF_BK + 1;
  const float sf = g.sqrt_scale;
  DYN_SHARED(float, sm);
  float *Qs = sm, *Ks = Qs + AF_BQ * DPAD, *Vs = Ks + AF_BK * 65, *Ps = Vs + AF_BK * 64;
  const int tid = threadIdx.x, qr = tid >> 3, sub = tid & 7;
  const int hk = blockIdx.y;
  const int64_t M = (int64_t)g.Lq * g.group, r0 = (int64_t)blockIdx.x * AF_BQ;

  for (int idx = tid; idx < AF_BQ * DPAD; idx += AF_THREADS) {
    const int r = idx / DPAD, d = idx % DPAD;
    const int64_t pr = r0 + r;
    float v = 0.0f;
    if (pr < M && d < g.D)
      v = __fmul_rn(ld_any(q, dt, ((pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group) * g.D + d), sf);
    Qs[idx] = v;
  }
  const int64_t pr = r0 + qr;
  const int qi = pr < M ? (int)(pr / g.group) : -1;
  const int64_t orow = pr < M ? (pr / g.group) * g.Hq + (int64_t)hk * g.group + pr % g.group : 0;
  float m = -INFINITY, l = 0.0f;
  float acc[NCH * 8];
  for (int c = 0; c < NCH * 8; c++) acc[c] = 0.0f;

  const int kv_end = attn_kv_end(g, r0, AF_BQ);
  for (int kt = 0; kt < kv_end; kt += AF_BK) {
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int ch = 0; ch < NCH; ch++) {
      __syncthreads();
      for (int idx = tid; idx < AF_BK * 64; idx += AF_THREADS) {
        const int kr = idx >> 6, d = idx & 63, j = kt + kr, dd = ch * 64 + d;
        Ks[kr * 65 + d] = j < kv_end && dd < g.D ? __fmul_rn(af_kv(kc, kn, dt, g, hk, j, dd), sf) : 0.0f;
      }
      __syncthreads();
      for (int d = 0; d < 64; d++) {
        const float qv = Qs[qr * DPAD + ch * 64 + d];
        for (int jj = 0; jj < 4; jj++) s[jj] = s[jj] + qv * Ks[(sub + 8 * jj) * 65 + d];
      }
    }
    float mx = m;
    for (int jj = 0; jj < 4; jj++) {
      s[jj] = attn_visible(g, qi, kt + sub + 8 * jj, kv_end) ? s[jj] : -INFINITY;
      mx = fmaxf(mx, s[jj]);
    }
    for (int off = 1; off < 8; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, off));
    const float mref = mx == -INFINITY ? 0.0f : mx, corr = expf_torch(m - mref);
    m = mx;
    float ps = 0.0f;
    for (int jj = 0; jj < 4; jj++) {
      const float p = expf_torch(s[jj] - mref);
      Ps[qr * PLD + sub + 8 * jj] = p;
      ps += p;
    }
    l = l * corr + ps;
    for (int c = 0; c < NCH * 8; c++) acc[c] *= corr;
    for (int ch = 0; ch < NCH; ch++) {
      __syncthreads();  /* also publishes Ps */
      for (int idx = tid; idx < AF_BK * 64; idx += AF_THREADS) {
        const int kr = idx >> 6, d = idx & 63, j = kt + kr, dd = ch * 64 + d;
        Vs[kr * 64 + d] = j < kv_end && dd < g.D ? af_kv(vc, vn, dt, g, hk, j, dd) : 0.0f;
      }
      __syncthreads();
      for (int j = 0; j < AF_BK; j++) {
        const float p = Ps[qr * PLD + j];
        for (int c = 0; c < 8; c++) acc[ch * 8 + c] = acc[ch * 8 + c] + p * Vs[j * 64 + sub + 8 * c];
      }
    }
  }
  for (int off = 1; off < 8; off <<= 1) l += __shfl_xor_sync(FULL_MASK, l, off);
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  if (qi >= 0)
    for (int ch = 0; ch < NCH; ch++)
      for (int c = 0; c < 8; c++) {
        const int d = ch * 64 + sub + 8 * c;
        if (d < g.D) st_any(o, odt, orow * g.D + d, acc[ch * 8 + c] * inv);
      }
}

template <int NCH>
static bool af_init(BkBackend *be) {
  auto k = flash_attn_f32<NCH>;
  return CUDA_OK(be, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)af_smem<NCH>()));
}

bool cuda_attention_f32_init(BkBackend *be) { return af_init<1>(be) && af_init<2>(be) && af_init<4>(be) && af_init<8>(be); }

template <int NCH>
static bool af_launch(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                      const BkTensor *kn, const BkTensor *vn, const AttnGeo &g) {
  CudaImpl *impl = cuda_impl(be);
  auto k = flash_attn_f32<NCH>;
  const int64_t M = (int64_t)g.Lq * g.group;
  const dim3 grid((unsigned)((M + AF_BQ - 1) / AF_BQ), (unsigned)g.Hkv);
  return CUDA_OK(be, LAUNCH(k, grid, dim3(AF_THREADS), af_smem<NCH>(), impl->stream, o->data, (int)o->dt,
                            (const void *)q->data, kc ? (const void *)kc->data : (const void *)NULL,
                            vc ? (const void *)vc->data : (const void *)NULL, (const void *)kn->data,
                            (const void *)vn->data, (int)q->dt, g));
}

bool cuda_attention_f32(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                        const BkTensor *kn, const BkTensor *vn, const AttnGeo &g) {
  if (g.D <= 64) return af_launch<1>(be, o, q, kc, vc, kn, vn, g);
  if (g.D <= 128) return af_launch<2>(be, o, q, kc, vc, kn, vn, g);
  if (g.D <= 256) return af_launch<4>(be, o, q, kc, vc, kn, vn, g);
  if (g.D <= 512) return af_launch<8>(be, o, q, kc, vc, kn, vn, g);
  return bk_fail(be, "cuda attention: head dim %d is above the 512 this backend supports", g.D);
}
