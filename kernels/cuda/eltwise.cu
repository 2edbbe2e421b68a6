/* kernels/cuda/eltwise.cu — the element-wise ops: convert, add (with row broadcast),
 * scale_shift, silu_mul (SwiGLU and plain SiLU), gelu_tanh.
 *
 * Memory-bound and tiny next to the GEMMs, so one plain shape each: a grid-stride loop,
 * one element per iteration, loads and stores of the runtime dtype (ld_any/st_any: the
 * branch is uniform over the grid).  The arithmetic is the reference's, op by op with the
 * _rn intrinsics where the contract rounds between steps, so that nvcc does not contract
 * a multiply and an add into an FMA the reference does not have (kernels/ops.h):
 *   add:        y = round(a + b)
 *   scale_shift y = round(x·s + t)            (fp32)
 *   silu_mul:   y = round(round_g(silu(g)) · u), silu(g) = g / (1 + e^-g)
 *   gelu_tanh:  y = round(0.5·x·(1 + tanh(√(2/π)·fma(0.044715, x·x·x, x))))
 * as torch's vectorised CPU kernels compute them (docs/numerics.md): e^x is SLEEF's
 * (expf_torch, bit-identical to the reference), the GELU's multiply-add is fused, tanh
 * saturates to ±1 above 8.664339742 as SLEEF's does; tanhf itself is CUDA's (≤ 2 ulp
 * from glibc's on a GPU, identical under the emulation). */
#include "cuda_internal.cuh"

#define ELT_THREADS 256

#define GRID_STRIDE(i, n)                                                                      \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void convert_kernel(void *y, int ydt, const void *x, int xdt, int64_t n) {
  GRID_STRIDE(i, n) st_any(y, ydt, i, ld_any(x, xdt, i));
}

/* bf16 -> bf16 and fp32 -> fp32 are plain copies; the common casts get their own loop */
__global__ void convert_f32_bf16(__nv_bfloat16 *y, const float *x, int64_t n) {
  GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}
__global__ void convert_bf16_f32(float *y, const __nv_bfloat16 *x, int64_t n) {
  GRID_STRIDE(i, n) y[i] = __bfloat162float(x[i]);
}

__global__ void add_kernel(void *y, int ydt, const void *a, int adt, const void *b, int bdt, int64_t n, int64_t bcols) {
  GRID_STRIDE(i, n) st_any(y, ydt, i, __fadd_rn(ld_any(a, adt, i), ld_any(b, bdt, bcols ? i % bcols : i)));
}

__global__ void scale_shift_kernel(void *y, int ydt, const void *x, int xdt, float s, float t, int64_t n) {
  GRID_STRIDE(i, n) st_any(y, ydt, i, __fadd_rn(__fmul_rn(ld_any(x, xdt, i), s), t));
}

__global__ void silu_mul_kernel(void *y, int ydt, const void *g, int gdt, const void *u, int udt, int64_t n) {
  GRID_STRIDE(i, n) {
    float gv = ld_any(g, gdt, i);
    float a = __fdiv_rn(gv, __fadd_rn(1.0f, expf_torch(-gv)));
    /* act_fn(gate) is stored in the gate's dtype, then multiplied by up */
    if (u) a = __fmul_rn(round_to(gdt, a), ld_any(u, udt, i));
    st_any(y, ydt, i, a);
  }
}

__global__ void gelu_tanh_kernel(void *y, int ydt, const void *x, int xdt, int64_t n) {
  const float beta = 0.7978845608028654f; /* sqrt(2/π) */
  const float kappa = 0.044715f;
  GRID_STRIDE(i, n) {
    float v = ld_any(x, xdt, i);
    float inner = __fmul_rn(beta, fmaf(kappa, __fmul_rn(__fmul_rn(v, v), v), v));
    float th = fabsf(inner) > 8.664339742f ? copysignf(1.0f, inner) : tanhf(inner);
    st_any(y, ydt, i, __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.0f, th)));
  }
}

static bool same_numel(BkBackend *be, const char *op, const BkTensor *y, const BkTensor *x) {
  if (bk_numel(y) != bk_numel(x))
    return bk_fail(be, "cuda %s: %lld elements into %lld", op, (long long)bk_numel(x), (long long)bk_numel(y));
  if (!cuda_float_dt(y->dt) || !cuda_float_dt(x->dt))
    return bk_fail(be, "cuda %s: %s -> %s is not a float op", op, bk_dtype_name(x->dt), bk_dtype_name(y->dt));
  return true;
}

