/* engine/image.h — image pre- and post-processing of docs/bagel-spec.md §7 and §6 step 7,
 * bit-exact with the official code (Pillow 11.1 + torchvision 0.20 + torch 2.5):
 *
 *   img_to_rgb          data/data_utils.py pil_img2rgb: RGBA, or a gray/RGB/palette image
 *                       with a tRNS key, is pasted over white with its alpha as the mask
 *                       (PIL Image.paste, "L" mask: DIV255(255·(255−a) + c·a)); LA is
 *                       converted with its alpha dropped; gray is replicated.
 *   img_resize_rule     data/transforms.py MaxLongEdgeMinShortEdgeResize (the sizes only).
 *   img_resize_bicubic  PIL Image.resize(size, BICUBIC) on L / RGB (PIL's ImagingResample:
 *                       a = −0.5 Keys kernel with support × downscale factor, coefficients
 *                       in 22-bit fixed point, horizontal pass then vertical, each to 8 bits;
 *                       a pass whose size does not change is skipped; same size = copy).
 *   img_to_tensor       ToTensor + Normalize(0.5, 0.5): fp32 (x / 255 − 0.5) / 0.5, CHW.
 *   img_from_tensor     inferencer.py decode: uint8(trunc(clamp(y·0.5 + 0.5, 0, 1)·255)), fp32.
 *
 * The transforms take their numbers as parameters: officially VAE (1024, 512, 16) and ViT
 * (980, 224, 14), max_pixels 14·14·9·1024; the golden run used (128, 64, 16), (112, 56, 14).
 */
#ifndef BAGEL_IMAGE_H
#define BAGEL_IMAGE_H

#include <glib.h>

#include "imageio.h"

G_BEGIN_DECLS

#define IMG_DEFAULT_MAX_PIXELS (14 * 14 * 9 * 1024)   /* 1 806 336, ImageTransform default */

/* Largest side the resampler accepts (inputs and outputs). */
#define IMG_RESIZE_MAX_SIDE (1 << 20)

typedef struct {
  int max_size;
  int min_size;
  int stride;
  int max_pixels;
} ImgTransform;

#define IMG_TRANSFORM_VAE ((ImgTransform){1024, 512, 16, IMG_DEFAULT_MAX_PIXELS})
#define IMG_TRANSFORM_VIT ((ImgTransform){980, 224, 14, IMG_DEFAULT_MAX_PIXELS})

/* pil_img2rgb: a new width·height·3 RGB buffer (g_free).  `img` may be any ImgBuffer
 * (a loaded file, or wrapped RGB/RGBA memory); NULL with an error on invalid input or
 * when the buffer cannot be allocated. */
guint8 *img_to_rgb(const ImgBuffer *img, GError **error);

/* MaxLongEdgeMinShortEdgeResize(max_size, min_size, stride, max_pixels) for a width×height
 * image (img_num = 1), with Python's float arithmetic and round-half-to-even:
 *   1. scale = max(min(max/long, 1), min/short); sides = make_div(round(side·scale))
 *      where make_div(v) = max(stride, round(v/stride)·stride);
 *   2. if w·h > max_pixels: scale = max_pixels/(w·h) applied to the new sides, step 1's
 *      rounding again;  3. if the long side > max: scale = max/long, again.
 * FALSE with an error for non-positive arguments. */
gboolean img_resize_rule(int width, int height, int max_size, int min_size, int stride,
                         int max_pixels, int *out_width, int *out_height, GError **error);

/* PIL's Image.resize((dw, dh), Image.BICUBIC) of an 8-bit image with `channels`
 * interleaved channels (1..4), tightly packed; dst holds dw·dh·channels bytes.  Channels
 * are resampled independently, as PIL does for modes L, RGB, La and RGBa (PIL's resize of
 * straight-alpha LA/RGBA premultiplies first; BAGEL only resizes RGB).  FALSE with an
 * error for sizes outside 1..IMG_RESIZE_MAX_SIDE or when memory runs out. */
gboolean img_resize_bicubic(const guint8 *src, int width, int height, int channels,
                            guint8 *dst, int dst_width, int dst_height, GError **error);

/* The resize half of ImageTransform: the rule, then the bicubic resample of an RGB image.
 * *out is a new out_w·out_h·3 buffer (g_free). */
gboolean img_transform_resize(const ImgTransform *t, const guint8 *rgb, int width, int height,
                              guint8 **out, int *out_width, int *out_height, GError **error);

/* ToTensor + Normalize(mean 0.5, std 0.5) of an HWC uint8 image with `channels` channels
 * into CHW fp32: out[c·h·w + i] = ((float)x / 255.0f − 0.5f) / 0.5f (fp32 at each step). */
void img_to_tensor(const guint8 *hwc, int width, int height, int channels, float *chw);

/* The decoder output y (CHW fp32, `channels` planes) to HWC uint8: with fp32 rounding at
 * each step, v = y·0.5 + 0.5, clamped to [0, 1], times 255, truncated.  NaN gives 0. */
void img_from_tensor(const float *chw, int width, int height, int channels, guint8 *hwc);

G_END_DECLS
#endif
