/* engine/image.c — pil_img2rgb, the BAGEL resize rule, PIL's bicubic resample,
 * ToTensor/Normalize and the decoder's uint8 conversion (docs/bagel-spec.md §7, §6 step 7).
 *
 * Everything here reproduces the official Python stack bit for bit; the comments name
 * the Pillow / torch code each step mirrors.  Integer arithmetic is exact, so the loop
 * order may differ from Pillow's where that is faster; floating-point steps keep
 * Pillow's / torch's order of operations (the build uses -ffp-contract=off).
 */
#include "image.h"

#include "bagel.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------ */
/* pil_img2rgb                                                                           */

/* Pillow ImagingUtils.h: DIV255 of a sum of two 8×8-bit products. */
static inline guint8 div255(unsigned v) {
  unsigned t = v + 128;
  return (guint8)(((t >> 8) + t) >> 8);
}

/* Image.paste(rgba, mask=alpha) onto white (Paste.c paste_mask_L, BLEND). */
static inline guint8 over_white(guint8 c, guint8 a) {
  return div255(255u * (255u - a) + (unsigned)c * a);
}

guint8 *img_to_rgb(const ImgBuffer *img, GError **error) {
  if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || img->channels < 1 ||
      img->channels > 4 || img->stride < img->width * img->channels ||
      (guint64)img->width * img->height > IMG_MAX_PIXELS * 2) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "img_to_rgb: invalid image (%d×%d, %d channels)", img ? img->width : 0,
                img ? img->height : 0, img ? img->channels : 0);
    return NULL;
  }
  int w = img->width, h = img->height, n = img->channels;
  guint8 *out = g_try_malloc((gsize)w * h * 3);
  if (!out) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                "img_to_rgb: out of memory for a %d×%d image", w, h);
    return NULL;
  }
  /* PIL's convert_transparent compares the converted (v, v, v, 255) / (r, g, b, 255)
   * pixel with the key's low bytes (rgbT2a); a match becomes alpha 0, i.e. white. */
  const gboolean keyed = img->has_key && (n == 1 || n == 3);
  const guint8 k0 = img->key[0] & 0xff, k1 = img->key[1] & 0xff, k2 = img->key[2] & 0xff;
  for (int y = 0; y < h; y++) {
    const guint8 *p = img->pixels + (gsize)y * img->stride;
    guint8 *o = out + (gsize)y * w * 3;
    for (int x = 0; x < w; x++, p += n, o += 3) {
      switch (n) {
      case 1:
        o[0] = o[1] = o[2] = (keyed && p[0] == k0) ? 255 : p[0];
        break;
      case 2:   /* LA without a key: convert("RGB") drops the alpha */
        o[0] = o[1] = o[2] = p[0];
        break;
      case 3:
        if (keyed && p[0] == k0 && p[1] == k1 && p[2] == k2) {
          o[0] = o[1] = o[2] = 255;
        } else {
          o[0] = p[0], o[1] = p[1], o[2] = p[2];
        }
        break;
      default:
        o[0] = over_white(p[0], p[3]);
        o[1] = over_white(p[1], p[3]);
        o[2] = over_white(p[2], p[3]);
        break;
      }
    }
  }
  return out;
}

/* ------------------------------------------------------------------------------------ */
/* MaxLongEdgeMinShortEdgeResize                                                         */

/* Python's round(float) -> int: nearest, ties to even, on the exact binary value. */
static gint64 py_round(double v) {
  double f = floor(v);
  double d = v - f;   /* exact for the magnitudes used here */
  if (d > 0.5 || (d == 0.5 && fmod(f, 2.0) != 0.0)) f += 1.0;
  return (gint64)f;
}

/* _make_divisible: max(stride, int(round(value / stride) * stride)) */
static gint64 make_divisible(gint64 value, int stride) {
  gint64 v = py_round((double)value / (double)stride) * stride;
  return v > stride ? v : stride;
}

/* _apply_scale */
static void apply_scale(gint64 w, gint64 h, double scale, int stride, gint64 *nw, gint64 *nh) {
  *nw = make_divisible(py_round((double)w * scale), stride);
  *nh = make_divisible(py_round((double)h * scale), stride);
}

