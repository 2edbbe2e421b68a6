/* engine/imageio.c — PNG (libpng) and JPEG (libjpeg) decoding to what PIL's Image.open
 * gives, and PNG/JPEG writing.  See imageio.h for the exact mapping of every PNG colour
 * type / bit depth and JPEG colour space (docs/bagel-spec.md §7: pil_img2rgb relies on it).
 *
 * Both libraries report fatal errors by longjmp.  Everything a decoder allocates lives
 * in a heap context created before setjmp, so the error path frees it without touching
 * automatic variables modified after setjmp.
 */
#include "imageio.h"

#include "bagel.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
/* jpeglib.h needs stdio.h (FILE) first */
#include <jerror.h>
#include <jpeglib.h>

static const char *display_name(const char *name) {
  return name && *name ? name : "(image)";
}

void img_buffer_clear(ImgBuffer *img) {
  if (!img) return;
  g_free(img->pixels);
  memset(img, 0, sizeof *img);
}

/* The size check every loader runs on the header, before allocating pixel memory. */
static gboolean check_size(const char *name, const char *what, guint64 w, guint64 h,
                           const ImgLoadLimits *limits, GError **error) {
  guint64 max_side = limits && limits->max_side > 0 ? (guint64)limits->max_side : IMG_MAX_SIDE;
  guint64 max_pixels = limits && limits->max_pixels > 0 ? limits->max_pixels : IMG_MAX_PIXELS;
  if (w == 0 || h == 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "%s: %s image has zero size (%" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT ")",
                display_name(name), what, w, h);
    return FALSE;
  }
  if (w > max_side || h > max_side || w * h > max_pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "%s: %s image is too large (%" G_GUINT64_FORMAT "×%" G_GUINT64_FORMAT
                " pixels; the limit is %" G_GUINT64_FORMAT " pixels per side and %"
                G_GUINT64_FORMAT " pixels in all)",
                display_name(name), what, w, h, max_side, max_pixels);
    return FALSE;
  }
  return TRUE;
}

static void init_buffer(ImgBuffer *out, int w, int h, int channels, guint8 *pixels,
                        ImgFormat format, const char *pil_mode) {
  memset(out, 0, sizeof *out);
  out->width = w;
  out->height = h;
  out->channels = channels;
  out->stride = w * channels;
  out->pixels = pixels;
  out->format = format;
  g_strlcpy(out->pil_mode, pil_mode, sizeof out->pil_mode);
}

/* ------------------------------------------------------------------------------------ */
/* PNG                                                                                   */

typedef struct {
  const guint8 *data;
  gsize len, pos;
  char msg[256];
  gboolean have_trns;      /* the last tRNS chunk before IDAT, raw */
  guint8 *trns;
  gsize trns_len;
  /* freed on every path */
  guint8 *raw;             /* one row, or the whole image when interlaced */
  png_bytep *rows;
  guint8 *pixels;
} PngCtx;

static void png_ctx_free(PngCtx *c) {
  g_free(c->trns);
  g_free(c->raw);
  g_free(c->rows);
  g_free(c->pixels);
  g_free(c);
}

static void png_on_error(png_structp png, png_const_charp msg) {
  PngCtx *c = png_get_error_ptr(png);
  g_strlcpy(c->msg, msg, sizeof c->msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;   /* PIL ignores what libpng only warns about */
}

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
  PngCtx *c = png_get_io_ptr(png);
  if (n > c->len - c->pos) {
    g_strlcpy(c->msg, "file is truncated", sizeof c->msg);
    png_longjmp(png, 1);
  }
  memcpy(dst, c->data + c->pos, n);
  c->pos += n;
}

/* tRNS is taken raw (registered as an "unknown" chunk) so its meaning can follow PIL's
 * PngImagePlugin.chunk_tRNS, which accepts chunks libpng would reject or reinterpret. */
