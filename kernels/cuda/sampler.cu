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
 * One block of 1024 threads does everything (N ≤ 4096 tokens of 64 values at 1024²:
 * 256 K elements, a few microseconds; a second launch would cost more).  The global
 * norms are a block reduction, per-token norms one warp per token; all sums of squares
 * are in double, like the reference, then sqrt in double and one rounding to fp32, so
 * the order of the sums does not show.  a and b are recomputed where needed instead of
 * stored: the recomputation is exact. */
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
  SHARED(double, red, [2][CFG_WARPS]);
  SHARED(float, ratio, [1]);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t n = N * C;
  if (!p.text) {
    for (int64_t i = tid; i < n; i += CFG_THREADS) euler(x, v_out, i, ld_any(c, p.cdt, i), p.cdt == BK_BF16, p.dt);
    return;
  }
  if (p.renorm == BK_RENORM_GLOBAL) {
    double sc = 0.0, sb = 0.0;
    for (int64_t i = tid; i < n; i += CFG_THREADS) {
      float cv = ld_any(c, p.cdt, i), b = cfg_b(c, ut, ui, p, i);
      sc += (double)cv * cv;
      sb += (double)b * b;
    }
    sc = warp_sum_d(sc);
    sb = warp_sum_d(sb);
    if (lane == 0) {
      red[0][warp] = sc;
      red[1][warp] = sb;
    }
    __syncthreads();
    if (tid == 0) {
      double tc = 0.0, tb = 0.0;
      for (int w = 0; w < CFG_WARPS; w++) {
        tc += red[0][w];
        tb += red[1][w];
      }
      float nc = (float)sqrt(tc), nb = (float)sqrt(tb);
      ratio[0] = clampf_(__fdiv_rn(nc, __fadd_rn(nb, 1e-8f)), p.rmin, 1.0f);
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
    double sc = 0.0, sa = 0.0;
    for (int64_t k = t * C + lane; k < (t + 1) * C; k += 32) {
      float cv = ld_any(c, p.cdt, k);
      float a = text_ch ? cfg_a(c, ut, p, k) : cfg_b(c, ut, ui, p, k);
      sc += (double)cv * cv;
      sa += (double)a * a;
    }
    sc = warp_sum_d(sc);
    sa = warp_sum_d(sa);
    const float nc = (float)sqrt(sc), na = (float)sqrt(sa);
    const float r = clampf_(__fdiv_rn(nc, __fadd_rn(na, 1e-8f)), p.rmin, 1.0f);
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