gboolean img_resize_rule(int width, int height, int max_size, int min_size, int stride,
                         int max_pixels, int *out_width, int *out_height, GError **error) {
  /* Bounds keep every intermediate product exact in 64 bits (one side times the other
   * stays below 2^53: the short side ends near min_size). */
  if (width < 1 || height < 1 || width > IMG_RESIZE_MAX_SIDE || height > IMG_RESIZE_MAX_SIDE ||
      max_size < 1 || max_size > 65536 || min_size < 1 || min_size > 65536 || stride < 1 ||
      stride > 65536 || max_pixels < 1) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "image resize rule: invalid arguments (image %d×%d, max %d, min %d, "
                "stride %d, max_pixels %d)",
                width, height, max_size, min_size, stride, max_pixels);
    return FALSE;
  }
  int long_side = MAX(width, height), short_side = MIN(width, height);
  double scale = MIN((double)max_size / (double)long_side, 1.0);
  scale = MAX(scale, (double)min_size / (double)short_side);
  gint64 nw, nh;
  apply_scale(width, height, scale, stride, &nw, &nh);

  if (nw * nh > (gint64)max_pixels) {   /* exact int vs float(max_pixels / 1) */
    scale = (double)max_pixels / (double)(nw * nh);
    apply_scale(nw, nh, scale, stride, &nw, &nh);
  }
  if (MAX(nw, nh) > max_size) {
    scale = (double)max_size / (double)MAX(nw, nh);
    apply_scale(nw, nh, scale, stride, &nw, &nh);
  }
  if (nw > IMG_RESIZE_MAX_SIDE || nh > IMG_RESIZE_MAX_SIDE) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "image resize rule: %d×%d gives %" G_GINT64_FORMAT "×%" G_GINT64_FORMAT
                ", too large", width, height, nw, nh);
    return FALSE;
  }
  *out_width = (int)nw;
  *out_height = (int)nh;
  return TRUE;
}

/* ------------------------------------------------------------------------------------ */
/* PIL's ImagingResample, BICUBIC, 8 bits per channel (libImaging/Resample.c)            */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
#define a -0.5
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
#undef a
}

typedef struct {
  int ksize;
  int *bounds;     /* per output: first input index, count */
  gint32 *kk;      /* per output: ksize fixed-point coefficients */
} Coeffs;

static void coeffs_free(Coeffs *c) {
  g_free(c->bounds);
  g_free(c->kk);
  c->bounds = NULL;
  c->kk = NULL;
}

/* precompute_coeffs + normalize_coeffs_8bpc for the box (0, in_size). */
static gboolean precompute_coeffs(int in_size, int out_size, Coeffs *c) {
  const double filter_support = 2.0;   /* BICUBIC */
  /* PIL: (double)(in1 - in0) / outSize with float box edges */
  double scale = (double)((float)in_size - 0.0f) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = filter_support * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  c->ksize = ksize;
  c->kk = g_try_new0(gint32, (gsize)out_size * ksize);
  c->bounds = g_try_new(int, (gsize)out_size * 2);
  double *k = g_try_new(double, ksize);
  if (!c->kk || !c->bounds || !k) {
    g_free(k);
    coeffs_free(c);
    return FALSE;
  }
  for (int xx = 0; xx < out_size; xx++) {
    double center = 0.0 + (xx + 0.5) * scale;
    double ww = 0.0;
    double ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; x++) {
      double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    gint32 *kx = &c->kk[(gsize)xx * ksize];
    for (int x = 0; x < xmax; x++) {
      if (ww != 0.0) k[x] /= ww;
      kx[x] = k[x] < 0 ? (gint32)(-0.5 + k[x] * (1 << PRECISION_BITS))
                       : (gint32)(0.5 + k[x] * (1 << PRECISION_BITS));
    }
    c->bounds[xx * 2 + 0] = xmin;
    c->bounds[xx * 2 + 1] = xmax;
  }
  g_free(k);
  return TRUE;
}

/* clip8: the accumulator is value << 22 plus a rounding half; negative means 0. */
static inline guint8 clip8(gint32 ss) {
  if (ss < 0) return 0;
  ss >>= PRECISION_BITS;
  return ss > 255 ? 255 : (guint8)ss;
}

/* ImagingResampleHorizontal_8bpc over `rows` rows starting at source row `row0`. */
static void resample_horizontal(const guint8 *src, int src_w, int row0, int rows, int ch,
                                guint8 *dst, int dst_w, const Coeffs *c) {
  for (int yy = 0; yy < rows; yy++) {
    const guint8 *in = src + (gsize)(yy + row0) * src_w * ch;
    guint8 *out = dst + (gsize)yy * dst_w * ch;
    for (int xx = 0; xx < dst_w; xx++) {
      int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
      const gint32 *k = &c->kk[(gsize)xx * c->ksize];
      const guint8 *p = in + (gsize)xmin * ch;
      guint8 *o = out + (gsize)xx * ch;
      if (ch == 3) {   /* the common case: all channels in one sweep, like PIL */
        gint32 s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < xmax; x++, p += 3) {
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        o[0] = clip8(s0), o[1] = clip8(s1), o[2] = clip8(s2);
        continue;
      }
      for (int b = 0; b < ch; b++) {
        gint32 ss = 1 << (PRECISION_BITS - 1);
        for (int x = 0; x < xmax; x++) ss += p[x * ch + b] * k[x];
        o[b] = clip8(ss);
      }
    }
  }
}

/* ImagingResampleVertical_8bpc; rows are accumulated whole (same integer sums). */
static void resample_vertical(const guint8 *src, int w, int ch, guint8 *dst, int dst_h,
                              const Coeffs *c, gint32 *acc) {
  gsize n = (gsize)w * ch;
  for (int yy = 0; yy < dst_h; yy++) {
    int ymin = c->bounds[yy * 2], ymax = c->bounds[yy * 2 + 1];
    const gint32 *k = &c->kk[(gsize)yy * c->ksize];
    for (gsize i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < ymax; y++) {
      const guint8 *in = src + (gsize)(y + ymin) * n;
      gint32 ky = k[y];
      for (gsize i = 0; i < n; i++) acc[i] += in[i] * ky;
    }
    guint8 *out = dst + (gsize)yy * n;
    for (gsize i = 0; i < n; i++) out[i] = clip8(acc[i]);
  }
}

