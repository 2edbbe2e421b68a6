/* tests/image/test_image_resize.c — the BAGEL resize rule and PIL's bicubic resample
 * against Pillow (reference data of tools/gen_image_ref.py in tests/data/image), plus
 * the fp32 tensor conversions in closed form.  argv[1]: tests/data/image. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bagel.h"
#include "image.h"
#include "image_test_util.h"

static void test_rule_reference(void) {
  char **lines = itu_lines("rule.txt");
  int n = 0;
  for (char **l = lines; *l; l++, n++) {
    int w, h, mx, mn, st, mp, ew, eh, ow = -1, oh = -1;
    g_assert_cmpint(sscanf(*l, "%d %d %d %d %d %d %d %d", &w, &h, &mx, &mn, &st, &mp, &ew, &eh),
                    ==, 8);
    GError *err = NULL;
    g_assert_true(img_resize_rule(w, h, mx, mn, st, mp, &ow, &oh, &err));
    g_assert_no_error(err);
    if (ow != ew || oh != eh)
      g_error("rule %dx%d (%d,%d,%d,%d): got %dx%d, Python gives %dx%d", w, h, mx, mn, st, mp,
              ow, oh, ew, eh);
  }
  g_assert_cmpint(n, >, 1000);
  g_test_message("resize rule: %d cases equal to the Python arithmetic", n);
  g_strfreev(lines);
}

static void test_rule_examples(void) {
  /* docs/bagel-spec.md §7 */
  static const int ex[][4] = {{16, 120, 128, 1024},  {1024, 1024, 1024, 1024},
                              {1920, 1080, 1024, 576}, {640, 480, 688, 512},
                              {300, 300, 512, 512}};
  for (unsigned i = 0; i < G_N_ELEMENTS(ex); i++) {
    int w, h;
    g_assert_true(img_resize_rule(ex[i][0], ex[i][1], 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS,
                                  &w, &h, NULL));
    g_assert_cmpint(w, ==, ex[i][2]);
    g_assert_cmpint(h, ==, ex[i][3]);
  }
  /* ViT on the VAE results */
  static const int vit[][4] = {{1024, 1024, 980, 980}, {1024, 576, 980, 546},
                               {688, 512, 686, 518},   {512, 512, 518, 518}};
  for (unsigned i = 0; i < G_N_ELEMENTS(vit); i++) {
    int w, h;
    g_assert_true(img_resize_rule(vit[i][0], vit[i][1], 980, 224, 14, IMG_DEFAULT_MAX_PIXELS,
                                  &w, &h, NULL));
    g_assert_cmpint(w, ==, vit[i][2]);
    g_assert_cmpint(h, ==, vit[i][3]);
  }
  /* the golden run: 100×75 → 96×80 → 98×84 */
  int w, h;
  g_assert_true(img_resize_rule(100, 75, 128, 64, 16, IMG_DEFAULT_MAX_PIXELS, &w, &h, NULL));
  g_assert_cmpint(w, ==, 96);
  g_assert_cmpint(h, ==, 80);
  g_assert_true(img_resize_rule(96, 80, 112, 56, 14, IMG_DEFAULT_MAX_PIXELS, &w, &h, NULL));
  g_assert_cmpint(w, ==, 98);
  g_assert_cmpint(h, ==, 84);
}

/* Editing resizes twice with the VAE rule (spec §13): the second pass must be a no-op. */
static void test_rule_idempotent(void) {
  long checked = 0;
  for (int w = 1; w <= 4200; w += (w < 1100 ? 1 : 13))
    for (int h = 1; h <= 4200; h += (h < 300 ? 3 : 37)) {
      int a, b, c, d;
      g_assert_true(img_resize_rule(w, h, 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS, &a, &b, NULL));
      g_assert_true(img_resize_rule(a, b, 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS, &c, &d, NULL));
      if (a != c || b != d) g_error("VAE rule not idempotent: %dx%d -> %dx%d -> %dx%d", w, h, a, b, c, d);
      checked++;
    }
  g_test_message("VAE rule idempotent on %ld sizes", checked);
}

