/* kernels/cuda/mma.cuh — tensor-core and async-copy instructions, the only place kernels
 * get them from.
 *
 * On the GPU each wrapper is one inline-PTX instruction (sm_80+).  Under the CUDA
 * emulation each is a warp-collective operation that follows the PTX ISA's fragment
 * layouts ("Matrix Fragments for mma.m16n8k16", "ldmatrix"): the lanes exchange their
 * registers for real, so a fragment put together in the wrong layout gives a wrong
 * product, as it would on the GPU.  tests/emu/test_mma.cu checks each wrapper against a
 * naive product and the layout functions below against CuTe's independent description.
 *
 * The wrappers are macros so that the emulation can name the call site of a divergent
 * warp; the functions behind them are bagel_<name>.
 *
 *   mma_m16n8k16_bf16(d, a, b, c)  d[4] = a[4]·b[2] + c[4]; a: 16x16 bf16 (row), b: 16x8
 *   mma_m16n8k16_f16(d, a, b, c)   the same with fp16 inputs      bf16 (col), c/d: fp32
 *   ldmatrix_x4(r, p) / ldmatrix_x2(r, p)           8x8 b16 tiles from shared memory,
 *   ldmatrix_x4_trans(r, p) / ldmatrix_x2_trans(r, p)  lane i gives row i%8 of tile i/8
 *   cp_async_16(dst_smem, src_global)  16-byte asynchronous copy, completed by
 *   cp_async_commit() + cp_async_wait<N>() (all but the newest N groups done); the
 *   emulation lands it at the wait (forward order), at the issue (reverse) or either
 *   (random): the two ends of what the hardware may do
 */
#ifndef BAGEL_CUDA_MMA_CUH
#define BAGEL_CUDA_MMA_CUH

#include "cuda_common.cuh"

#include <stdint.h>

/* ---- fragment layouts (PTX ISA), shared by the emulation and the tests ---------------- */
struct MmaCoord {
  int row, col;
};
/* Element i (0..7; register i/2, half i%2) of lane's A fragment: (row, col) in 16x16. */
__host__ __device__ inline MmaCoord mma_a_coord(int lane, int i) {
  return MmaCoord{(lane >> 2) + 8 * ((i >> 1) & 1), (lane & 3) * 2 + (i & 1) + 8 * (i >> 2)};
}
/* Element i (0..3) of lane's B fragment: (k, n) in 16x8. */
__host__ __device__ inline MmaCoord mma_b_coord(int lane, int i) {
  return MmaCoord{(lane & 3) * 2 + (i & 1) + 8 * (i >> 1), lane >> 2};
}
/* Element i (0..3) of lane's C/D fragment: (row, col) in 16x8. */
__host__ __device__ inline MmaCoord mma_c_coord(int lane, int i) {
  return MmaCoord{(lane >> 2) + 8 * (i >> 1), (lane & 3) * 2 + (i & 1)};
}

/* Two 16-bit values in one register, the first in the low half (as mma and ldmatrix). */
__host__ __device__ inline uint32_t pack_bf16x2(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

#ifdef BAGEL_CUDA_EMU
namespace cuemu {
inline float b16_to_float(uint32_t reg, int half, bool is_bf16) {
  uint16_t h = (uint16_t)(half ? reg >> 16 : reg & 0xffff);
  if (is_bf16) return __uint_as_float((uint32_t)h << 16);
  return __half2float(__ushort_as_half(h));
}

/* d = a·b + c for the whole warp; each lane computes its own four outputs. */
inline void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16,
                         const char *file, int line, const char *what) {
  uint32_t in[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const unsigned char *tab = warp_gather(0xffffffffu, in, sizeof in, false, file, line, what);
  auto reg = [tab](int lane, int r) {
    uint32_t v;
    memcpy(&v, tab + (size_t)lane * kWarpSlot + 4 * r, 4);
    return v;
  };
  int lane = (int)cur->lane, g = lane >> 2, t = lane & 3;
  /* This lane's outputs need rows g, g+8 of A and columns 2t, 2t+1 of B.  Who holds
   * A[r][k] and B[k][n]: the inverse of mma_a_coord / mma_b_coord. */
  float arow[2][16], bcol[2][16];
  for (int h = 0; h < 2; h++)
    for (int k = 0; k < 16; k++) {
      int ai = (k % 2) + 2 * h + 4 * (k / 8), bi = (k % 2) + 2 * (k / 8);
      arow[h][k] = b16_to_float(reg(g * 4 + (k % 8) / 2, ai / 2), ai % 2, bf16);
      bcol[h][k] = b16_to_float(reg((2 * t + h) * 4 + (k % 8) / 2, 4 + bi / 2), bi % 2, bf16);
    }
  for (int i = 0; i < 4; i++) {  /* element i is (g + 8*(i/2), 2t + i%2): mma_c_coord */
    float s = 0.0f;
    for (int k = 0; k < 16; k++) s += arow[i >> 1][k] * bcol[i & 1][k];
    d[i] = s + c[i];
  }
}

/* ldmatrix: lanes 0..8*nmat-1 each give the address of one 16-byte row. */
inline void ldmatrix(uint32_t *r, int nmat, bool trans, const void *p, const char *file, int line,
                     const char *what) {
  int lane = (int)cur->lane;
  unsigned char row[16] = {0};
  if (lane < 8 * nmat) {
    if ((uintptr_t)p % 16) kernel_fail(file, line, "%s: row address %p is not 16-byte aligned", what, p);
    if (!is_shared(p, 16)) kernel_fail(file, line, "%s: row address %p is not shared memory", what, p);
    memcpy(row, p, 16);
  }
  const unsigned char *tab = warp_gather(0xffffffffu, row, 16, false, file, line, what);
  auto elem = [tab](int l, int e) {
    uint16_t h;
    memcpy(&h, tab + (size_t)l * kWarpSlot + 2 * e, 2);
    return (uint32_t)h;
  };
  for (int j = 0; j < nmat; j++) {
    int q = lane / 4, t2 = 2 * (lane % 4);
    r[j] = trans ? elem(8 * j + t2, q) | elem(8 * j + t2 + 1, q) << 16 : elem(8 * j + q, t2) | elem(8 * j + q, t2 + 1) << 16;
  }
}
} /* namespace cuemu */
#endif

__device__ __forceinline__ void bagel_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                        const float c[4], const char *file, int line) {
#if defined(__CUDA_ARCH__)
  (void)file;
  (void)line;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(BAGEL_CUDA_EMU)
  cuemu::mma_m16n8k16(d, a, b, c, true, file, line, "mma_m16n8k16_bf16");
#else
  (void)d, (void)a, (void)b, (void)c, (void)file, (void)line;
#endif
}