gboolean img_resize_bicubic(const guint8 *src, int width, int height, int channels,
                            guint8 *dst, int dst_width, int dst_height, GError **error) {
  if (!src || !dst || channels < 1 || channels > 4 || width < 1 || height < 1 ||
      dst_width < 1 || dst_height < 1 || width > IMG_RESIZE_MAX_SIDE ||
      height > IMG_RESIZE_MAX_SIDE || dst_width > IMG_RESIZE_MAX_SIDE ||
      dst_height > IMG_RESIZE_MAX_SIDE) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "image resize: invalid arguments (%d×%d → %d×%d, %d channels; sides must be "
                "1..%d)",
                width, height, dst_width, dst_height, channels, IMG_RESIZE_MAX_SIDE);
    return FALSE;
  }
  gboolean need_h = dst_width != width, need_v = dst_height != height;
  if (!need_h && !need_v) {   /* Image.resize to the same size: a copy */
    memcpy(dst, src, (gsize)width * height * channels);
    return TRUE;
  }
  Coeffs ch = {0}, cv = {0};
  guint8 *tmp = NULL;
  gint32 *acc = NULL;
  gboolean ok = FALSE;
  if ((need_h && !precompute_coeffs(width, dst_width, &ch)) ||
      !precompute_coeffs(height, dst_height, &cv))
    goto oom;

  if (need_h && need_v) {
    /* Horizontal pass over the source rows the vertical pass uses, then vertical. */
    int first = cv.bounds[0];
    int last = cv.bounds[dst_height * 2 - 2] + cv.bounds[dst_height * 2 - 1];
    for (int i = 0; i < dst_height; i++) cv.bounds[i * 2] -= first;
    tmp = g_try_malloc((gsize)dst_width * channels * (last - first));
    acc = g_try_new(gint32, (gsize)dst_width * channels);
    if (!tmp || !acc) goto oom;
    resample_horizontal(src, width, first, last - first, channels, tmp, dst_width, &ch);
    resample_vertical(tmp, dst_width, channels, dst, dst_height, &cv, acc);
  } else if (need_h) {
    resample_horizontal(src, width, 0, height, channels, dst, dst_width, &ch);
  } else {
    acc = g_try_new(gint32, (gsize)width * channels);
    if (!acc) goto oom;
    resample_vertical(src, width, channels, dst, dst_height, &cv, acc);
  }
  ok = TRUE;
  goto done;

oom:
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
              "image resize %d×%d → %d×%d: out of memory", width, height, dst_width,
              dst_height);
done:
  coeffs_free(&ch);
  coeffs_free(&cv);
  g_free(tmp);
  g_free(acc);
  return ok;
}

gboolean img_transform_resize(const ImgTransform *t, const guint8 *rgb, int width, int height,
                              guint8 **out, int *out_width, int *out_height, GError **error) {
  int ow, oh;
  if (!img_resize_rule(width, height, t->max_size, t->min_size, t->stride, t->max_pixels, &ow,
                       &oh, error))
    return FALSE;
  guint8 *buf = g_try_malloc((gsize)ow * oh * 3);
  if (!buf) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "image resize: out of memory");
    return FALSE;
  }
  if (!img_resize_bicubic(rgb, width, height, 3, buf, ow, oh, error)) {
    g_free(buf);
    return FALSE;
  }
  *out = buf;
  *out_width = ow;
  *out_height = oh;
  return TRUE;
}

/* ------------------------------------------------------------------------------------ */
/* Tensors                                                                               */

void img_to_tensor(const guint8 *hwc, int width, int height, int channels, float *chw) {
  float lut[256];
  for (int v = 0; v < 256; v++) {
    float x = (float)v / 255.0f;   /* ToTensor: byte tensor .div(255) in fp32 */
    lut[v] = (x - 0.5f) / 0.5f;    /* Normalize: sub_(mean).div_(std) */
  }
  gsize plane = (gsize)width * height;
  for (gsize i = 0; i < plane; i++)
    for (int c = 0; c < channels; c++) chw[c * plane + i] = lut[hwc[i * channels + c]];
}

void img_from_tensor(const float *chw, int width, int height, int channels, guint8 *hwc) {
  gsize plane = (gsize)width * height;
  for (gsize i = 0; i < plane; i++) {
    for (int c = 0; c < channels; c++) {
      float v = chw[c * plane + i] * 0.5f;
      v = v + 0.5f;
      if (isnan(v)) v = 0.0f;
      v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
      v = v * 255.0f;
      hwc[i * channels + c] = (guint8)(int)v;   /* .to(torch.uint8) truncates */
    }
  }
}