static int png_on_chunk(png_structp png, png_unknown_chunkp chunk) {
  PngCtx *c = png_get_user_chunk_ptr(png);
  if (memcmp(chunk->name, "tRNS", 4) == 0) {
    g_free(c->trns);
    c->trns = g_memdup2(chunk->data ? chunk->data : (png_bytep)"", chunk->size);
    c->trns_len = chunk->size;
    c->have_trns = TRUE;
  }
  return 1;
}

/* PIL's _simple_palette = re.compile(b"^\xff*\x00\xff*$"): every byte 0xff but exactly
 * one 0x00 — and since `$` also matches before a final newline, a trailing 0x0a is
 * allowed.  Returns the transparent index or -1. */
static int trns_simple_index(const guint8 *s, gsize n) {
  for (int pass = 0; pass < 2; pass++) {
    gsize m = n;
    if (pass == 1) {
      if (n == 0 || s[n - 1] != 0x0a) break;
      m = n - 1;
    }
    int zero = -1, ok = 1;
    for (gsize i = 0; i < m && ok; i++) {
      if (s[i] == 0x00) {
        if (zero >= 0) ok = 0;
        else zero = (int)i;
      } else if (s[i] != 0xff) {
        ok = 0;
      }
    }
    if (ok && zero >= 0) return zero;
  }
  return -1;
}

typedef struct {
  int color_type, bit_depth;
  int channels;                 /* of the output */
  guint8 palette[256 * 4];      /* RGBA, PIL's palette after putpalettealpha(s) */
} PngLayout;

static inline unsigned sample_bits(const guint8 *row, int i, int bits) {
  int per_byte = 8 / bits;
  int shift = 8 - bits * (i % per_byte + 1);
  return (row[i / per_byte] >> shift) & ((1u << bits) - 1);
}

/* One decoded PNG row (no libpng transformations) → PIL's 8-bit pixels. */
static void png_convert_row(const PngLayout *L, const guint8 *src, guint8 *dst, int w) {
  int d = L->bit_depth;
  switch (L->color_type) {
  case PNG_COLOR_TYPE_GRAY:
    for (int x = 0; x < w; x++) {
      unsigned v;
      if (d == 16) {
        v = ((unsigned)src[2 * x] << 8) | src[2 * x + 1];
        v = v < 256 ? v : 255;                    /* PIL I;16 → RGB clips */
      } else if (d == 8) {
        v = src[x];
      } else {
        v = sample_bits(src, x, d);
        v = d == 1 ? (v ? 255 : 0) : d == 2 ? v * 0x55 : v * 0x11;
      }
      dst[x] = (guint8)v;
    }
    break;
  case PNG_COLOR_TYPE_GRAY_ALPHA:
    if (d == 8) {
      memcpy(dst, src, (gsize)w * 2);
    } else {                                      /* PIL: mode RGBA, rawmode LA;16B */
      for (int x = 0; x < w; x++) {
        dst[4 * x + 0] = dst[4 * x + 1] = dst[4 * x + 2] = src[4 * x];
        dst[4 * x + 3] = src[4 * x + 2];
      }
    }
    break;
  case PNG_COLOR_TYPE_RGB:
  case PNG_COLOR_TYPE_RGB_ALPHA: {
    int n = w * L->channels;
    if (d == 8) memcpy(dst, src, (gsize)n);
    else for (int i = 0; i < n; i++) dst[i] = src[2 * i];   /* high byte */
    break;
  }
  case PNG_COLOR_TYPE_PALETTE:
    for (int x = 0; x < w; x++) {
      unsigned idx = d == 8 ? src[x] : sample_bits(src, x, d);
      const guint8 *p = &L->palette[idx * 4];
      for (int ch = 0; ch < L->channels; ch++) dst[L->channels * x + ch] = p[ch];
    }
    break;
  }
}

