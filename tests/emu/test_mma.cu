/* tests/emu/test_mma.cu — the tensor-core wrappers of kernels/cuda/mma.cuh.
 *  1. the fragment layouts (from the PTX ISA) against a second, independent source: CuTe's
 *     thread-value layouts for SM80_16x8x16_F32BF16BF16F32_TN (mma_traits_sm80.hpp),
 *     written here as their shapes and strides;
 *  2. mma_m16n8k16_bf16 / _f16 against a naive product (small-integer data: exact);
 *  3. ldmatrix x4/x2, plain and transposed, against the PTX ISA's description;
 *  4. cp.async: the copy lands by the wait (the emulation lands it at the wait in forward
 *     order, at the issue in reverse order). */
#include "emu_test.h"
#include "mma.cuh"

/* CuTe layout ((4,8),V) : ((s0,s1),Vstride) evaluated at thread t, value v: the index into
 * a column-major (rows x cols) tile. */
static int cute_index(int t, const int *vshape, const int *vstride, int nv, int s0, int s1, int v) {
  int idx = (t % 4) * s0 + (t / 4) * s1;
  for (int m = 0; m < nv; m++) {
    idx += (v % vshape[m]) * vstride[m];
    v /= vshape[m];
  }
  return idx;
}

static void test_layouts(void) {
  const int a_shape[3] = {2, 2, 2}, a_stride[3] = {16, 8, 128};  // (M16,K16), idx = m + 16k
  const int b_shape[2] = {2, 2}, b_stride[2] = {8, 64};          // (N8,K16),  idx = n + 8k
  const int c_shape[2] = {2, 2}, c_stride[2] = {16, 8};          // (M16,N8),  idx = m + 16n
  int seen_a[256] = {0}, seen_b[128] = {0}, seen_c[128] = {0};
  for (int t = 0; t < 32; t++) {
    for (int v = 0; v < 8; v++) {
      int idx = cute_index(t, a_shape, a_stride, 3, 32, 1, v);
      MmaCoord c = mma_a_coord(t, v);
      CHECK(c.row == idx % 16 && c.col == idx / 16, "A lane %d value %d: (%d,%d) vs CuTe (%d,%d)", t, v, c.row,
            c.col, idx % 16, idx / 16);
      seen_a[c.row * 16 + c.col]++;
    }
    for (int v = 0; v < 4; v++) {
      int idx = cute_index(t, b_shape, b_stride, 2, 16, 1, v);
      MmaCoord c = mma_b_coord(t, v);
      CHECK(c.col == idx % 8 && c.row == idx / 8, "B lane %d value %d: (k %d, n %d) vs CuTe (k %d, n %d)", t, v,
            c.row, c.col, idx / 8, idx % 8);
      seen_b[c.row * 8 + c.col]++;
      idx = cute_index(t, c_shape, c_stride, 2, 32, 1, v);
      c = mma_c_coord(t, v);
      CHECK(c.row == idx % 16 && c.col == idx / 16, "C lane %d value %d: (%d,%d) vs CuTe (%d,%d)", t, v, c.row,
            c.col, idx % 16, idx / 16);
      seen_c[c.row * 8 + c.col]++;
    }
  }
  for (int i = 0; i < 256; i++) CHECK(seen_a[i] == 1, "A element %d held %d times", i, seen_a[i]);
  for (int i = 0; i < 128; i++) CHECK(seen_b[i] == 1 && seen_c[i] == 1, "B/C element %d held %d/%d times", i,
                                      seen_b[i], seen_c[i]);
  printf("fragment layouts agree with CuTe's: ok\n");
}

/* One warp: fragments straight from global memory by the layout functions, one mma. */
__global__ void mma_once(const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c, float *d, int use_f16) {
  int lane = threadIdx.x;
  uint32_t af[4], bf[2];
  float cf[4], df[4];
  for (int r = 0; r < 4; r++) {
    MmaCoord lo = mma_a_coord(lane, 2 * r), hi = mma_a_coord(lane, 2 * r + 1);
    af[r] = pack_bf16x2(a[lo.row * 16 + lo.col], a[hi.row * 16 + hi.col]);
  }
  for (int r = 0; r < 2; r++) {
    MmaCoord lo = mma_b_coord(lane, 2 * r), hi = mma_b_coord(lane, 2 * r + 1);
    bf[r] = pack_bf16x2(b[lo.row * 8 + lo.col], b[hi.row * 8 + hi.col]);
  }
  for (int i = 0; i < 4; i++) {
    MmaCoord o = mma_c_coord(lane, i);
    cf[i] = c[o.row * 8 + o.col];
  }
  if (use_f16)
    mma_m16n8k16_f16(df, af, bf, cf);
  else
    mma_m16n8k16_bf16(df, af, bf, cf);
  for (int i = 0; i < 4; i++) {
    MmaCoord o = mma_c_coord(lane, i);
    d[o.row * 8 + o.col] = df[i];
  }
}