static void test_rule_invalid(void) {
  int w = 7, h = 7;
  GError *err = NULL;
  g_assert_false(img_resize_rule(0, 10, 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS, &w, &h, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_false(img_resize_rule(10, 10, 1024, 512, 0, IMG_DEFAULT_MAX_PIXELS, &w, &h, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_cmpint(w, ==, 7);
  /* extreme but valid: 20000×1 and 1×IMG_RESIZE_MAX_SIDE */
  g_assert_true(img_resize_rule(20000, 1, 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS, &w, &h, NULL));
  g_assert_cmpint(w, ==, 1024);
  g_assert_cmpint(h, ==, 16);
  g_assert_true(img_resize_rule(1, IMG_RESIZE_MAX_SIDE, 1024, 512, 16, IMG_DEFAULT_MAX_PIXELS,
                                &w, &h, NULL));
  g_assert_cmpint(MAX(w, h), <=, 1024);
}

static void test_resize_reference(void) {
  char **lines = itu_lines("resize.txt");
  gsize blob_len = 0;
  guint8 *blob = itu_read("resize.bin", &blob_len);
  int n = 0, n_raw = 0, worst = 0;
  double sum_mean = 0;
  gsize total = 0;
  for (char **l = lines; *l; l++, n++) {
    guint seed;
    int w, h, c, dw, dh;
    char kind[16], ref[80];
    g_assert_cmpint(sscanf(*l, "%u %d %d %d %d %d %15s %79s", &seed, &w, &h, &c, &dw, &dh, kind,
                           ref), ==, 8);
    guint8 *src = itu_pattern(seed, w, h, c);
    gsize len = (gsize)dw * dh * c;
    guint8 *dst = g_malloc(len);
    GError *err = NULL;
    g_assert_true(img_resize_bicubic(src, w, h, c, dst, dw, dh, &err));
    g_assert_no_error(err);
    if (strcmp(kind, "raw") == 0) {
      gsize off = g_ascii_strtoull(ref, NULL, 10);
      g_assert_cmpuint(off + len, <=, blob_len);
      ItuDiff d = itu_diff_u8(dst, blob + off, len);
      if (d.max_abs)
        g_test_message("resize %dx%dx%d -> %dx%d: %" G_GSIZE_FORMAT " bytes differ, max %d", w,
                       h, c, dw, dh, d.n_diff, d.max_abs);
      worst = MAX(worst, d.max_abs);
      sum_mean += d.mean_abs * len;
      total += len;
      n_raw++;
    } else {
      char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, dst, len);
      if (strcmp(hex, ref) != 0) {
        g_test_message("resize %dx%dx%d -> %dx%d: sha256 differs from PIL's", w, h, c, dw, dh);
        worst = MAX(worst, 256);   /* unknown size: counts as a failure */
      }
      g_free(hex);
    }
    g_free(src);
    g_free(dst);
  }
  g_test_message("resize vs PIL: %d cases (%d compared byte by byte, %" G_GSIZE_FORMAT
                 " bytes): max |diff| %d, mean %.6f", n, n_raw, total, worst,
                 total ? sum_mean / total : 0.0);
  printf("# resize vs PIL 9.4: %d cases, max |diff| %d, mean %.6f\n", n, worst,
         total ? sum_mean / total : 0.0);
  g_assert_cmpint(worst, ==, 0);   /* bit-exact */
  g_free(blob);
  g_strfreev(lines);
}

/* Channels are resampled independently: an RGB resize equals three gray ones. */
static void test_resize_channels_independent(void) {
  const int w = 41, h = 29, dw = 17, dh = 64;
  guint8 *src = itu_pattern(7, w, h, 3);
  guint8 *rgb = g_malloc(dw * dh * 3), *plane = g_malloc(w * h), *out = g_malloc(dw * dh);
  g_assert_true(img_resize_bicubic(src, w, h, 3, rgb, dw, dh, NULL));
  for (int c = 0; c < 3; c++) {
    for (int i = 0; i < w * h; i++) plane[i] = src[i * 3 + c];
    g_assert_true(img_resize_bicubic(plane, w, h, 1, out, dw, dh, NULL));
    for (int i = 0; i < dw * dh; i++) g_assert_cmpint(out[i], ==, rgb[i * 3 + c]);
  }
  g_free(src);
  g_free(rgb);
  g_free(plane);
  g_free(out);
}

static void test_resize_trivial(void) {
  /* same size: a copy */
  guint8 *src = itu_pattern(3, 13, 7, 4), *dst = g_malloc(13 * 7 * 4);
  g_assert_true(img_resize_bicubic(src, 13, 7, 4, dst, 13, 7, NULL));
  g_assert_cmpmem(src, 13 * 7 * 4, dst, 13 * 7 * 4);
  g_free(dst);
  /* a constant image stays constant at any size (coefficients sum to 1 in fixed point) */
  guint8 flat[5 * 3 * 3];
  memset(flat, 200, sizeof flat);
  guint8 big[33 * 2 * 3];
  g_assert_true(img_resize_bicubic(flat, 5, 3, 3, big, 33, 2, NULL));
  for (unsigned i = 0; i < sizeof big; i++) g_assert_cmpint(big[i], ==, 200);
  /* 1×1 to anything and back */
  guint8 one[3] = {1, 128, 254}, many[40 * 30 * 3], back[3];
  g_assert_true(img_resize_bicubic(one, 1, 1, 3, many, 40, 30, NULL));
  for (int i = 0; i < 40 * 30; i++) g_assert_cmpmem(many + 3 * i, 3, one, 3);
  g_assert_true(img_resize_bicubic(many, 40, 30, 3, back, 1, 1, NULL));
  g_assert_cmpmem(back, 3, one, 3);
  g_free(src);
}

static void test_resize_invalid(void) {
  guint8 px[16] = {0}, out[16];
  GError *err = NULL;
  g_assert_false(img_resize_bicubic(px, 0, 4, 1, out, 2, 2, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_false(img_resize_bicubic(px, 4, 4, 5, out, 2, 2, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_false(img_resize_bicubic(px, 4, 4, 1, out, IMG_RESIZE_MAX_SIDE + 1, 1, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
}

/* A strong downscale of a tall image: 1×16384 → 1×1 averages everything. */
static void test_resize_extreme(void) {
  const int h = 16384;
  guint8 *col = g_malloc(h);
  for (int i = 0; i < h; i++) col[i] = (i & 1) ? 255 : 0;
  guint8 one;
  g_assert_true(img_resize_bicubic(col, 1, h, 1, &one, 1, 1, NULL));
  g_assert_cmpint(abs((int)one - 128), <=, 1);
  g_free(col);
}

static void test_to_tensor(void) {
  guint8 px[256 * 3];
  for (int i = 0; i < 256; i++) px[i * 3] = px[i * 3 + 1] = px[i * 3 + 2] = (guint8)i;
  float t[256 * 3];
  img_to_tensor(px, 256, 1, 3, t);
  g_assert_cmpfloat(t[0], ==, -1.0f);
  g_assert_cmpfloat(t[255], ==, 1.0f);
  for (int i = 0; i < 256; i++) {
    volatile float x = (float)i / 255.0f;   /* fp32 division, then fp32 normalise */
    volatile float v = (x - 0.5f) / 0.5f;
    g_assert_cmpfloat(t[i], ==, v);
    g_assert_cmpfloat(t[256 + i], ==, v);   /* CHW: plane 1 */
    g_assert_cmpfloat(t[512 + i], ==, v);
  }
}

static void test_from_tensor(void) {
  const float y[] = {-1.0f, 1.0f, 0.0f, -3.0f, 2.0f, NAN, INFINITY, -INFINITY,
                     0.99215686f, -0.99215686f, 1e-8f, -1e-8f};
  const guint8 want[] = {0, 255, 127, 0, 255, 0, 255, 0, 254, 0, 127, 127};
  guint8 out[G_N_ELEMENTS(y)];
  img_from_tensor(y, G_N_ELEMENTS(y), 1, 1, out);
  for (unsigned i = 0; i < G_N_ELEMENTS(y); i++) g_assert_cmpint(out[i], ==, want[i]);
  /* CHW → HWC */
  const float chw[6] = {-1, 1, 0, 0, 1, -1};   /* 2 pixels, 3 planes */
  guint8 hwc[6];
  img_from_tensor(chw, 2, 1, 3, hwc);
  const guint8 hwc_want[6] = {0, 127, 255, 255, 127, 0};
  g_assert_cmpmem(hwc, 6, hwc_want, 6);
  /* Truncation means a round trip x → tensor → uint8 may lose one level: count them. */
  guint8 px[256], back[256];
  float t[256];
  for (int i = 0; i < 256; i++) px[i] = (guint8)i;
  img_to_tensor(px, 256, 1, 1, t);
  img_from_tensor(t, 256, 1, 1, back);
  int lost = 0;
  for (int i = 0; i < 256; i++) {
    g_assert_cmpint(back[i], <=, px[i]);
    g_assert_cmpint(back[i], >=, px[i] - 1);
    lost += back[i] != px[i];
  }
  g_test_message("uint8 → tensor → uint8: %d of 256 levels come back one lower (truncation)",
                 lost);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  itu_set_data_dir(argc > 1 ? argv[1] : "tests/data/image");
  g_test_add_func("/image/rule/reference", test_rule_reference);
  g_test_add_func("/image/rule/examples", test_rule_examples);
  g_test_add_func("/image/rule/idempotent", test_rule_idempotent);
  g_test_add_func("/image/rule/invalid", test_rule_invalid);
  g_test_add_func("/image/resize/reference", test_resize_reference);
  g_test_add_func("/image/resize/channels", test_resize_channels_independent);
  g_test_add_func("/image/resize/trivial", test_resize_trivial);
  g_test_add_func("/image/resize/invalid", test_resize_invalid);
  g_test_add_func("/image/resize/extreme", test_resize_extreme);
  g_test_add_func("/image/tensor/to", test_to_tensor);
  g_test_add_func("/image/tensor/from", test_from_tensor);
  return g_test_run();
}