/* Sets *L and the transparency fields of `out` from the header, PLTE and raw tRNS. */
static gboolean png_layout(png_structp png, png_infop info, PngCtx *c, const char *name,
                           PngLayout *L, ImgBuffer *out, GError **error) {
  L->color_type = png_get_color_type(png, info);
  L->bit_depth = png_get_bit_depth(png, info);
  const char *mode = "?";
  int d = L->bit_depth;
  switch (L->color_type) {
  case PNG_COLOR_TYPE_GRAY:
    L->channels = 1;
    mode = d == 1 ? "1" : d == 16 ? "I;16" : "L";
    break;
  case PNG_COLOR_TYPE_GRAY_ALPHA:
    L->channels = d == 16 ? 4 : 2;
    mode = d == 16 ? "RGBA" : "LA";
    break;
  case PNG_COLOR_TYPE_RGB:
    L->channels = 3;
    mode = "RGB";
    break;
  case PNG_COLOR_TYPE_RGB_ALPHA:
    L->channels = 4;
    mode = "RGBA";
    break;
  case PNG_COLOR_TYPE_PALETTE:
    L->channels = c->have_trns ? 4 : 3;
    mode = "P";
    break;
  default:
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: unsupported PNG colour type %d",
                display_name(name), L->color_type);
    return FALSE;
  }
  g_strlcpy(out->pil_mode, mode, sizeof out->pil_mode);
  out->channels = L->channels;

  if (L->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp plte = NULL;
    int n = 0;
    memset(L->palette, 0, sizeof L->palette);   /* Pillow ≥ 10: missing entries black */
    for (int i = 0; i < 256; i++) L->palette[4 * i + 3] = 255;
    if (png_get_PLTE(png, info, &plte, &n) & PNG_INFO_PLTE) {
      for (int i = 0; i < n && i < 256; i++) {
        L->palette[4 * i + 0] = plte[i].red;
        L->palette[4 * i + 1] = plte[i].green;
        L->palette[4 * i + 2] = plte[i].blue;
      }
    }
    if (c->have_trns) {
      int simple = trns_simple_index(c->trns, c->trns_len);
      if (simple >= 0) {
        if (simple < 256) L->palette[4 * simple + 3] = 0;   /* putpalettealpha(i, 0) */
      } else {
        if (c->trns_len > 256) {                            /* putpalettealphas raises */
          g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                      "%s: PNG tRNS chunk has %" G_GSIZE_FORMAT " entries (at most 256)",
                      display_name(name), c->trns_len);
          return FALSE;
        }
        for (gsize i = 0; i < c->trns_len; i++) L->palette[4 * i + 3] = c->trns[i];
      }
    }
  } else if (c->have_trns && (L->color_type == PNG_COLOR_TYPE_GRAY ||
                              L->color_type == PNG_COLOR_TYPE_RGB)) {
    int n = L->color_type == PNG_COLOR_TYPE_GRAY ? 1 : 3;
    if (c->trns_len < (gsize)(2 * n)) {          /* PIL's i16() fails: not opened */
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                  "%s: PNG tRNS chunk too short (%" G_GSIZE_FORMAT " bytes)",
                  display_name(name), c->trns_len);
      return FALSE;
    }
    out->has_key = TRUE;
    for (int i = 0; i < n; i++)
      out->key[i] = (guint16)((c->trns[2 * i] << 8) | c->trns[2 * i + 1]);
  }
  return TRUE;
}