extern "C" bool cuda_convert_raw(BkBackend *be, void *y, BkDType ydt, const void *x, BkDType xdt, int64_t n) {
  CudaImpl *impl = cuda_impl(be);
  if (n <= 0) return true;
  dim3 grid(cuda_grid(impl, n, ELT_THREADS)), block(ELT_THREADS);
  if (ydt == xdt) return CUDA_OK(be, cudaMemcpyAsync(y, x, (size_t)n * bk_dtype_size(ydt), cudaMemcpyDeviceToDevice,
                                                     impl->stream));
  if (ydt == BK_BF16 && xdt == BK_F32)
    return CUDA_OK(be, LAUNCH(convert_f32_bf16, grid, block, 0, impl->stream, (__nv_bfloat16 *)y, (const float *)x, n));
  if (ydt == BK_F32 && xdt == BK_BF16)
    return CUDA_OK(be, LAUNCH(convert_bf16_f32, grid, block, 0, impl->stream, (float *)y, (const __nv_bfloat16 *)x, n));
  return CUDA_OK(be, LAUNCH(convert_kernel, grid, block, 0, impl->stream, y, (int)ydt, x, (int)xdt, n));
}

extern "C" void cuda_convert(BkBackend *be, BkTensor *y, const BkTensor *x) {
  if (!same_numel(be, "convert", y, x)) return;
  if (y->data == x->data && y->dt != x->dt) {
    bk_fail(be, "cuda convert: in place between %s and %s", bk_dtype_name(x->dt), bk_dtype_name(y->dt));
    return;
  }
  if (y->data != x->data) cuda_convert_raw(be, y->data, y->dt, x->data, x->dt, bk_numel(x));
}

extern "C" void cuda_add(BkBackend *be, BkTensor *y, const BkTensor *a, const BkTensor *b) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t n = bk_numel(a), cols = bk_cols(a);
  const bool bcast = bk_numel(b) == cols && bk_rows(a) != 1;
  if (!same_numel(be, "add", y, a) || !cuda_float_dt(b->dt)) return;
  if (!bcast && bk_numel(b) != n) {
    bk_fail(be, "cuda add: operand of %lld elements for %lld", (long long)bk_numel(b), (long long)n);
    return;
  }
  if (!n) return;
  CUDA_OK(be, LAUNCH(add_kernel, dim3(cuda_grid(impl, n, ELT_THREADS)), dim3(ELT_THREADS), 0, impl->stream, y->data,
                     (int)y->dt, a->data, (int)a->dt, b->data, (int)b->dt, n, bcast ? cols : (int64_t)0));
}

extern "C" void cuda_scale_shift(BkBackend *be, BkTensor *y, const BkTensor *x, float s, float t) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t n = bk_numel(x);
  if (!same_numel(be, "scale_shift", y, x) || !n) return;
  CUDA_OK(be, LAUNCH(scale_shift_kernel, dim3(cuda_grid(impl, n, ELT_THREADS)), dim3(ELT_THREADS), 0, impl->stream,
                     y->data, (int)y->dt, x->data, (int)x->dt, s, t, n));
}

extern "C" void cuda_silu_mul(BkBackend *be, BkTensor *y, const BkTensor *gate, const BkTensor *up) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t n = bk_numel(gate);
  if (!same_numel(be, "silu_mul", y, gate) || (up && !same_numel(be, "silu_mul", y, up)) || !n) return;
  CUDA_OK(be, LAUNCH(silu_mul_kernel, dim3(cuda_grid(impl, n, ELT_THREADS)), dim3(ELT_THREADS), 0, impl->stream,
                     y->data, (int)y->dt, gate->data, (int)gate->dt, up ? up->data : NULL, up ? (int)up->dt : 0, n));
}

extern "C" void cuda_gelu_tanh(BkBackend *be, BkTensor *y, const BkTensor *x) {
  CudaImpl *impl = cuda_impl(be);
  const int64_t n = bk_numel(x);
  if (!same_numel(be, "gelu_tanh", y, x) || !n) return;
  CUDA_OK(be, LAUNCH(gelu_tanh_kernel, dim3(cuda_grid(impl, n, ELT_THREADS)), dim3(ELT_THREADS), 0, impl->stream,
                     y->data, (int)y->dt, x->data, (int)x->dt, n));
}