__device__ __forceinline__ void bagel_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                       const float c[4], const char *file, int line) {
#if defined(__CUDA_ARCH__)
  (void)file;
  (void)line;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(BAGEL_CUDA_EMU)
  cuemu::mma_m16n8k16(d, a, b, c, false, file, line, "mma_m16n8k16_f16");
#else
  (void)d, (void)a, (void)b, (void)c, (void)file, (void)line;
#endif
}

#if defined(__CUDA_ARCH__)
#define BAGEL_LDMATRIX(n, trans_sfx, regs_out, ...)                                                    \
  asm volatile("ldmatrix.sync.aligned.m8n8.x" #n trans_sfx ".shared.b16 " regs_out ", [%" #n "];\n"     \
               : __VA_ARGS__                                                                           \
               : "r"((unsigned)__cvta_generic_to_shared(p)))
#endif

__device__ __forceinline__ void bagel_ldmatrix_x4(uint32_t r[4], const void *p, bool trans, const char *file,
                                                  int line) {
#if defined(__CUDA_ARCH__)
  (void)file;
  (void)line;
  if (trans)
    BAGEL_LDMATRIX(4, ".trans", "{%0,%1,%2,%3}", "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]));
  else
    BAGEL_LDMATRIX(4, "", "{%0,%1,%2,%3}", "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]));
#elif defined(BAGEL_CUDA_EMU)
  cuemu::ldmatrix(r, 4, trans, p, file, line, trans ? "ldmatrix_x4_trans" : "ldmatrix_x4");
#else
  (void)r, (void)p, (void)trans, (void)file, (void)line;
#endif
}

__device__ __forceinline__ void bagel_ldmatrix_x2(uint32_t r[2], const void *p, bool trans, const char *file,
                                                  int line) {
#if defined(__CUDA_ARCH__)
  (void)file;
  (void)line;
  if (trans)
    BAGEL_LDMATRIX(2, ".trans", "{%0,%1}", "=r"(r[0]), "=r"(r[1]));
  else
    BAGEL_LDMATRIX(2, "", "{%0,%1}", "=r"(r[0]), "=r"(r[1]));
#elif defined(BAGEL_CUDA_EMU)
  cuemu::ldmatrix(r, 2, trans, p, file, line, trans ? "ldmatrix_x2_trans" : "ldmatrix_x2");
#else
  (void)r, (void)p, (void)trans, (void)file, (void)line;
#endif
}

__device__ __forceinline__ void bagel_cp_async_16(void *dst, const void *src, const char *file, int line) {
#if defined(__CUDA_ARCH__)
  (void)file;
  (void)line;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
               "l"(src)
               : "memory");
#elif defined(BAGEL_CUDA_EMU)
  if (cuemu::cp_async_queue(dst, src, 16, file, line)) memcpy(dst, src, 16);  // lands at the issue
#else
  (void)dst, (void)src, (void)file, (void)line;
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(BAGEL_CUDA_EMU)
  cuemu::cp_async_commit();
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(BAGEL_CUDA_EMU)
  /* The copies land now, done by this thread (so ASan and TSan see them here). */
  cuemu::AsyncCopy c[32];
  size_t k;
  while ((k = cuemu::cp_async_take(N, c, 32)) != 0)
    for (size_t i = 0; i < k; i++) memcpy(c[i].dst, c[i].src, c[i].bytes);
#endif
}

#define mma_m16n8k16_bf16(d, a, b, c) bagel_mma_m16n8k16_bf16((d), (a), (b), (c), __FILE__, __LINE__)
#define mma_m16n8k16_f16(d, a, b, c) bagel_mma_m16n8k16_f16((d), (a), (b), (c), __FILE__, __LINE__)
#define ldmatrix_x4(r, p) bagel_ldmatrix_x4((r), (p), false, __FILE__, __LINE__)
#define ldmatrix_x4_trans(r, p) bagel_ldmatrix_x4((r), (p), true, __FILE__, __LINE__)
#define ldmatrix_x2(r, p) bagel_ldmatrix_x2((r), (p), false, __FILE__, __LINE__)
#define ldmatrix_x2_trans(r, p) bagel_ldmatrix_x2((r), (p), true, __FILE__, __LINE__)
#define cp_async_16(dst, src) bagel_cp_async_16((dst), (src), __FILE__, __LINE__)

#endif
