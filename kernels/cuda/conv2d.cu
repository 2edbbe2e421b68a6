/* kernels/cuda/conv2d.cu — 2-D convolution of the FLUX VAE, fp32, batch 1, as an
 * implicit GEMM:  y[Cout, P] = W[Cout, K] · col[K, P] + b,  P = Ho·Wo, K = Cin·kh·kw,
 * k = (ci, dy, dx) row-major — the im2col matrix `col` is never materialised: each block
 * gathers its 16×64 slice of it straight from x into shared memory (zero outside the
 * image: the padding, and the right/bottom pad of the downsampling convs).
 *
 * Why our own kernel and not im2col + cuBLAS: at 1024² the decoder's last convs have
 * K = 1152 and P = 1 M, an im2col buffer of 4.5 GiB; tiling it through cuBLAS would cost
 * as much traffic as the GEMM itself.  Why fp32 SIMT and not tensor cores: the contract
 * (kernels/ops.h) and the official decoder are fp32; TF32 or bf16 would move the decoded
 * pixels by far more than the golden tolerance of the VAE (1e-4).
 *
 * Tile: 64 output channels × 64 pixels per block of 256 threads, K in steps of 16; each
 * thread accumulates a 4×4 register tile (rows ty + 16i, pixels tx + 16j, so the shared
 * reads are broadcast or consecutive).  Each output starts from its bias and adds the
 * products in k order, (((b + w0·x0) + w1·x1) + …), exactly the reference's sequence of
 * roundings (kernels/cpu/cpu_conv.c): under the emulation (no FMA contraction) the two
 * backends agree to the bit; nvcc's FMAs on the GPU differ by the fp32 rounding of the
 * sum (~1e-7 relative). */
#include "cuda_internal.cuh"

#define CV_BM 64
#define CV_BN 64
#define CV_BK 16
#define CV_THREADS 256

struct ConvGeo {
  int cin, h, w, cout, kh, kw, stride, pt, pl, ho, wo;
};

__global__ void __launch_bounds__(CV_THREADS) conv2d_kernel(float *y, const float *x, const float *wt, const float *b,
                                                            ConvGeo g) {
  SHARED(float, As, [CV_BK][CV_BM]);
  SHARED(float, Bs, [CV_BK][CV_BN]);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t K = (int64_t)g.cin * g.kh * g.kw, P = (int64_t)g.ho * g.wo;
  const int taps = g.kh * g.kw;
  const int64_t m0 = (int64_t)blockIdx.y * CV_BM, p0 = (int64_t)blockIdx.x * CV_BN;

  /* the one pixel whose col values this thread gathers: tid % 64, rows tid/64 + 4r */
  const int64_t lp = p0 + tid % CV_BN;
  const bool lp_ok = lp < P;
  const int oy = lp_ok ? (int)(lp / g.wo) : 0, ox = lp_ok ? (int)(lp % g.wo) : 0;
  const int iy0 = oy * g.stride - g.pt, ix0 = ox * g.stride - g.pl;

  float acc[4][4];
  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + ty + 16 * i;
    const float bias = b && m < g.cout ? b[m] : 0.0f;
    for (int j = 0; j < 4; j++) acc[i][j] = bias;
  }

  for (int64_t k0 = 0; k0 < K; k0 += CV_BK) {
    for (int r = 0; r < 4; r++) {
      const int e = tid + CV_THREADS * r;
      /* weights: consecutive threads read consecutive k of one row */
      const int kk = e % CV_BK, mm = e / CV_BK;
      const int64_t m = m0 + mm, k = k0 + kk;
      As[kk][mm] = m < g.cout && k < K ? wt[m * K + k] : 0.0f;
      /* col: consecutive threads take consecutive pixels of one k */
      const int kb = tid / CV_BN + 4 * r;
      const int64_t kc = k0 + kb;
      float v = 0.0f;
      if (lp_ok && kc < K) {
        const int ci = (int)(kc / taps), t = (int)(kc % taps);
        const int iy = iy0 + t / g.kw, ix = ix0 + t % g.kw;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[((int64_t)ci * g.h + iy) * g.w + ix];
      }
      Bs[kb][tid % CV_BN] = v;
    }
    __syncthreads();
    const int kn = K - k0 < CV_BK ? (int)(K - k0) : CV_BK;
    for (int kk = 0; kk < kn; kk++) {
      float a[4], bv[4];
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = acc[i][j] + a[i] * bv[j];
    }
    __syncthreads();
  }

  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= g.cout) continue;
    for (int j = 0; j < 4; j++) {
      const int64_t p = p0 + tx + 16 * j;
      if (p < P) y[m * P + p] = acc[i][j];
    }
  }
}

