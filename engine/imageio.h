/* engine/imageio.h — reading and writing PNG / JPEG files (libpng, libjpeg).
 *
 * The loaders give, byte for byte, what the official BAGEL code sees after
 * `PIL.Image.open(path)` (Pillow 11.1): the same 8-bit values and the same transparency
 * information, so that img_to_rgb() (engine/image.h, `pil_img2rgb`) can follow PIL's
 * rules exactly (docs/bagel-spec.md §7).  This includes Pillow's quirks, on purpose:
 *
 *   PNG gray 1-bit      → 1 channel, 0 / 255                     (PIL mode "1")
 *   PNG gray 2/4-bit    → 1 channel, value × 85 / × 17           ("L")
 *   PNG gray 8-bit      → 1 channel                              ("L")
 *   PNG gray 16-bit     → 1 channel, min(value, 255): PIL's I;16→RGB conversion clips,
 *                         so most 16-bit gray images come out nearly white   ("I;16")
 *   PNG gray+alpha 8    → 2 channels                             ("LA": alpha is later dropped)
 *   PNG gray+alpha 16   → 4 channels (gray replicated), high bytes ("RGBA": composited)
 *   PNG RGB 8/16        → 3 channels (16-bit: high byte)         ("RGB")
 *   PNG RGBA 8/16       → 4 channels (16-bit: high bytes)        ("RGBA")
 *   PNG palette         → 3 channels through the palette; 4 channels (palette alpha) when
 *                         a tRNS chunk is present; indices past the PLTE entries are black
 *                         (Pillow ≥ 10; 9.x used a gray ramp)    ("P")
 *   JPEG gray           → 1 channel                              ("L")
 *   JPEG YCbCr / RGB    → 3 channels (libjpeg's conversion, ISLOW IDCT, fancy upsampling)
 *   JPEG CMYK / YCCK    → 3 channels: PIL reads CMYK JPEGs as Adobe-inverted ("CMYK;I")
 *                         and converts to RGB with CLIP8(nk − MULDIV255(c, nk)), nk = 255 − k
 *
 * tRNS on gray and RGB PNGs is kept as PIL keeps it (info["transparency"]): the raw
 * 16-bit sample values, not rescaled to the 8-bit pixels (so a key on a 2/4-bit gray
 * image matches only black, as in PIL).  tRNS on palette images is applied to the
 * palette (PIL: putpalettealpha/putpalettealphas; a tRNS of all 0xff but one 0x00 is
 * PIL's "simple" single transparent index).  Only chunks before the first IDAT count.
 * EXIF orientation, gamma, ICC profiles and sBIT are ignored, as PIL's open() does.
 *
 * Limits: an image larger than IMG_MAX_SIDE on a side or than IMG_MAX_PIXELS in all is
 * rejected from its header, before any pixel memory is allocated.  A truncated file is
 * an error (PIL: "image file is truncated"); so is a bad chunk CRC, and (unlike PIL,
 * against decoding-time bombs) a JPEG of more than 1000 scans.
 *
 * Errors: GError in BAGEL_ERROR — BAGEL_ERROR_IO (cannot read/write the file) or
 * BAGEL_ERROR_FORMAT (not a PNG/JPEG, corrupt, too large); messages start with the file
 * name (or the name given to img_load_memory).  Nothing here aborts on bad input.
 */
#ifndef BAGEL_IMAGEIO_H
#define BAGEL_IMAGEIO_H

#include <glib.h>

G_BEGIN_DECLS

#define IMG_MAX_SIDE 16384
#define IMG_MAX_PIXELS (G_GUINT64_CONSTANT(1) << 27)   /* 134 M pixels, 512 MiB as RGBA */

typedef enum {
  IMG_FORMAT_UNKNOWN = 0,
  IMG_FORMAT_PNG,
  IMG_FORMAT_JPEG
} ImgFormat;

/* An 8-bit image: rows of `stride` bytes, `channels` interleaved samples per pixel:
 * 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (straight alpha).  Loaders fill every field and
 * own `pixels` (g_free, or img_buffer_clear).  Other code may wrap foreign memory in an
 * ImgBuffer (e.g. a BagelImage) to pass it to img_to_rgb(); it then must not clear it. */
typedef struct {
  int width, height;
  int channels;
  int stride;
  guint8 *pixels;
  gboolean has_key;    /* a tRNS colour key on a gray/RGB PNG (PIL's info["transparency"]) */
  guint16 key[3];      /* as stored in the file, 16-bit; gray images use key[0] */
  ImgFormat format;
  char pil_mode[8];    /* what PIL.Image.open calls it: "1", "L", "I;16", "LA", "P", "RGB",
                          "RGBA", "CMYK" (for messages and tests) */
} ImgBuffer;

/* An ImgBuffer over foreign memory (no key, not owned: never img_buffer_clear it). */
static inline ImgBuffer img_buffer_wrap(const guint8 *pixels, int width, int height,
                                        int channels, int stride) {
  static const char *modes[5] = {"?", "L", "LA", "RGB", "RGBA"};
  ImgBuffer b = {.width = width, .height = height, .channels = channels,
                 .stride = stride > 0 ? stride : width * channels,
                 .pixels = (guint8 *)pixels, .format = IMG_FORMAT_UNKNOWN};
  g_strlcpy(b.pil_mode, modes[channels >= 1 && channels <= 4 ? channels : 0],
            sizeof b.pil_mode);
  return b;
}

/* Limits for the loaders; zero fields take the defaults (IMG_MAX_SIDE, IMG_MAX_PIXELS). */
typedef struct {
  int max_side;
  guint64 max_pixels;
} ImgLoadLimits;

/* Load a PNG or JPEG (recognised by its signature, not by its name). */
gboolean img_load_file(const char *path, ImgBuffer *out, GError **error);

/* Decode a PNG or JPEG held in memory; `name` is used in error messages. */
gboolean img_load_memory(const guint8 *data, gsize len, const char *name, ImgBuffer *out,
                         GError **error);
gboolean img_load_memory_limited(const guint8 *data, gsize len, const char *name,
                                 const ImgLoadLimits *limits, ImgBuffer *out, GError **error);

/* Frees the pixels of a loaded image and zeroes the struct (safe on a zeroed struct). */
void img_buffer_clear(ImgBuffer *img);

/* Write 8-bit pixels (channels 1, 2, 3 or 4; rows of `stride` bytes, or tightly packed
 * when stride is 0).  The file is written atomically where it can be (a temporary file
 * renamed over `path`); a full disk or an unwritable path is an error naming the file. */
gboolean img_save_png(const char *path, const guint8 *pixels, int width, int height,
                      int channels, int stride, GError **error);
/* JPEG, baseline 4:2:0 (libjpeg defaults), channels 1 or 3, quality 1..100. */
gboolean img_save_jpeg(const char *path, const guint8 *pixels, int width, int height,
                       int channels, int stride, int quality, GError **error);
/* By extension: .png, or .jpg/.jpeg (quality 95); anything else is an error. */
gboolean img_save_file(const char *path, const guint8 *pixels, int width, int height,
                       int channels, int stride, GError **error);

G_END_DECLS
#endif
