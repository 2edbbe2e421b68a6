/* engine/model/vae.h — the FLUX.1 autoencoder (ae.safetensors; docs/bagel-spec.md §1.7,
 * §4.4 step 2, §6 step 7, §13): encoder → moments, the diagonal-Gaussian posterior with
 * the scale/shift, and the decoder back to pixels.  fp32 throughout, as the official
 * code runs it (the VAE computes in the dtype stored in ae.safetensors).
 *
 * Every width comes from VaeConfig (read from the tensor shapes), so the real VAE (ch 128,
 * 4 levels), the golden tiny one (ch 32) and odd test ones (3 levels) load through the
 * same code.  With L levels the encoder downsamples by f = 2^(L−1) (8 for FLUX).
 *
 * Memory: activations live in the caller's Arena.  Each call allocates its output first
 * (so it outlives the call), then takes a mark and rewinds to it before returning; on
 * error the arena is rewound to where it was at entry.  Peak use for one call is about
 * two copies of the largest activation plus one ResnetBlock's two temporaries (512×512
 * decode with the real VAE: ~0.9 GB). */
#ifndef BAGEL_VAE_H
#define BAGEL_VAE_H

#include <glib.h>

#include "checkpoint.h"
#include "dump.h"
#include "weights.h"

/* Weight structs mirror the checkpoint names: `encoder.down.1.block.0.norm1.weight` is
 * m->encoder.down[1].block[0].norm1.weight.  Conv weights are [Cout, Cin, kh, kw] F32. */
typedef struct {
  BkTensor weight, bias;
} VaeConv;

typedef struct {
  BkTensor weight, bias;    /* GroupNorm affine, [C] */
} VaeNorm;

typedef struct {
  int in_channels, out_channels;
  VaeNorm norm1;
  VaeConv conv1;            /* 3×3, in -> out */
  VaeNorm norm2;
  VaeConv conv2;            /* 3×3, out -> out */
  VaeConv nin_shortcut;     /* 1×1, only when in != out (weight.data NULL otherwise) */
} VaeResnetBlock;

typedef struct {
  VaeNorm norm;
  VaeConv q, k, v, proj_out;   /* 1×1, C -> C */
} VaeAttnBlock;

typedef struct {
  VaeResnetBlock block_1;
  VaeAttnBlock attn_1;
  VaeResnetBlock block_2;
} VaeMid;

typedef struct {
  int n_block;              /* num_res_blocks (encoder), num_res_blocks + 1 (decoder) */
  VaeResnetBlock *block;
  VaeConv downsample_conv;  /* encoder.down.{i}.downsample.conv: all levels but the last */
  VaeConv upsample_conv;    /* decoder.up.{i}.upsample.conv: all levels but 0 */
} VaeLevel;

typedef struct {
  VaeConv conv_in;
  VaeLevel down[VAE_MAX_LEVELS];
  VaeMid mid;
  VaeNorm norm_out;
  VaeConv conv_out;         /* -> 2·z_channels (mean ‖ logvar) */
} VaeEncoder;

typedef struct {
  VaeConv conv_in;          /* z_channels -> ch·ch_mult[L−1] */
  VaeMid mid;
  VaeLevel up[VAE_MAX_LEVELS];   /* indexed by level: up[L−1] runs first */
  VaeNorm norm_out;
  VaeConv conv_out;         /* -> out_channels */
} VaeDecoder;

typedef struct {
  BkBackend *be;
  VaeConfig cfg;
  VaeEncoder encoder;
  VaeDecoder decoder;
  double last_flops;        /* FLOPs (2·MAC) of the last encode or decode: convs + attention */
} VaeModel;

VaeModel *vae_load(BkBackend *be, const Checkpoint *ck, GError **error);
void vae_free(VaeModel *m);

/* Downsampling factor 2^(levels−1) (8 for FLUX). */
int vae_downsample_factor(const VaeConfig *cfg);

/* image [in_channels, H, W] F32 (backend memory, values in [−1, 1]); H and W positive
 * multiples of vae_downsample_factor().  *moments_out = [2·z_channels, H/f, W/f] F32 in
 * the arena: mean ‖ logvar.  dump (nullable) records every stage's output under
 * "vae.encoder.<module path>" (e.g. vae.encoder.down.1.block.0, vae.encoder.mid.attn_1,
 * vae.encoder.conv_out). */
gboolean vae_encode(VaeModel *m, Arena *a, const BkTensor *image, BkTensor *moments_out,
                    Dump *dump, GError **error);

/* The posterior sample and the latent scaling, on the host, in the official fp32 op
 * order (no clamp on logvar in BAGEL's DiagonalGaussian):
 *   std = exp(0.5·logvar);  s = mean + std·eps;  z = scale · (s − shift).
 * moments [2z, h, w] (mean then logvar), eps [z, h, w] (torch.randn_like(mean)); z_out
 * [z, h, w]; sample_out (nullable) receives s before the scaling. */
void vae_posterior(const VaeConfig *cfg, const float *moments, const float *eps, int h, int w,
                   float *z_out, float *sample_out);

/* z [z_channels, h, w] F32 (backend memory): the scaled latent, as the sampler produces it;
 * the decoder first undoes the scaling (z/scale + shift, fp32, on the host).
 * *image_out = [out_channels, h·f, w·f] F32 in the arena, before any clamping.  dump as
 * for vae_encode ("vae.decoder.in" is the unscaled latent). */
gboolean vae_decode(VaeModel *m, Arena *a, const BkTensor *z, BkTensor *image_out, Dump *dump,
                    GError **error);

#endif
