/* tests/image/test_image_golden.c — the official run's image tensors (tests/data/golden/
 * tiny, from ../shared/golden): input.png through pil_img2rgb and the golden transforms
 * VAE (128, 64, 16) and ViT (112, 56, 14) must give vae_resized / vit_resized exactly,
 * ToTensor+Normalize must give the VAE encoder input bit for bit, and the decoder output
 * must convert to the golden uint8 image exactly.  argv[1]: tests/data. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_util.h"
#include "image.h"
#include "imageio.h"
#include "safetensors.h"

static const char *data_dir;

static const ImgTransform golden_vae = {128, 64, 16, IMG_DEFAULT_MAX_PIXELS};
static const ImgTransform golden_vit = {112, 56, 14, IMG_DEFAULT_MAX_PIXELS};

static void assert_u8_exact(const char *what, const guint8 *ours, int w, int h,
                            const StTensor *ref) {
  g_assert_cmpint(ref->dtype, ==, ST_U8);
  g_assert_cmpint(ref->ndim, ==, 3);
  g_assert_cmpint(ref->shape[0], ==, h);
  g_assert_cmpint(ref->shape[1], ==, w);
  g_assert_cmpint(ref->shape[2], ==, 3);
  const guint8 *r = ref->data;
  gsize n = (gsize)w * h * 3, nd = 0;
  int mx = 0;
  double sum = 0;
  for (gsize i = 0; i < n; i++) {
    int d = abs((int)ours[i] - (int)r[i]);
    nd += d != 0;
    mx = MAX(mx, d);
    sum += d;
  }
  printf("# %s: %dx%d, max |diff| %d, mean %.6f, %" G_GSIZE_FORMAT " values differ\n", what, w,
         h, mx, sum / n, nd);
  g_assert_cmpint(mx, ==, 0);
}

/* input.png → rgb (the same for every mode) */
static guint8 *golden_input(int *w, int *h) {
  char *path = g_build_filename(data_dir, "golden", "tiny", "input.png", NULL);
  ImgBuffer img;
  GError *err = NULL;
  g_assert_true(img_load_file(path, &img, &err));
  g_assert_no_error(err);
  guint8 *rgb = img_to_rgb(&img, &err);
  g_assert_no_error(err);
  *w = img.width;
  *h = img.height;
  img_buffer_clear(&img);
  g_free(path);
  return rgb;
}

static void check_mode(const char *mode, gboolean has_vae_encode) {
  Golden *g = golden_open(data_dir, mode);
  int w, h;
  guint8 *rgb = golden_input(&w, &h);
  g_assert_cmpint(w, ==, 100);
  g_assert_cmpint(h, ==, 75);

  guint8 *vae = NULL, *vae2 = NULL, *vit = NULL;
  int vw, vh, v2w, v2h, tw, th;
  GError *err = NULL;
  g_assert_true(img_transform_resize(&golden_vae, rgb, w, h, &vae, &vw, &vh, &err));
  g_assert_no_error(err);
  char what[64];
  g_snprintf(what, sizeof what, "%s vae_resized", mode);
  assert_u8_exact(what, vae, vw, vh, golden_get(g, ".vae_transform.resize.out_uint8", 0));

  if (has_vae_encode) {
    /* the model's own VAE transform runs again on the resized image: a no-op */
    g_assert_true(img_transform_resize(&golden_vae, vae, vw, vh, &vae2, &v2w, &v2h, NULL));
    g_assert_cmpint(v2w, ==, vw);
    g_assert_cmpint(v2h, ==, vh);
    g_assert_cmpmem(vae2, vw * vh * 3, vae, vw * vh * 3);
    assert_u8_exact("edit vae_resized (second pass)", vae2, v2w, v2h,
                    golden_get(g, ".vae_transform.resize.out_uint8", 1));
    const StTensor *x = golden_get(g, ".vae.encode.in.x", 0);
    g_assert_cmpint(x->dtype, ==, ST_F32);
    g_assert_cmpint(st_numel(x), ==, 3 * vw * vh);
    float *t = g_new(float, 3 * vw * vh);
    img_to_tensor(vae2, vw, vh, 3, t);
    gsize diff = 0;
    for (int i = 0; i < 3 * vw * vh; i++) diff += memcmp(&t[i], (const float *)x->data + i, 4) != 0;
    printf("# %s vae.encode.in.x: %" G_GSIZE_FORMAT " of %d fp32 values differ bitwise\n", mode,
           diff, 3 * vw * vh);
    g_assert_cmpuint(diff, ==, 0);
    g_free(t);
  }

  g_assert_true(img_transform_resize(&golden_vit, vae, vw, vh, &vit, &tw, &th, &err));
  g_assert_no_error(err);
  g_snprintf(what, sizeof what, "%s vit_resized", mode);
  assert_u8_exact(what, vit, tw, th, golden_get(g, ".vit_transform.resize.out_uint8", 0));

  g_free(rgb);
  g_free(vae);
  g_free(vae2);
  g_free(vit);
  golden_close(g);
}

static void test_und(void) {
  check_mode("und", FALSE);
}

static void test_edit(void) {
  check_mode("edit", TRUE);
}

/* decode_image: the VAE decoder output → uint8, in every mode that makes an image */
static void test_decode_to_uint8(void) {
  const char *modes[] = {"edit", "t2i", "edit_think", "t2i_think"};
  for (unsigned m = 0; m < G_N_ELEMENTS(modes); m++) {
    Golden *g = golden_open(data_dir, modes[m]);
    const StTensor *y = golden_get(g, ".vae.decode.out.x", 0);
    const StTensor *img = golden_get(g, ".decode_image.out.image_uint8", 0);
    g_assert_cmpint(y->dtype, ==, ST_F32);
    int hh = (int)y->shape[2], ww = (int)y->shape[3];
    guint8 *out = g_malloc((gsize)ww * hh * 3);
    img_from_tensor(y->data, ww, hh, 3, out);
    char what[64];
    g_snprintf(what, sizeof what, "%s decoded image", modes[m]);
    assert_u8_exact(what, out, ww, hh, img);
    g_free(out);
    golden_close(g);
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  data_dir = argc > 1 ? argv[1] : "tests/data";
  g_test_add_func("/image/golden/und", test_und);
  g_test_add_func("/image/golden/edit", test_edit);
  g_test_add_func("/image/golden/decode", test_decode_to_uint8);
  return g_test_run();
}
