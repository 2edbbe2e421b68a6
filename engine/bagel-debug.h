/* engine/bagel-debug.h — options for parity checks against the official implementation
 * (the CLI's --dump, --noise, --vae-transform, --vit-transform).  Passed through
 * BagelCommon.debug; never needed by users. */
#ifndef BAGEL_DEBUG_H
#define BAGEL_DEBUG_H

#include "dump.h"
#include "image.h"

typedef struct {
  Dump *dump;                     /* named intermediates (golden README names); NULL: off */
  const float *init_noise;        /* replaces the initial noise draw [N, C] */
  gsize init_noise_n;
  const float *vae_eps;           /* replaces the VAE posterior noise [z, h, w] */
  gsize vae_eps_n;
  gboolean has_vae_transform, has_vit_transform;
  ImgTransform vae_transform;     /* official: 1024, 512, 16 */
  ImgTransform vit_transform;     /* official: 980, 224, 14 */
} BagelDebug;

#endif
