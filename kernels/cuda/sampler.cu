/* kernels/cuda/sampler.cu — one sampler step, CFG combine + renorm + Euler, in one
 * kernel (docs/bagel-spec.md §6 steps 5–6, the rounding of §13; the reference is
 * kernels/cpu/cpu_sampler.c):
 *   s_t ≤ 1 or no text branch: v = c.
 *   a = bf16(u_t + bf16(s_t·bf16(c − u_t)))                       (op by op in bf16)
 *   global / channel: b = bf16(u_i + bf16(s_i·bf16(a − u_i))) if s_i > 1 else a;
 *     r = clamp(‖c‖/(‖b‖ + 1e-8), min, 1), fp32 norms (global: all N×64 values, channel:
 *     per token); v = bf16(b·r) (global) or b·r in fp32 (channel).
 *   text_channel: per token r = clamp(‖c‖/(‖a‖ + 1e-8), min, 1); a' = a·r (fp32);
 *     v = u_i + s_i·(a' − u_i) in fp32 when s_i > 1, else a'.
 *   Euler: x ← x − v·Δ, the product rounded to bf16 first when v is bf16.
 *
 * The norms are torch.norm's fp32 2-norm in its exact order (the reference's
 * norm_rows, docs/numerics.md): lane l of 8 accumulates v[l]², v[8+l]², … with fused
 * multiply-adds, the lanes are added left to right, then the tail, then sqrtf.  That
 * order matters here: text_channel's velocity is fp32 and takes the ratio's every bit.
 *
 * One block of 1024 threads does everything (N ≤ 4096 tokens of 64 values at 1024²).
 * Per-token norms: one warp per token, 8 lanes running the 8 chains of 8 values.  The
 * global norm is 8 sequential chains over all N·64 values (32 K fused multiply-adds
 * each at 1024², tens of microseconds once per step), run by 8 lanes of warp 0 while
 * the block waits — the price of the reference's bits.  a and b are recomputed where
 * needed instead of stored: the recomputation is exact. */
#include "cuda_internal.cuh"

#define CFG_THREADS 1024
#define CFG_WARPS (CFG_THREADS / 32)

struct CfgArgs {
  float st, si, rmin, dt;
  int renorm, text, img;  /* text: the text stage runs (ut given, s_t > 1); img: s_i > 1 and ui given */
  int cdt, udt, idt;
};

__device__ __forceinline__ float cfg_a(const void *c, const void *ut, const CfgArgs &p, int64_t i) {
  float cv = ld_any(c, p.cdt, i), u = ld_any(ut, p.udt, i);
  return round_bf16(__fadd_rn(u, round_bf16(__fmul_rn(p.st, round_bf16(__fsub_rn(cv, u))))));
}
/* b of global/channel: the image stage in bf16 on top of a */
__device__ __forceinline__ float cfg_b(const void *c, const void *ut, const void *ui, const CfgArgs &p, int64_t i) {
  float a = cfg_a(c, ut, p, i);
  if (!p.img) return a;
  float u = ld_any(ui, p.idt, i);
  return round_bf16(__fadd_rn(u, round_bf16(__fmul_rn(p.si, round_bf16(__fsub_rn(a, u))))));
}