static gboolean load_png(const guint8 *data, gsize len, const char *name,
                         const ImgLoadLimits *limits, ImgBuffer *out, GError **error) {
  PngCtx *c = g_new0(PngCtx, 1);
  c->data = data;
  c->len = len;
  PngLayout *L = g_new0(PngLayout, 1);
  ImgBuffer result = {0};
  gboolean ok = FALSE;

  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error,
                                           png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "%s: cannot initialise libpng",
                display_name(name));
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    png_ctx_free(c);
    g_free(L);
    return FALSE;
  }
  if (setjmp(png_jmpbuf(png))) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: invalid PNG: %s",
                display_name(name), c->msg[0] ? c->msg : "decoding failed");
    goto done;
  }
  png_set_read_fn(png, c, png_read_mem);
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);   /* checked below */
  png_set_benign_errors(png, 1);
  /* PIL checks every chunk CRC it reads; never use data from a damaged chunk */
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  /* let the fuzzer reach past chunk CRCs (as libpng's own fuzz target does) */
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#endif
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_ALWAYS, (png_const_bytep) "tRNS\0", 1);
  png_set_read_user_chunk_fn(png, c, png_on_chunk);

  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (!check_size(name, "PNG", w, h, limits, error)) goto done;
  if (!png_layout(png, info, c, name, L, &result, error)) goto done;

  gsize out_stride = (gsize)w * L->channels;
  c->pixels = g_try_malloc(out_stride * h);
  if (!c->pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                "%s: out of memory for a %u×%u image", display_name(name), w, h);
    goto done;
  }
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  gsize rowbytes = png_get_rowbytes(png, info);
  if (passes == 1) {
    c->raw = g_try_malloc(rowbytes);
    if (!c->raw) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "%s: out of memory",
                  display_name(name));
      goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) {
      png_read_row(png, c->raw, NULL);
      png_convert_row(L, c->raw, c->pixels + y * out_stride, (int)w);
    }
  } else {
    c->raw = g_try_malloc(rowbytes * h);
    c->rows = g_try_new(png_bytep, h);
    if (!c->raw || !c->rows) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                  "%s: out of memory for an interlaced %u×%u image", display_name(name), w, h);
      goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->raw + y * rowbytes;
    png_read_image(png, c->rows);
    for (png_uint_32 y = 0; y < h; y++)
      png_convert_row(L, c->rows[y], c->pixels + y * out_stride, (int)w);
  }
  /* The image data is complete: what follows IDAT is not read (PIL ignores its errors). */
  init_buffer(out, (int)w, (int)h, L->channels, c->pixels, IMG_FORMAT_PNG, result.pil_mode);
  out->has_key = result.has_key;
  memcpy(out->key, result.key, sizeof out->key);
  c->pixels = NULL;
  ok = TRUE;

done:
  png_destroy_read_struct(&png, &info, NULL);
  png_ctx_free(c);
  g_free(L);
  return ok;
}

/* ------------------------------------------------------------------------------------ */
/* JPEG                                                                                  */

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} JpegErr;

typedef struct {
  struct jpeg_decompress_struct cinfo;
  JpegErr err;
  struct jpeg_progress_mgr progress;
  guint8 *pixels;
} JpegCtx;

/* Each progressive scan costs a pass over the whole image, so a small file of many
 * scans could keep the decoder busy for minutes; libjpeg-turbo's own tools stop at 500. */
#define JPEG_MAX_SCANS 1000

static void jpeg_on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor &&
      ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
    JpegErr *e = (JpegErr *)cinfo->err;
    g_snprintf(e->msg, sizeof e->msg, "more than %d scans", JPEG_MAX_SCANS);
    longjmp(e->jb, 1);
  }
}

static void jpeg_on_error(j_common_ptr cinfo) {
  JpegErr *e = (JpegErr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, e->msg);
  longjmp(e->jb, 1);
}

