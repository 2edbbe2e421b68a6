/* plugin/sizes.c — the model's size rules (see sizes.h). */
#include "sizes.h"

#include <math.h>

/* Python's round(): half to even, which rint() does in the default rounding mode. */
static double py_round(double v) { return rint(v); }

static int make_divisible(double value, int stride) {
  int v = (int)py_round(value / stride) * stride;
  return v > stride ? v : stride;
}

static void apply_scale(int w, int h, double scale, int stride, int *ow, int *oh) {
  *ow = make_divisible(py_round(w * scale), stride);
  *oh = make_divisible(py_round(h * scale), stride);
}

void bagel_fit_size(int width, int height, int max_size, int min_size, int stride,
                    gint64 max_pixels, int *out_width, int *out_height) {
  int long_side = MAX(width, height), short_side = MIN(width, height);
  double scale = MIN((double)max_size / long_side, 1.0);
  scale = MAX(scale, (double)min_size / short_side);
  int w, h;
  apply_scale(width, height, scale, stride, &w, &h);
  if (max_pixels > 0 && (gint64)w * h > max_pixels) {
    /* the official code scales by the pixel ratio itself, not its square root */
    scale = (double)max_pixels / ((double)w * h);
    apply_scale(w, h, scale, stride, &w, &h);
  }
  if (MAX(w, h) > max_size) {
    scale = (double)max_size / MAX(w, h);
    apply_scale(w, h, scale, stride, &w, &h);
  }
  *out_width = w;
  *out_height = h;
}

void bagel_model_size(int width, int height, int *out_width, int *out_height) {
  bagel_fit_size(width, height, BAGEL_VAE_MAX_SIZE, BAGEL_VAE_MIN_SIZE, BAGEL_VAE_STRIDE,
                 BAGEL_VAE_MAX_PIXELS, out_width, out_height);
}

void bagel_generate_size(int width, int height, int *out_width, int *out_height) {
  double scale = (double)BAGEL_VAE_MAX_SIZE / MAX(width, height);
  apply_scale(width, height, scale, BAGEL_VAE_STRIDE, out_width, out_height);
  *out_width = MIN(*out_width, BAGEL_VAE_MAX_SIZE);
  *out_height = MIN(*out_height, BAGEL_VAE_MAX_SIZE);
}
