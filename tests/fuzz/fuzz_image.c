/* tests/fuzz/fuzz_image.c — PNG/JPEG decoding (libpng/libjpeg glue, setjmp/longjmp error
 * paths, PIL's tRNS rules), pil_img2rgb and the bicubic resample on arbitrary bytes: no
 * crash, no leak, no read outside the input or the pixel buffers.  Limits are lowered so
 * that a header claiming a large image cannot exhaust the fuzzer's memory. */
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "image.h"
#include "imageio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy, so reads past `size` are caught by ASan */
  uint8_t *copy = g_memdup2(data, size ? size : 1);
  const ImgLoadLimits limits = {.max_side = 2048, .max_pixels = 1u << 20};
  ImgBuffer img;
  GError *err = NULL;
  if (!img_load_memory_limited(copy, size, "fuzz", &limits, &img, &err)) {
    g_assert(err != NULL && err->message[0] && img.pixels == NULL);
    g_error_free(err);
    g_free(copy);
    return 0;
  }
  g_assert(img.width > 0 && img.height > 0 && img.channels >= 1 && img.channels <= 4);
  guint8 *rgb = img_to_rgb(&img, &err);
  g_assert(rgb != NULL && err == NULL);
  /* The resample paths do not depend on the size; a pixel cap (not a side cap: 1×4096
   * still goes through) keeps the coverage-instrumented loops from dominating the run
   * (256×256 gave ~1k executions/s, most of it in __sanitizer_cov_trace_cmp) */
  if ((gsize)img.width * img.height <= 64 * 64) {
    /* a size picked by the input, up or down, then the golden VAE transform */
    int dw = 1 + (size > 0 ? data[size - 1] % 97 : 0);
    int dh = 1 + (size > 1 ? data[size - 2] % 89 : 0);
    guint8 *out = g_malloc((gsize)dw * dh * 3);
    g_assert(img_resize_bicubic(rgb, img.width, img.height, 3, out, dw, dh, NULL));
    g_free(out);
    const ImgTransform t = {128, 64, 16, IMG_DEFAULT_MAX_PIXELS};
    int tw, th;
    g_assert(img_transform_resize(&t, rgb, img.width, img.height, &out, &tw, &th, NULL));
    float *tensor = g_new(float, (gsize)tw * th * 3);
    img_to_tensor(out, tw, th, 3, tensor);
    img_from_tensor(tensor, tw, th, 3, out);
    g_free(tensor);
    g_free(out);
  }
  g_free(rgb);
  img_buffer_clear(&img);
  g_free(copy);
  return 0;
}