/* libjpeg only warns when the data ends early and pads the image with gray; PIL fails
 * ("image file is truncated") unless every scanline was decoded, so do we.  Other
 * warnings (corrupt data it can skip) are ignored, as by PIL. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  JpegErr *e = (JpegErr *)cinfo->err;
  if (level < 0 && cinfo->is_decompressor && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->output_height == 0 || d->output_scanline < d->output_height) {
      g_strlcpy(e->msg, "file is truncated", sizeof e->msg);
      longjmp(e->jb, 1);
    }
  }
}

/* Adobe-inverted CMYK ("CMYK;I") to RGB exactly as PIL's unpackCMYKI + cmyk2rgb. */
static void cmyk_inverted_to_rgb(const guint8 *in, guint8 *out, int w) {
  for (int x = 0; x < w; x++, in += 4, out += 3) {
    int nk = 255 - (255 - in[3]);
    for (int ch = 0; ch < 3; ch++) {
      unsigned t = (unsigned)(255 - in[ch]) * (unsigned)nk + 128;   /* MULDIV255 */
      int v = nk - (int)(((t >> 8) + t) >> 8);
      out[ch] = (guint8)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
}

static gboolean load_jpeg(const guint8 *data, gsize len, const char *name,
                          const ImgLoadLimits *limits, ImgBuffer *out, GError **error) {
  JpegCtx *c = g_new0(JpegCtx, 1);
  gboolean ok = FALSE;
  c->cinfo.err = jpeg_std_error(&c->err.pub);
  c->err.pub.error_exit = jpeg_on_error;
  c->err.pub.emit_message = jpeg_on_message;
  if (setjmp(c->err.jb)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: invalid JPEG: %s",
                display_name(name), c->err.msg);
    goto done;
  }
  jpeg_create_decompress(&c->cinfo);
  c->progress.progress_monitor = jpeg_on_progress;
  c->cinfo.progress = &c->progress;
  jpeg_mem_src(&c->cinfo, data, (unsigned long)len);
  jpeg_read_header(&c->cinfo, TRUE);

  struct jpeg_decompress_struct *ci = &c->cinfo;
  if (!check_size(name, "JPEG", ci->image_width, ci->image_height, limits, error)) goto done;
  int comps = ci->num_components, channels;
  const char *mode;
  if (comps == 1) {
    ci->out_color_space = JCS_GRAYSCALE;
    channels = 1;
    mode = "L";
  } else if (comps == 3) {
    ci->out_color_space = JCS_RGB;
    channels = 3;
    mode = "RGB";
  } else if (comps == 4) {
    ci->out_color_space = JCS_CMYK;   /* CMYK, or YCCK converted to CMYK by libjpeg */
    channels = 3;
    mode = "CMYK";
  } else {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "%s: JPEG with %d components is not supported", display_name(name), comps);
    goto done;
  }
  jpeg_start_decompress(ci);
  int w = (int)ci->output_width, h = (int)ci->output_height;
  gsize stride = (gsize)w * channels;
  c->pixels = g_try_malloc(stride * h);
  if (!c->pixels) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED,
                "%s: out of memory for a %d×%d image", display_name(name), w, h);
    goto done;
  }
  JSAMPARRAY cmyk_row = comps == 4
      ? (*ci->mem->alloc_sarray)((j_common_ptr)ci, JPOOL_IMAGE, (JDIMENSION)w * 4, 1)
      : NULL;
  while (ci->output_scanline < ci->output_height) {
    JDIMENSION y = ci->output_scanline;
    if (cmyk_row) {
      jpeg_read_scanlines(ci, cmyk_row, 1);
      cmyk_inverted_to_rgb(cmyk_row[0], c->pixels + y * stride, w);
    } else {
      JSAMPROW row = c->pixels + y * stride;
      jpeg_read_scanlines(ci, &row, 1);
    }
  }
  init_buffer(out, w, h, channels, c->pixels, IMG_FORMAT_JPEG, mode);
  c->pixels = NULL;
  ok = TRUE;

done:
  jpeg_destroy_decompress(&c->cinfo);
  g_free(c->pixels);
  g_free(c);
  return ok;
}

/* ------------------------------------------------------------------------------------ */
/* Entry points                                                                          */

static ImgFormat sniff(const guint8 *data, gsize len) {
  static const guint8 png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (len >= 8 && memcmp(data, png_sig, 8) == 0) return IMG_FORMAT_PNG;
  if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return IMG_FORMAT_JPEG;
  return IMG_FORMAT_UNKNOWN;
}