static void test_mma(bool f16) {
  TestRng rng(f16 ? 11 : 10);
  std::vector<__nv_bfloat16> a(256), b(128);  // 16-bit patterns: bf16 or fp16 values
  std::vector<float> af(256), bf(128), c(128);
  for (int i = 0; i < 256; i++) {
    af[i] = (float)(rng.small_int(9) - 4);
    a[i] = f16 ? __ushort_as_bfloat16(__half_as_ushort(__float2half(af[i]))) : __float2bfloat16(af[i]);
  }
  for (int i = 0; i < 128; i++) {
    bf[i] = (float)(rng.small_int(9) - 4);
    b[i] = f16 ? __ushort_as_bfloat16(__half_as_ushort(__float2half(bf[i]))) : __float2bfloat16(bf[i]);
    c[i] = (float)(rng.small_int(21) - 10);
  }
  __nv_bfloat16 *da = to_device(a), *db = to_device(b);
  float *dc = to_device(c), *dd;
  CK(cudaMalloc((void **)&dd, 128 * sizeof(float)));
  CK(LAUNCH(mma_once, dim3(1), dim3(32), 0, 0, da, db, dc, dd, f16 ? 1 : 0));
  std::vector<float> d = to_host(dd, 128);
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 8; n++) {
      float want = c[m * 8 + n];
      for (int k = 0; k < 16; k++) want += af[m * 16 + k] * bf[k * 8 + n];
      CHECK(d[m * 8 + n] == want, "%s D[%d][%d] = %g, want %g", f16 ? "f16" : "bf16", m, n, d[m * 8 + n], want);
    }
  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dc));
  CK(cudaFree(dd));
  printf("mma_m16n8k16_%s vs naive product: ok (exact)\n", f16 ? "f16" : "bf16");
}

/* One warp loads a 16x16 b16 tile from shared memory with each ldmatrix variant. */
__global__ void ldmatrix_all(const unsigned short *tile, uint32_t *out) {
  SHARED(unsigned short, t, [16][16]);
  int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) t[i / 16][i % 16] = tile[i];
  __syncthreads();
  const void *row = &t[lane % 16][(lane / 16) * 8];
  uint32_t r[4];
  ldmatrix_x4(r, row);
  for (int j = 0; j < 4; j++) out[(0 * 4 + j) * 32 + lane] = r[j];
  ldmatrix_x4_trans(r, row);
  for (int j = 0; j < 4; j++) out[(1 * 4 + j) * 32 + lane] = r[j];
  ldmatrix_x2(r, row);
  for (int j = 0; j < 2; j++) out[(2 * 4 + j) * 32 + lane] = r[j];
  ldmatrix_x2_trans(r, row);
  for (int j = 0; j < 2; j++) out[(3 * 4 + j) * 32 + lane] = r[j];
}

static void test_ldmatrix(void) {
  std::vector<unsigned short> tile(256);
  for (int i = 0; i < 256; i++) tile[i] = (unsigned short)(i * 7 + 3);
  unsigned short *dt = to_device(tile);
  uint32_t *dout;
  CK(cudaMalloc((void **)&dout, 16 * 32 * sizeof(uint32_t)));
  CK(cudaMemset(dout, 0, 16 * 32 * sizeof(uint32_t)));
  CK(LAUNCH(ldmatrix_all, dim3(1), dim3(32), 0, 0, dt, dout));
  std::vector<uint32_t> out = to_host(dout, 16 * 32);
  /* Lanes 8j..8j+7 address the rows of matrix j: rows (lane%16), columns 8*(lane/16). */
  auto m_elem = [&](int j, int r, int c) { return (uint32_t)tile[((j % 2) * 8 + r) * 16 + (j / 2) * 8 + c]; };
  for (int variant = 0; variant < 4; variant++) {
    int nmat = variant < 2 ? 4 : 2;
    bool trans = variant % 2;
    for (int j = 0; j < nmat; j++)
      for (int lane = 0; lane < 32; lane++) {
        int q = lane / 4, t2 = 2 * (lane % 4);
        uint32_t want = trans ? m_elem(j, t2, q) | m_elem(j, t2 + 1, q) << 16
                              : m_elem(j, q, t2) | m_elem(j, q, t2 + 1) << 16;
        uint32_t got = out[(variant * 4 + j) * 32 + lane];
        CHECK(got == want, "ldmatrix variant %d matrix %d lane %d: %08x, want %08x", variant, j, lane, got, want);
      }
  }
  CK(cudaFree(dt));
  CK(cudaFree(dout));
  printf("ldmatrix x4/x2, plain and .trans: ok\n");
}

/* cp.async: what a thread reads of its destination before the wait, and after it. */
__global__ void async_copy(const float4 *src, float *before, float *after) {
  SHARED(float4, buf, [32]);
  cp_async_16(&buf[threadIdx.x], &src[threadIdx.x]);
  cp_async_commit();
  before[threadIdx.x] = buf[threadIdx.x].x;  // unspecified on a GPU; 0xff bytes (NaN) here
  cp_async_wait<0>();
  after[threadIdx.x] = buf[threadIdx.x].x;
}

static void test_cp_async(void) {
  std::vector<float4> src(32);
  for (int i = 0; i < 32; i++) src[i] = make_float4((float)i, 0, 0, 0);
  float4 *ds = to_device(src);
  float *db, *da;
  CK(cudaMalloc((void **)&db, 32 * sizeof(float)));
  CK(cudaMalloc((void **)&da, 32 * sizeof(float)));
  CK(LAUNCH(async_copy, dim3(1), dim3(32), 0, 0, ds, db, da));
  std::vector<float> before = to_host(db, 32), after = to_host(da, 32);
  for (int i = 0; i < 32; i++) {
    CHECK(after[i] == (float)i, "after the wait: %g, want %d", after[i], i);
#ifdef BAGEL_CUDA_EMU
    if (!strcmp(cuemu_order(), "forward"))  // the copy lands at the wait
      CHECK(isnan(before[i]), "before the wait the emulation must show the unwritten buffer, got %g", before[i]);
    if (!strcmp(cuemu_order(), "reverse"))  // the copy lands at the issue
      CHECK(before[i] == (float)i, "reverse order lands the copy at the issue, got %g", before[i]);
#endif
  }
  CK(cudaFree(ds));
  CK(cudaFree(db));
  CK(cudaFree(da));
  printf("cp.async lands at the wait: ok\n");
}

int main(void) {
  test_layouts();
  require_device();
  test_mma(false);
  test_mma(true);
  test_ldmatrix();
  test_cp_async();
  return 0;
}
