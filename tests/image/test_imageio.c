/* tests/image/test_imageio.c — PNG/JPEG decoding and pil_img2rgb against Pillow (every
 * PNG colour type and bit depth with and without tRNS, JPEG gray / YCbCr / CMYK /
 * progressive; tests/data/image/decode.txt from tools/gen_image_ref.py), bad input
 * (missing, empty, garbage, truncated, zero-size, huge headers), and writing (round trip,
 * unwritable path, full disk).  argv[1]: tests/data/image. */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bagel.h"
#include "image.h"
#include "imageio.h"
#include "image_test_util.h"

/* ---- helpers ------------------------------------------------------------------------ */

static guint32 crc32_of(const guint8 *p, gsize n, guint32 crc) {
  crc = ~crc;
  for (gsize i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

static void put_be32(guint8 *p, guint32 v) {
  p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* A PNG signature + IHDR (+ optionally a tiny IDAT and IEND) claiming w×h. */
static GByteArray *png_header_only(guint32 w, guint32 h, int bit_depth, int color_type) {
  static const guint8 sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, sig, 8);
  guint8 ihdr[4 + 4 + 13 + 4];
  put_be32(ihdr, 13);
  memcpy(ihdr + 4, "IHDR", 4);
  put_be32(ihdr + 8, w);
  put_be32(ihdr + 12, h);
  ihdr[16] = (guint8)bit_depth;
  ihdr[17] = (guint8)color_type;
  ihdr[18] = ihdr[19] = ihdr[20] = 0;
  put_be32(ihdr + 21, crc32_of(ihdr + 4, 17, 0));
  g_byte_array_append(b, ihdr, sizeof ihdr);
  /* IDAT with an empty zlib stream, then IEND */
  static const guint8 idat_data[] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
  guint8 idat[4 + 4 + sizeof idat_data + 4];
  put_be32(idat, sizeof idat_data);
  memcpy(idat + 4, "IDAT", 4);
  memcpy(idat + 8, idat_data, sizeof idat_data);
  put_be32(idat + 8 + sizeof idat_data, crc32_of(idat + 4, 4 + sizeof idat_data, 0));
  g_byte_array_append(b, idat, sizeof idat);
  static const guint8 iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  g_byte_array_append(b, iend, sizeof iend);
  return b;
}

static char *tmp_dir;

static char *tmp_path(const char *name) {
  return g_build_filename(tmp_dir, name, NULL);
}

static char *write_tmp(const char *name, const guint8 *data, gsize len) {
  char *path = tmp_path(name);
  GError *err = NULL;
  g_file_set_contents(path, (const char *)data, (gssize)len, &err);
  g_assert_no_error(err);
  return path;
}

/* The load must fail with `code` and a message naming `name`. */
static void expect_load_error(const char *path, const char *name, int code, const char *needle) {
  ImgBuffer img;
  GError *err = NULL;
  g_assert_false(img_load_file(path, &img, &err));
  g_assert_nonnull(err);
  g_test_message("%s: %s", name, err->message);
  g_assert_true(err->domain == BAGEL_ERROR);
  g_assert_cmpint(err->code, ==, code);
  g_assert_nonnull(strstr(err->message, name));
  if (needle) g_assert_nonnull(strstr(err->message, needle));
  g_assert_null(img.pixels);
  g_error_free(err);
}

/* ---- decoding vs Pillow ------------------------------------------------------------- */

static void test_decode_reference(void) {
  char **lines = itu_lines("decode.txt");
  int n_ok = 0, n_err = 0, worst_png = 0, worst_jpeg = 0;
  for (char **l = lines; *l; l++) {
    char **f = g_strsplit_set(*l, " ", -1);
    char *path = itu_path(f[0]);
    ImgBuffer img;
    GError *err = NULL;
    gboolean ok = img_load_file(path, &img, &err);
    if (strcmp(f[1], "error") == 0) {
      if (ok) g_error("%s: PIL refuses this file, we decoded it", f[0]);
      g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_FORMAT);
      g_assert_nonnull(strstr(err->message, path));
      g_test_message("%s refused: %s", f[0], err->message);
      g_clear_error(&err);
      n_err++;
    } else {
      if (!ok) g_error("%s: %s", f[0], err->message);
      g_assert_cmpstr(img.pil_mode, ==, f[1]);
      g_assert_cmpint(img.width, ==, atoi(f[2]));
      g_assert_cmpint(img.height, ==, atoi(f[3]));
      guint8 *rgb = img_to_rgb(&img, &err);
      g_assert_no_error(err);
      char *rgb_rel = g_strconcat(f[0], NULL);
      strcpy(strrchr(rgb_rel, '.'), ".rgb");   /* .png / .jpg → .rgb, never longer */
      gsize len = 0;
      guint8 *want = itu_read(rgb_rel, &len);
      g_assert_cmpuint(len, ==, (gsize)img.width * img.height * 3);
      ItuDiff d = itu_diff_u8(rgb, want, len);
      if (d.max_abs)
        g_test_message("%s: %" G_GSIZE_FORMAT " bytes differ from PIL, max %d", f[0], d.n_diff,
                       d.max_abs);
      if (img.format == IMG_FORMAT_PNG) worst_png = MAX(worst_png, d.max_abs);
      else worst_jpeg = MAX(worst_jpeg, d.max_abs);
      /* the same bytes from memory decode the same */
      gsize flen;
      guint8 *file = itu_read(f[0], &flen);
      ImgBuffer mem;
      g_assert_true(img_load_memory(file, flen, f[0], &mem, NULL));
      g_assert_cmpint(mem.stride * mem.height, ==, img.stride * img.height);
      g_assert_cmpmem(mem.pixels, mem.stride * mem.height, img.pixels, img.stride * img.height);
      img_buffer_clear(&mem);
      g_free(file);
      g_free(want);
      g_free(rgb_rel);
      g_free(rgb);
      img_buffer_clear(&img);
      n_ok++;
    }
    g_free(path);
    g_strfreev(f);
  }
  printf("# decode + pil_img2rgb vs PIL 9.4: %d images (PNG max |diff| %d, JPEG max |diff| %d), "
         "%d damaged files refused like PIL\n", n_ok, worst_png, worst_jpeg, n_err);
  g_assert_cmpint(worst_png, ==, 0);
  g_assert_cmpint(worst_jpeg, ==, 0);   /* same libjpeg-turbo on both sides */
  g_assert_cmpint(n_ok, >=, 50);
  g_strfreev(lines);
}

/* ---- pil_img2rgb rules on wrapped memory --------------------------------------------- */

static void test_to_rgb_rules(void) {
  /* RGBA over white: PIL paste with an "L" mask, DIV255(255·(255−a) + c·a) */
  const guint8 rgba[4 * 4] = {0, 0, 0, 0, 0, 0, 0, 255, 10, 100, 200, 128, 255, 0, 0, 1};
  ImgBuffer img = img_buffer_wrap(rgba, 4, 1, 4, 0);
  g_assert_cmpint(img.stride, ==, 16);
  g_assert_cmpstr(img.pil_mode, ==, "RGBA");
  guint8 *rgb = img_to_rgb(&img, NULL);
  const guint8 want[12] = {255, 255, 255, 0, 0, 0, 132, 177, 227, 255, 254, 254};
  g_assert_cmpmem(rgb, 12, want, 12);
  g_free(rgb);
  /* gray+alpha without a key: alpha dropped (not composited), even when fully clear */
  const guint8 la[4] = {40, 0, 200, 0};
  ImgBuffer g2 = {.width = 2, .height = 1, .channels = 2, .stride = 4, .pixels = (guint8 *)la};
  rgb = img_to_rgb(&g2, NULL);
  const guint8 want2[6] = {40, 40, 40, 200, 200, 200};
  g_assert_cmpmem(rgb, 6, want2, 6);
  g_free(rgb);
  /* RGB with a 16-bit key: PIL compares the key's low bytes */
  const guint8 px[6] = {1, 2, 3, 4, 5, 6};
  ImgBuffer k = {.width = 2, .height = 1, .channels = 3, .stride = 6, .pixels = (guint8 *)px,
                 .has_key = TRUE, .key = {0x0104, 0x0205, 0x0306}};
  rgb = img_to_rgb(&k, NULL);
  const guint8 want3[6] = {1, 2, 3, 255, 255, 255};
  g_assert_cmpmem(rgb, 6, want3, 6);
  g_free(rgb);
  /* stride larger than the row */
  const guint8 padded[2 * 5] = {9, 8, 7, 0xEE, 0xEE, 6, 5, 4, 0xEE, 0xEE};
  ImgBuffer p = {.width = 1, .height = 2, .channels = 3, .stride = 5, .pixels = (guint8 *)padded};
  rgb = img_to_rgb(&p, NULL);
  const guint8 want4[6] = {9, 8, 7, 6, 5, 4};
  g_assert_cmpmem(rgb, 6, want4, 6);
  g_free(rgb);
  /* invalid */
  GError *err = NULL;
  ImgBuffer bad = {.width = 2, .height = 1, .channels = 5, .stride = 10, .pixels = (guint8 *)px};
  g_assert_null(img_to_rgb(&bad, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
}

/* Every value of the RGBA composite against the formula, written out independently. */
static void test_to_rgb_composite_table(void) {
  guint8 *rgba = g_malloc(256 * 256 * 4);
  for (int a = 0; a < 256; a++)
    for (int c = 0; c < 256; c++) {
      guint8 *p = rgba + (a * 256 + c) * 4;
      p[0] = p[1] = p[2] = (guint8)c;
      p[3] = (guint8)a;
    }
  ImgBuffer img = {.width = 256, .height = 256, .channels = 4, .stride = 1024, .pixels = rgba};
  guint8 *rgb = img_to_rgb(&img, NULL);
  for (int a = 0; a < 256; a++)
    for (int c = 0; c < 256; c++) {
      unsigned v = 255u * (255 - a) + (unsigned)c * a + 128;
      unsigned want = ((v >> 8) + v) >> 8;
      g_assert_cmpuint(rgb[(a * 256 + c) * 3], ==, want);
    }
  g_free(rgb);
  g_free(rgba);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void test_missing_and_garbage(void) {
  expect_load_error("/nonexistent/dir/pic.png", "/nonexistent/dir/pic.png", BAGEL_ERROR_IO, NULL);
  expect_load_error(tmp_dir, tmp_dir, BAGEL_ERROR_IO, "directory");
  char *empty = write_tmp("empty.png", (const guint8 *)"", 0);
  expect_load_error(empty, "empty.png", BAGEL_ERROR_FORMAT, "empty");
  const guint8 junk[] = "GIF89a this is not a png at all, nor a jpeg";
  char *garbage = write_tmp("garbage.png", junk, sizeof junk);
  expect_load_error(garbage, "garbage.png", BAGEL_ERROR_FORMAT, "not a PNG or JPEG");
  const guint8 sig_only[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};
  char *sig = write_tmp("sig_only.png", sig_only, sizeof sig_only);
  expect_load_error(sig, "sig_only.png", BAGEL_ERROR_FORMAT, NULL);
  const guint8 jpeg_sig[] = {0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F'};
  char *js = write_tmp("sig_only.jpg", jpeg_sig, sizeof jpeg_sig);
  expect_load_error(js, "sig_only.jpg", BAGEL_ERROR_FORMAT, NULL);
  ImgBuffer img;
  GError *err = NULL;
  g_assert_false(img_load_memory(NULL, 0, "nothing", &img, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_FORMAT);
  g_clear_error(&err);
  g_free(empty);
  g_free(garbage);
  g_free(sig);
  g_free(js);
}

static void test_huge_and_zero_png(void) {
  /* 100000×100000 RGB: refused from the header, before any allocation (30 GB) */
  GByteArray *b = png_header_only(100000, 100000, 8, 2);
  char *path = write_tmp("huge.png", b->data, b->len);
  expect_load_error(path, "huge.png", BAGEL_ERROR_FORMAT, "100000×100000");
  g_free(path);
  g_byte_array_unref(b);
  /* 20000×20000 and 16385×1: over the per-side limit */
  b = png_header_only(20000, 20000, 8, 6);
  path = write_tmp("big20k.png", b->data, b->len);
  expect_load_error(path, "big20k.png", BAGEL_ERROR_FORMAT, "too large");
  g_free(path);
  g_byte_array_unref(b);
  b = png_header_only(IMG_MAX_SIDE + 1, 1, 8, 0);
  path = write_tmp("wide.png", b->data, b->len);
  expect_load_error(path, "wide.png", BAGEL_ERROR_FORMAT, "too large");
  g_free(path);
  g_byte_array_unref(b);
  /* 16384×16384 is within the side limit but over the pixel cap */
  b = png_header_only(IMG_MAX_SIDE, IMG_MAX_SIDE, 8, 2);
  path = write_tmp("square16k.png", b->data, b->len);
  expect_load_error(path, "square16k.png", BAGEL_ERROR_FORMAT, "too large");
  g_free(path);
  g_byte_array_unref(b);
  /* exactly the side limit is fine: a real 16384×2 image round-trips */
  {
    guint8 *row = g_malloc(IMG_MAX_SIDE * 2);
    for (int i = 0; i < IMG_MAX_SIDE * 2; i++) row[i] = (guint8)(i * 7);
    path = tmp_path("edge16k.png");
    g_assert_true(img_save_png(path, row, IMG_MAX_SIDE, 2, 1, 0, NULL));
    ImgBuffer edge;
    GError *e = NULL;
    g_assert_true(img_load_file(path, &edge, &e));
    g_assert_no_error(e);
    g_assert_cmpint(edge.width, ==, IMG_MAX_SIDE);
    g_assert_cmpmem(edge.pixels, IMG_MAX_SIDE * 2, row, IMG_MAX_SIDE * 2);
    int vw, vh;
    g_assert_true(img_resize_rule(edge.width, edge.height, 1024, 512, 16,
                                  IMG_DEFAULT_MAX_PIXELS, &vw, &vh, NULL));
    g_assert_cmpint(vw, ==, 1024);
    g_assert_cmpint(vh, ==, 16);
    img_buffer_clear(&edge);
    g_free(row);
    g_free(path);
  }
  /* 0×0 */
  b = png_header_only(0, 0, 8, 2);
  path = write_tmp("zero.png", b->data, b->len);
  expect_load_error(path, "zero.png", BAGEL_ERROR_FORMAT, NULL);
  g_free(path);
  g_byte_array_unref(b);
  /* a header that is fine but whose image data is missing: truncated */
  b = png_header_only(64, 64, 8, 2);
  path = write_tmp("nodata.png", b->data, b->len);
  expect_load_error(path, "nodata.png", BAGEL_ERROR_FORMAT, NULL);
  g_free(path);
  g_byte_array_unref(b);
  /* caller-chosen limits */
  b = png_header_only(300, 300, 8, 2);
  ImgLoadLimits lim = {.max_side = 0, .max_pixels = 1000};
  ImgBuffer img;
  GError *err = NULL;
  g_assert_false(img_load_memory_limited(b->data, b->len, "limited", &lim, &img, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_FORMAT);
  g_assert_nonnull(strstr(err->message, "300×300"));
  g_clear_error(&err);
  g_byte_array_unref(b);
}

/* Patch the SOF0 size of a small JPEG. */
static guint8 *jpeg_with_size(guint16 w, guint16 h, gsize *len) {
  guint8 *data = itu_read("jpeg/rgb_1x1.jpg", len);
  for (gsize i = 2; i + 9 < *len; i++) {
    if (data[i] == 0xff && data[i + 1] == 0xc0) {
      data[i + 5] = h >> 8, data[i + 6] = h & 0xff;
      data[i + 7] = w >> 8, data[i + 8] = w & 0xff;
      return data;
    }
  }
  g_assert_not_reached();
  return NULL;
}

static void test_huge_and_zero_jpeg(void) {
  gsize len;
  guint8 *d = jpeg_with_size(60000, 60000, &len);
  char *path = write_tmp("huge.jpg", d, len);
  expect_load_error(path, "huge.jpg", BAGEL_ERROR_FORMAT, "60000×60000");
  g_free(path);
  g_free(d);
  d = jpeg_with_size(20000, 20000, &len);
  path = write_tmp("big20k.jpg", d, len);
  expect_load_error(path, "big20k.jpg", BAGEL_ERROR_FORMAT, "too large");
  g_free(path);
  g_free(d);
  d = jpeg_with_size(0, 5, &len);
  path = write_tmp("zero.jpg", d, len);
  expect_load_error(path, "zero.jpg", BAGEL_ERROR_FORMAT, NULL);
  g_free(path);
  g_free(d);
  /* a 1×1 JPEG claiming 4000×3000 decodes (libjpeg meets EOI inside the scan, warns and
   * pads; PIL does the same, see claims_64x48.jpg in decode.txt) */
  d = jpeg_with_size(4000, 3000, &len);
  ImgBuffer img;
  g_assert_true(img_load_memory(d, len, "claims_big.jpg", &img, NULL));
  g_assert_cmpint(img.width, ==, 4000);
  g_assert_cmpint(img.height, ==, 3000);
  img_buffer_clear(&img);
  g_free(d);
}

/* A progressive JPEG whose last scan is repeated `extra` times before EOI. */
static guint8 *jpeg_with_repeated_scan(int extra, gsize *out_len) {
  gsize len;
  guint8 *d = itu_read("jpeg/rgb420_progressive.jpg", &len);
  gsize last_sos = 0, eoi = 0;
  for (gsize i = 2; i + 1 < len; i++) {
    if (d[i] != 0xff) continue;
    if (d[i + 1] == 0xda) last_sos = i;
    if (d[i + 1] == 0xd9) eoi = i;
  }
  g_assert_cmpuint(last_sos, >, 0);
  g_assert_cmpuint(eoi, >, last_sos);
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, d, (guint)eoi);
  for (int k = 0; k < extra; k++) g_byte_array_append(b, d + last_sos, (guint)(eoi - last_sos));
  g_byte_array_append(b, d + eoi, 2);
  g_free(d);
  *out_len = b->len;
  return g_byte_array_free(b, FALSE);
}

static void test_jpeg_scan_limit(void) {
  gsize len;
  guint8 *d = jpeg_with_repeated_scan(20, &len);
  ImgBuffer img;
  GError *err = NULL;
  g_assert_true(img_load_memory(d, len, "scans20.jpg", &img, &err));   /* only warnings */
  g_assert_no_error(err);
  img_buffer_clear(&img);
  g_free(d);
  d = jpeg_with_repeated_scan(1000, &len);
  g_assert_false(img_load_memory(d, len, "scans1000.jpg", &img, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_FORMAT);
  g_assert_nonnull(strstr(err->message, "scans"));
  g_test_message("%s", err->message);
  g_clear_error(&err);
  g_free(d);
}

/* Gray+alpha ("alpha only") images load and keep the official LA rule. */
static void test_alpha_only(void) {
  char *path = itu_path("png/ga8.png");
  ImgBuffer img;
  g_assert_true(img_load_file(path, &img, NULL));
  g_assert_cmpint(img.channels, ==, 2);
  g_assert_cmpstr(img.pil_mode, ==, "LA");
  guint8 *rgb = img_to_rgb(&img, NULL);
  for (int i = 0; i < img.width * img.height; i++) {
    g_assert_cmpint(rgb[3 * i], ==, img.pixels[2 * i]);
    g_assert_cmpint(rgb[3 * i + 2], ==, img.pixels[2 * i]);
  }
  g_free(rgb);
  img_buffer_clear(&img);
  g_free(path);
  /* a fully transparent LA image written by us: still its gray values */
  guint8 la[2 * 6];
  for (int i = 0; i < 6; i++) la[2 * i] = (guint8)(i * 40), la[2 * i + 1] = 0;
  char *out = tmp_path("clear_la.png");
  g_assert_true(img_save_png(out, la, 3, 2, 2, 0, NULL));
  g_assert_true(img_load_file(out, &img, NULL));
  g_assert_cmpint(img.channels, ==, 2);
  rgb = img_to_rgb(&img, NULL);
  for (int i = 0; i < 6; i++) g_assert_cmpint(rgb[3 * i + 1], ==, i * 40);
  g_free(rgb);
  img_buffer_clear(&img);
  g_free(out);
}

/* ---- writing -------------------------------------------------------------------------- */

static void test_png_round_trip(void) {
  for (int c = 1; c <= 4; c++) {
    const int w = 23, h = 9;
    guint8 *px = itu_pattern(40 + c, w, h, c);
    char name[32];
    g_snprintf(name, sizeof name, "rt%d.png", c);
    char *path = tmp_path(name);
    GError *err = NULL;
    g_assert_true(img_save_png(path, px, w, h, c, 0, &err));
    g_assert_no_error(err);
    ImgBuffer img;
    g_assert_true(img_load_file(path, &img, &err));
    g_assert_no_error(err);
    g_assert_cmpint(img.channels, ==, c);
    g_assert_cmpint(img.width, ==, w);
    g_assert_cmpmem(img.pixels, w * h * c, px, w * h * c);
    img_buffer_clear(&img);
    /* with a row stride: the padding is not written */
    guint8 *padded = g_malloc0((w * c + 5) * h);
    for (int y = 0; y < h; y++) memcpy(padded + y * (w * c + 5), px + y * w * c, w * c);
    g_assert_true(img_save_file(path, padded, w, h, c, w * c + 5, &err));
    g_assert_true(img_load_file(path, &img, NULL));
    g_assert_cmpmem(img.pixels, w * h * c, px, w * h * c);
    img_buffer_clear(&img);
    g_free(padded);
    g_free(path);
    g_free(px);
  }
}

static void test_jpeg_round_trip(void) {
  const int w = 64, h = 48;
  guint8 *px = g_malloc(w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      guint8 *p = px + (y * w + x) * 3;
      p[0] = (guint8)(x * 4), p[1] = (guint8)(y * 5), p[2] = (guint8)((x + y) * 2);
    }
  char *path = tmp_path("rt.jpeg");
  GError *err = NULL;
  g_assert_true(img_save_file(path, px, w, h, 3, 0, &err));
  g_assert_no_error(err);
  ImgBuffer img;
  g_assert_true(img_load_file(path, &img, &err));
  g_assert_cmpint(img.format, ==, IMG_FORMAT_JPEG);
  g_assert_cmpint(img.channels, ==, 3);
  ItuDiff d = itu_diff_u8(img.pixels, px, w * h * 3);
  g_test_message("JPEG q95 round trip of a smooth image: max |diff| %d, mean %.3f", d.max_abs,
                 d.mean_abs);
  g_assert_cmpint(d.max_abs, <=, 12);
  g_assert_cmpfloat(d.mean_abs, <, 1.5);
  img_buffer_clear(&img);
  /* gray */
  guint8 gray[16 * 16];
  for (int i = 0; i < 256; i++) gray[i] = (guint8)i;
  g_assert_true(img_save_jpeg(path, gray, 16, 16, 1, 0, 90, NULL));
  g_assert_true(img_load_file(path, &img, NULL));
  g_assert_cmpint(img.channels, ==, 1);
  g_assert_cmpstr(img.pil_mode, ==, "L");
  img_buffer_clear(&img);
  /* RGBA cannot be a JPEG */
  g_assert_false(img_save_jpeg(path, px, 4, 4, 4, 0, 90, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_free(path);
  g_free(px);
}

static void test_write_errors(void) {
  guint8 px[12] = {0};
  GError *err = NULL;
  /* a folder that does not exist */
  g_assert_false(img_save_png("/nonexistent/dir/out.png", px, 2, 2, 3, 0, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_IO);
  g_assert_nonnull(strstr(err->message, "/nonexistent/dir/out.png"));
  g_test_message("%s", err->message);
  g_clear_error(&err);
  /* a path that is a directory */
  g_assert_false(img_save_png(tmp_dir, px, 2, 2, 3, 0, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_IO);
  g_clear_error(&err);
  /* a full disk */
  if (g_file_test("/dev/full", G_FILE_TEST_EXISTS)) {
    g_assert_false(img_save_png("/dev/full", px, 2, 2, 3, 0, &err));
    g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_IO);
    g_assert_nonnull(strstr(err->message, "/dev/full"));
    g_test_message("%s", err->message);
    g_clear_error(&err);
    g_assert_false(img_save_jpeg("/dev/full", px, 2, 2, 3, 0, 90, &err));
    g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_IO);
    g_clear_error(&err);
    g_assert_true(g_file_test("/dev/full", G_FILE_TEST_EXISTS) &&
                  !g_file_test("/dev/full", G_FILE_TEST_IS_REGULAR));   /* not replaced */
  }
  /* unknown extension, bad arguments */
  char *path = tmp_path("out.bmp");
  g_assert_false(img_save_file(path, px, 2, 2, 3, 0, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_free(path);
  path = tmp_path("bad.png");
  g_assert_false(img_save_png(path, px, 0, 2, 3, 0, &err));
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_false(img_save_png(path, px, 4, 1, 3, 5, &err));   /* stride < row */
  g_assert_error(err, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG);
  g_clear_error(&err);
  g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
  g_free(path);
}

/* An existing file is replaced whole, or left as it was when writing fails. */
static void test_write_replaces(void) {
  char *path = tmp_path("replace.png");
  guint8 a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
  g_assert_true(img_save_png(path, a, 1, 1, 3, 0, NULL));
  g_assert_true(img_save_png(path, b, 1, 1, 3, 0, NULL));
  ImgBuffer img;
  g_assert_true(img_load_file(path, &img, NULL));
  g_assert_cmpmem(img.pixels, 3, b, 3);
  img_buffer_clear(&img);
  g_free(path);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  itu_set_data_dir(argc > 1 ? argv[1] : "tests/data/image");
  GError *err = NULL;
  tmp_dir = g_dir_make_tmp("bagel-imageio-XXXXXX", &err);
  g_assert_no_error(err);
  g_test_add_func("/imageio/decode/reference", test_decode_reference);
  g_test_add_func("/imageio/to_rgb/rules", test_to_rgb_rules);
  g_test_add_func("/imageio/to_rgb/composite_table", test_to_rgb_composite_table);
  g_test_add_func("/imageio/bad/missing_garbage", test_missing_and_garbage);
  g_test_add_func("/imageio/bad/png_sizes", test_huge_and_zero_png);
  g_test_add_func("/imageio/bad/jpeg_sizes", test_huge_and_zero_jpeg);
  g_test_add_func("/imageio/bad/jpeg_scan_limit", test_jpeg_scan_limit);
  g_test_add_func("/imageio/alpha_only", test_alpha_only);
  g_test_add_func("/imageio/write/png_round_trip", test_png_round_trip);
  g_test_add_func("/imageio/write/jpeg_round_trip", test_jpeg_round_trip);
  g_test_add_func("/imageio/write/errors", test_write_errors);
  g_test_add_func("/imageio/write/replaces", test_write_replaces);
  int rc = g_test_run();
  /* remove what the tests wrote */
  GDir *dir = g_dir_open(tmp_dir, 0, NULL);
  const char *name;
  while (dir && (name = g_dir_read_name(dir))) {
    char *p = g_build_filename(tmp_dir, name, NULL);
    g_remove(p);
    g_free(p);
  }
  if (dir) g_dir_close(dir);
  g_rmdir(tmp_dir);
  g_free(tmp_dir);
  return rc;
}
