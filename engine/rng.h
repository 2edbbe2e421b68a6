/* engine/rng.h — a random generator that reproduces, bit for bit, what
 * `torch.manual_seed(seed); torch.randn(n)` gives on the CPU (docs/bagel-spec.md §6,
 * ../shared/golden/README.md "The noise generator").
 *
 * torch: mt19937 seeded with the low 32 bits of the seed.  A float32 randn of ≥ 16
 * values first fills every element with a 24-bit uniform, then runs Box–Muller over
 * each block of 16 on the pairs (j, j+8), in fp32, with ATen's avx_mathfun (Cephes)
 * log and sincos compiled with FMA contraction; when n is not a multiple of 16 the last
 * 16 values are redrawn from 16 fresh uniforms.  Fewer than 16 values take the scalar
 * path: double Box–Muller from 53-bit uniforms, with the second value cached for the
 * next draw.  Verified against every weight of the golden tiny checkpoint (25 M values,
 * 0 mismatches) and the golden noise tensors. */
#ifndef BAGEL_RNG_H
#define BAGEL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t mt[624];
  int idx;
  int has_cached;
  double cached;
} TorchGen;

void tg_seed(TorchGen *g, uint64_t seed);
uint32_t tg_u32(TorchGen *g);
/* torch.randn(n) in fp32 into out. */
void tg_randn(TorchGen *g, float *out, size_t n);
/* The same stream, delivered in pieces (for tensors too big to hold): emit(user, offset,
 * values, count) is called with consecutive ranges covering [0, n). */
typedef void (*TgEmit)(void *user, uint64_t offset, const float *values, size_t count);
void tg_randn_stream(TorchGen *g, uint64_t n, TgEmit emit, void *user);

/* The fp32 math torch uses there (exposed for tests). */
float tg_cephes_logf(float x);
void tg_cephes_sincosf(float x, float *s, float *c);

#endif