__device__ __forceinline__ float clampf_(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

__device__ __forceinline__ void euler(float *x, float *v_out, int64_t i, float v, bool v_bf16, float dt) {
  float step = __fmul_rn(v, dt);
  if (v_bf16) step = round_bf16(step);
  x[i] = __fsub_rn(x[i], step);
  if (v_out) v_out[i] = v;
}

__global__ void __launch_bounds__(CFG_THREADS) cfg_euler_kernel(float *x, const void *c, const void *ut, const void *ui,
                                                                float *v_out, int64_t N, int64_t C, CfgArgs p) {
  SHARED(float, ratio, [1]);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t n = N * C;
  if (!p.text) {
    for (int64_t i = tid; i < n; i += CFG_THREADS) euler(x, v_out, i, ld_any(c, p.cdt, i), p.cdt == BK_BF16, p.dt);
    return;
  }
  if (p.renorm == BK_RENORM_GLOBAL) {
    if (warp == 0) {
      /* lane l < 8: chain l of ‖c‖ and ‖b‖ */
      float ac = 0.0f, ab = 0.0f;
      const int64_t nv = n / 8 * 8;
      if (lane < 8)
        for (int64_t d = lane; d < nv; d += 8) {
          const float cv = ld_any(c, p.cdt, d), b = cfg_b(c, ut, ui, p, d);
          ac = fmaf(cv, cv, ac);
          ab = fmaf(b, b, ab);
        }
      float sc = __shfl_sync(FULL_MASK, ac, 0), sb = __shfl_sync(FULL_MASK, ab, 0);
      for (int l = 1; l < 8; l++) {
        sc = __fadd_rn(sc, __shfl_sync(FULL_MASK, ac, l));
        sb = __fadd_rn(sb, __shfl_sync(FULL_MASK, ab, l));
      }
      if (lane == 0) {
        for (int64_t d = nv; d < n; d++) {
          const float cv = ld_any(c, p.cdt, d), b = cfg_b(c, ut, ui, p, d);
          sc = fmaf(cv, cv, sc);
          sb = fmaf(b, b, sb);
        }
        ratio[0] = clampf_(__fdiv_rn(__fsqrt_rn(sc), __fadd_rn(__fsqrt_rn(sb), 1e-8f)), p.rmin, 1.0f);
      }
    }
    __syncthreads();
    const float r = ratio[0];
    for (int64_t i = tid; i < n; i += CFG_THREADS)
      euler(x, v_out, i, round_bf16(__fmul_rn(cfg_b(c, ut, ui, p, i), r)), true, p.dt);
    return;
  }
  /* per token: one warp per token, C values (64) strided over the lanes */
  const bool text_ch = p.renorm == BK_RENORM_TEXT_CHANNEL;
  for (int64_t t = warp; t < N; t += CFG_WARPS) {
    const int64_t t0 = t * C, cv8 = C / 8 * 8;
    float ac = 0.0f, aa = 0.0f;
    if (lane < 8)
      for (int64_t d = lane; d < cv8; d += 8) {
        const float cv = ld_any(c, p.cdt, t0 + d);
        const float a = text_ch ? cfg_a(c, ut, p, t0 + d) : cfg_b(c, ut, ui, p, t0 + d);
        ac = fmaf(cv, cv, ac);
        aa = fmaf(a, a, aa);
      }
    float sc = __shfl_sync(FULL_MASK, ac, 0), sa = __shfl_sync(FULL_MASK, aa, 0);
    for (int l = 1; l < 8; l++) {
      sc = __fadd_rn(sc, __shfl_sync(FULL_MASK, ac, l));
      sa = __fadd_rn(sa, __shfl_sync(FULL_MASK, aa, l));
    }
    for (int64_t d = cv8; d < C; d++) {  /* the tail, in every lane alike */
      const float cv = ld_any(c, p.cdt, t0 + d);
      const float a = text_ch ? cfg_a(c, ut, p, t0 + d) : cfg_b(c, ut, ui, p, t0 + d);
      sc = fmaf(cv, cv, sc);
      sa = fmaf(a, a, sa);
    }
    const float r = clampf_(__fdiv_rn(__fsqrt_rn(sc), __fadd_rn(__fsqrt_rn(sa), 1e-8f)), p.rmin, 1.0f);
    for (int64_t k = t * C + lane; k < (t + 1) * C; k += 32) {
      float v;
      if (text_ch) {
        float ap = __fmul_rn(cfg_a(c, ut, p, k), r);
        if (p.img) {
          float u = ld_any(ui, p.idt, k);
          v = __fadd_rn(u, __fmul_rn(p.si, __fsub_rn(ap, u)));
        } else {
          v = ap;
        }
      } else {
        v = __fmul_rn(cfg_b(c, ut, ui, p, k), r);
      }
      euler(x, v_out, k, v, false, p.dt);
    }
  }
}

extern "C" void cuda_cfg_euler(BkBackend *be, BkTensor *x, const BkTensor *c, const BkTensor *ut, const BkTensor *ui,
                               const BkCfgStep *p, BkTensor *v_out) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t N = bk_rows(x), C = bk_cols(x), n = N * C;
  if (x->dt != BK_F32 || bk_numel(c) != n || (ut && bk_numel(ut) != n) || (ui && bk_numel(ui) != n) ||
      (v_out && (bk_numel(v_out) != n || v_out->dt != BK_F32)) || !cuda_float_dt(c->dt) ||
      (ut && !cuda_float_dt(ut->dt)) || (ui && !cuda_float_dt(ui->dt))) {
    bk_fail(be, "cuda cfg_euler: branch velocities must match x[%lld,%lld] (F32)", (long long)N, (long long)C);
    return;
  }
  if (!n) return;
  CfgArgs a;
  a.st = p->cfg_text;
  a.si = p->cfg_img;
  a.rmin = p->renorm_min;
  a.dt = p->dt;
  a.renorm = (int)p->renorm;
  a.text = ut && p->cfg_text > 1.0f;
  a.img = ui && p->cfg_img > 1.0f;
  a.cdt = (int)c->dt;
  a.udt = ut ? (int)ut->dt : 0;
  a.idt = ui ? (int)ui->dt : 0;
  CUDA_OK(be, LAUNCH(cfg_euler_kernel, dim3(1), dim3(CFG_THREADS), 0, impl->stream, (float *)x->data, c->data,
                     ut ? ut->data : NULL, ui ? ui->data : NULL, v_out ? (float *)v_out->data : NULL, N, C, a));
}