extern "C" void cuda_conv2d(BkBackend *be, BkTensor *y, const BkTensor *x, const BkTensor *w, const BkTensor *b,
                            int stride, const int pad[4]) {
  CudaImpl *impl = cuda_impl(be);
  if (x->dt != BK_F32 || w->dt != BK_F32 || y->dt != BK_F32 || (b && b->dt != BK_F32)) {
    bk_fail(be, "cuda conv2d: needs F32 tensors (x %s, w %s, y %s)", bk_dtype_name(x->dt), bk_dtype_name(w->dt),
            bk_dtype_name(y->dt));
    return;
  }
  if (x->nd != 3 || w->nd != 4 || y->nd != 3 || stride < 1 || pad[0] < 0 || pad[1] < 0 || pad[2] < 0 || pad[3] < 0) {
    bk_fail(be, "cuda conv2d: bad ranks or parameters (x %dD, w %dD, y %dD, stride %d)", x->nd, w->nd, y->nd, stride);
    return;
  }
  ConvGeo g;
  g.cin = (int)x->ne[0];
  g.h = (int)x->ne[1];
  g.w = (int)x->ne[2];
  g.cout = (int)w->ne[0];
  g.kh = (int)w->ne[2];
  g.kw = (int)w->ne[3];
  g.stride = stride;
  g.pt = pad[0];
  g.pl = pad[1];
  const int64_t hp = x->ne[1] + pad[0] + pad[2], wp = x->ne[2] + pad[1] + pad[3];
  const int64_t ho = hp >= w->ne[2] ? (hp - w->ne[2]) / stride + 1 : 0;
  const int64_t wo = wp >= w->ne[3] ? (wp - w->ne[3]) / stride + 1 : 0;
  if (w->ne[1] != x->ne[0] || y->ne[0] != w->ne[0] || y->ne[1] != ho || y->ne[2] != wo ||
      (b && bk_numel(b) != w->ne[0]) || ho <= 0 || wo <= 0) {
    bk_fail(be, "cuda conv2d: shapes x[%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] -> y[%lld,%lld,%lld], expected "
            "y[%lld,%lld,%lld]", (long long)x->ne[0], (long long)x->ne[1], (long long)x->ne[2], (long long)w->ne[0],
            (long long)w->ne[1], (long long)w->ne[2], (long long)w->ne[3], (long long)y->ne[0], (long long)y->ne[1],
            (long long)y->ne[2], (long long)w->ne[0], (long long)ho, (long long)wo);
    return;
  }
  if (x->ne[0] > INT32_MAX || hp > INT32_MAX || wp > INT32_MAX) {
    bk_fail(be, "cuda conv2d: input too large");
    return;
  }
  g.ho = (int)ho;
  g.wo = (int)wo;
  const int64_t P = ho * wo;
  const int64_t ptiles = (P + CV_BN - 1) / CV_BN, mtiles = (g.cout + CV_BM - 1) / CV_BM;
  if (ptiles > INT32_MAX || mtiles > 65535) {
    bk_fail(be, "cuda conv2d: output too large (%lld pixels, %d channels)", (long long)P, g.cout);
    return;
  }
  if (!g.cout) return;
  CUDA_OK(be, LAUNCH(conv2d_kernel, dim3((unsigned)ptiles, (unsigned)mtiles), dim3(CV_THREADS), 0, impl->stream,
                     (float *)y->data, (const float *)x->data, (const float *)w->data,
                     b ? (const float *)b->data : (const float *)NULL, g));
}