gboolean img_load_memory_limited(const guint8 *data, gsize len, const char *name,
                                 const ImgLoadLimits *limits, ImgBuffer *out, GError **error) {
  g_return_val_if_fail(out != NULL, FALSE);
  memset(out, 0, sizeof *out);
  if (!data || len == 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "%s: empty file", display_name(name));
    return FALSE;
  }
  switch (sniff(data, len)) {
  case IMG_FORMAT_PNG:
    return load_png(data, len, name, limits, out, error);
  case IMG_FORMAT_JPEG:
    return load_jpeg(data, len, name, limits, out, error);
  default:
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT,
                "%s: not a PNG or JPEG image (unrecognised signature)", display_name(name));
    return FALSE;
  }
}

gboolean img_load_memory(const guint8 *data, gsize len, const char *name, ImgBuffer *out,
                         GError **error) {
  return img_load_memory_limited(data, len, name, NULL, out, error);
}

gboolean img_load_file(const char *path, ImgBuffer *out, GError **error) {
  g_return_val_if_fail(path != NULL && out != NULL, FALSE);
  memset(out, 0, sizeof *out);
  if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "%s: is a directory, not an image", path);
    return FALSE;
  }
  GError *e = NULL;
  GMappedFile *map = g_mapped_file_new(path, FALSE, &e);   /* no copy of a large file */
  if (!map) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot read image %s: %s", path,
                e->message);
    g_error_free(e);
    return FALSE;
  }
  gboolean ok = img_load_memory((const guint8 *)g_mapped_file_get_contents(map),
                                g_mapped_file_get_length(map), path, out, error);
  g_mapped_file_unref(map);
  return ok;
}

/* ------------------------------------------------------------------------------------ */
/* Writing                                                                               */

static gboolean check_write_args(const char *path, const guint8 *pixels, int w, int h,
                                 int channels, int *stride, GError **error) {
  if (!pixels || w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20) || channels < 1 ||
      channels > 4 || *stride < 0 || (*stride > 0 && *stride < w * channels)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "cannot write %s: invalid image (%d×%d, %d channels, stride %d)",
                path ? path : "(null)", w, h, channels, *stride);
    return FALSE;
  }
  if (*stride == 0) *stride = w * channels;
  return TRUE;
}

/* Atomic replace for regular files; in place for anything else (a device, a FIFO). */
static gboolean write_whole_file(const char *path, const guint8 *data, gsize len,
                                 GError **error) {
  GFileSetContentsFlags flags = G_FILE_SET_CONTENTS_CONSISTENT;
  if (g_file_test(path, G_FILE_TEST_EXISTS) && !g_file_test(path, G_FILE_TEST_IS_REGULAR))
    flags = G_FILE_SET_CONTENTS_NONE;
  GError *e = NULL;
  if (!g_file_set_contents_full(path, (const gchar *)data, (gssize)len, flags, 0666, &e)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_IO, "cannot write image %s: %s", path,
                e->message);
    g_error_free(e);
    return FALSE;
  }
  return TRUE;
}

typedef struct {
  GByteArray *bytes;
  char msg[256];
} PngWriteCtx;

static void png_write_mem(png_structp png, png_bytep src, png_size_t n) {
  PngWriteCtx *c = png_get_io_ptr(png);
  g_byte_array_append(c->bytes, src, (guint)n);
}

static void png_flush_mem(png_structp png) {
  (void)png;
}

static void png_on_write_error(png_structp png, png_const_charp msg) {
  PngWriteCtx *c = png_get_error_ptr(png);
  g_strlcpy(c->msg, msg, sizeof c->msg);
  png_longjmp(png, 1);
}

