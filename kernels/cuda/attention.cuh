/* kernels/cuda/attention.cuh — what the two attention kernels share (attention.cu: the
 * bf16 tensor-core flash kernel and the op's entry point; attention_f32.cu: the fp32
 * SIMT flash kernel).
 *
 * Rows are packed per KV head: a block works on query rows of one KV head, row
 * r = i·group + g standing for query i, head hk·group + g.  The `group` query heads that
 * share a KV head (7 at full size) therefore share every K/V tile a block loads, and a
 * decode step (one query) still fills 7 of a block's rows instead of 1. */
#ifndef BAGEL_CUDA_ATTENTION_CUH
#define BAGEL_CUDA_ATTENTION_CUH

#include "cuda_internal.cuh"

struct AttnGeo {
  int Lq, Lc;         /* queries (= new keys) and cached keys */
  int Hq, Hkv, D, group;
  int causal;         /* BK_CAUSAL_BOTTOM_RIGHT: query i sees keys 0 .. Lc + i */
  int vec;            /* rows are 16-byte aligned runs of D % 8 == 0 bf16 values */
  float scale;
  float sqrt_scale;   /* (float)sqrt((double)scale): the SIMT kernel scales q and k by it */
};

/* Keys a block of rows [r0, r0 + rows) needs: all, or up to the causal limit of its last
 * valid query. */
__device__ __forceinline__ int attn_kv_end(const AttnGeo &g, int64_t r0, int rows) {
  const int Lk = g.Lc + g.Lq;
  if (!g.causal) return Lk;
  int64_t last = r0 + rows;
  const int64_t M = (int64_t)g.Lq * g.group;
  if (last > M) last = M;
  const int64_t qi = (last - 1) / g.group;
  const int64_t end = (int64_t)g.Lc + qi + 1;
  return end < Lk ? (int)end : Lk;
}

/* May query qi (−1: a padding row) see key j? */
__device__ __forceinline__ bool attn_visible(const AttnGeo &g, int qi, int j, int kv_end) {
  return qi >= 0 && j < kv_end && (!g.causal || j <= g.Lc + qi);
}

/* The fp32 SIMT flash kernel (any float dtype, D <= 512). */
bool cuda_attention_f32(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                        const BkTensor *kn, const BkTensor *vn, const AttnGeo &g);
bool cuda_attention_f32_init(BkBackend *be);
/* BAGEL_CUDA_NUMERICS=exact: the reference's arithmetic bit for bit (exact.cu). */
bool cuda_attention_exact(BkBackend *be, BkTensor *o, const BkTensor *q, const BkTensor *kc, const BkTensor *vc,
                          const BkTensor *kn, const BkTensor *vn, const AttnGeo &g);

#endif