gboolean img_save_png(const char *path, const guint8 *pixels, int width, int height,
                      int channels, int stride, GError **error) {
  if (!check_write_args(path, pixels, width, height, channels, &stride, error)) return FALSE;
  static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                     PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  PngWriteCtx *c = g_new0(PngWriteCtx, 1);
  c->bytes = g_byte_array_new();
  gboolean ok = FALSE;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_on_write_error,
                                            png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "cannot write %s: libpng failed",
                path);
    goto done;
  }
  if (setjmp(png_jmpbuf(png))) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "cannot encode PNG %s: %s", path,
                c->msg);
    goto done;
  }
  png_set_write_fn(png, c, png_write_mem, png_flush_mem);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               color_types[channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++)
    png_write_row(png, (png_const_bytep)(pixels + (gsize)y * stride));
  png_write_end(png, NULL);
  ok = write_whole_file(path, c->bytes->data, c->bytes->len, error);

done:
  if (png) png_destroy_write_struct(&png, info ? &info : NULL);
  g_byte_array_unref(c->bytes);
  g_free(c);
  return ok;
}

typedef struct {
  struct jpeg_compress_struct cinfo;
  JpegErr err;
  unsigned char *mem;
  unsigned long mem_len;
} JpegWriteCtx;

gboolean img_save_jpeg(const char *path, const guint8 *pixels, int width, int height,
                       int channels, int stride, int quality, GError **error) {
  if (!check_write_args(path, pixels, width, height, channels, &stride, error)) return FALSE;
  if ((channels != 1 && channels != 3) || width > JPEG_MAX_DIMENSION ||
      height > JPEG_MAX_DIMENSION || quality < 1 || quality > 100) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                "cannot write %s as JPEG: needs 1 or 3 channels, sides ≤ %d and quality "
                "1..100 (got %d channels, %d×%d, quality %d)",
                path, (int)JPEG_MAX_DIMENSION, channels, width, height, quality);
    return FALSE;
  }
  JpegWriteCtx *c = g_new0(JpegWriteCtx, 1);
  gboolean ok = FALSE;
  c->cinfo.err = jpeg_std_error(&c->err.pub);
  c->err.pub.error_exit = jpeg_on_error;
  if (setjmp(c->err.jb)) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "cannot encode JPEG %s: %s", path,
                c->err.msg);
    goto done;
  }
  jpeg_create_compress(&c->cinfo);
  jpeg_mem_dest(&c->cinfo, &c->mem, &c->mem_len);
  c->cinfo.image_width = (JDIMENSION)width;
  c->cinfo.image_height = (JDIMENSION)height;
  c->cinfo.input_components = channels;
  c->cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c->cinfo);
  jpeg_set_quality(&c->cinfo, quality, TRUE);
  jpeg_start_compress(&c->cinfo, TRUE);
  while (c->cinfo.next_scanline < c->cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(pixels + (gsize)c->cinfo.next_scanline * stride);
    jpeg_write_scanlines(&c->cinfo, &row, 1);
  }
  jpeg_finish_compress(&c->cinfo);
  ok = write_whole_file(path, c->mem, c->mem_len, error);

done:
  jpeg_destroy_compress(&c->cinfo);
  free(c->mem);   /* jpeg_mem_dest buffers come from malloc */
  g_free(c);
  return ok;
}

gboolean img_save_file(const char *path, const guint8 *pixels, int width, int height,
                       int channels, int stride, GError **error) {
  const char *dot = path ? strrchr(path, '.') : NULL;
  if (dot && g_ascii_strcasecmp(dot, ".png") == 0)
    return img_save_png(path, pixels, width, height, channels, stride, error);
  if (dot && (g_ascii_strcasecmp(dot, ".jpg") == 0 || g_ascii_strcasecmp(dot, ".jpeg") == 0))
    return img_save_jpeg(path, pixels, width, height, channels, stride, 95, error);
  g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
              "cannot write %s: unknown image type (use .png, .jpg or .jpeg)",
              path ? path : "(null)");
  return FALSE;
}
