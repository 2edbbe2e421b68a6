/* plugin/pixels.c — reading layers and writing results (see pixels.h). */
#include "pixels.h"

#include <stdio.h>
#include <string.h>

#include "settings.h"
#include "sizes.h"

/* Context kept around a selection: the model sees what surrounds the part it edits. */
#define SELECTION_MARGIN_FRACTION 0.125
#define SELECTION_MARGIN_MIN 16

#define RGBA_U8 "R'G'B'A u8"
#define RGB_U8 "R'G'B' u8"

void bagel_trace(const char *fmt, ...) {
  const char *path = g_getenv("BAGEL_PLUGIN_TRACE");
  if (!path || !*path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

void bagel_source_clear(BagelSource *src) {
  g_free(src->rgba);
  memset(src, 0, sizeof *src);
}

gboolean bagel_source_read(GimpImage *image, GimpLayer *layer, gboolean use_selection,
                           BagelSource *src, GError **error) {
  GimpDrawable *d = GIMP_DRAWABLE(layer);
  memset(src, 0, sizeof *src);
  src->layer = layer;
  gimp_drawable_get_offsets(d, &src->off_x, &src->off_y);
  int lw = gimp_drawable_get_width(d), lh = gimp_drawable_get_height(d);
  src->x = src->y = src->bx = src->by = 0;
  src->width = src->bwidth = lw;
  src->height = src->bheight = lh;
  if (use_selection && !gimp_selection_is_empty(image)) {
    int x, y, w, h;
    if (!gimp_drawable_mask_intersect(d, &x, &y, &w, &h) || w <= 0 || h <= 0) {
      g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                  "the selection does not touch the layer \"%s\"",
                  gimp_item_get_name(GIMP_ITEM(layer)));
      return FALSE;
    }
    int margin = MAX(SELECTION_MARGIN_MIN, (int)(SELECTION_MARGIN_FRACTION * MAX(w, h)));
    src->selection = TRUE;
    src->bx = x, src->by = y, src->bwidth = w, src->bheight = h;
    src->x = MAX(0, x - margin);
    src->y = MAX(0, y - margin);
    src->width = MIN(lw, x + w + margin) - src->x;
    src->height = MIN(lh, y + h + margin) - src->y;
  }
  src->has_alpha = gimp_drawable_has_alpha(d);
  src->rgba = g_try_malloc((gsize)src->width * src->height * 4);
  if (!src->rgba) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "out of memory for a %d×%d layer",
                src->width, src->height);
    return FALSE;
  }
  /* Any mode (RGB, gray, indexed; any precision): babl converts to 8-bit sRGB. */
  GeglBuffer *buffer = gimp_drawable_get_buffer(d);
  gegl_buffer_get(buffer, GEGL_RECTANGLE(src->x, src->y, src->width, src->height), 1.0,
                  babl_format(RGBA_U8), src->rgba, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref(buffer);
  return TRUE;
}

guint8 *bagel_resample(const guint8 *pixels, int width, int height, int channels, int dst_w,
                       int dst_h, GError **error) {
  gsize n = (gsize)dst_w * dst_h * channels;
  guint8 *out = g_try_malloc(n);
  if (!out) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "out of memory for a %d×%d image",
                dst_w, dst_h);
    return NULL;
  }
  if (width == dst_w && height == dst_h) {
    memcpy(out, pixels, n);
    return out;
  }
  const Babl *format = babl_format(channels == 4 ? RGBA_U8 : RGB_U8);
  /* GEGL takes a writable pointer; the buffer is only read from here. */
  GeglBuffer *in = gegl_buffer_linear_new_from_data((gpointer)pixels, format,
                                                    GEGL_RECTANGLE(0, 0, width, height),
                                                    width * channels, NULL, NULL);
  /* NoHalo keeps detail when shrinking; cubic is the usual choice when enlarging.  The
   * clamped abyss keeps the borders from fading to transparent. */
  gboolean shrink = (gint64)dst_w * dst_h < (gint64)width * height;
  GeglNode *graph = gegl_node_new();
  GeglNode *source = gegl_node_new_child(graph, "operation", "gegl:buffer-source",
                                         "buffer", in, NULL);
  GeglNode *scale = gegl_node_new_child(graph, "operation", "gegl:scale-size",
                                        "x", (double)dst_w, "y", (double)dst_h,
                                        "sampler", shrink ? GEGL_SAMPLER_NOHALO : GEGL_SAMPLER_CUBIC,
                                        "abyss-policy", GEGL_ABYSS_CLAMP, NULL);
  gegl_node_link(source, scale);
  gegl_node_blit(scale, 1.0, GEGL_RECTANGLE(0, 0, dst_w, dst_h), format, out,
                 GEGL_AUTO_ROWSTRIDE, GEGL_BLIT_DEFAULT);
  g_object_unref(graph);
  g_object_unref(in);
  return out;
}

gboolean bagel_source_to_job(const BagelSource *src, BagelMsg *job, GError **error) {
  int c = src->has_alpha ? 4 : 3;
  gsize n = (gsize)src->width * src->height;
  guint8 *px = g_try_malloc(n * c);
  if (!px) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "out of memory for a %d×%d layer",
                src->width, src->height);
    return FALSE;
  }
  for (gsize i = 0; i < n; i++) memcpy(px + i * c, src->rgba + i * 4, c);
  int w = src->width, h = src->height;
  if (MAX(w, h) > BAGEL_SEND_MAX_SIDE) {
    int mw, mh;
    bagel_model_size(w, h, &mw, &mh);
    guint8 *small = bagel_resample(px, w, h, c, mw, mh, error);
    g_free(px);
    if (!small) return FALSE;
    px = small;
    w = mw, h = mh;
  }
  gboolean ok = bagel_msg_set_image(job, w, h, c, px, w * c, error);
  g_free(px);
  return ok;
}

/* The new layer's type: the image's base type, with alpha. */
static GimpImageType layer_type(GimpImage *image) {
  switch (gimp_image_get_base_type(image)) {
  case GIMP_GRAY: return GIMP_GRAYA_IMAGE;
  case GIMP_INDEXED: return GIMP_INDEXEDA_IMAGE;
  default: return GIMP_RGBA_IMAGE;
  }
}

/* The result's pixels for the new layer: scaled to the region read, the source's alpha
 * kept (the model returns RGB), then cut to the region the layer covers. */
static guint8 *compose(const BagelProtoImage *res, const BagelPlacement *place, int *out_w,
                       int *out_h, GError **error) {
  const BagelSource *src = place->src;
  int rw = src ? src->width : place->width, rh = src ? src->height : place->height;
  guint8 *rgb = bagel_resample(res->pixels, res->width, res->height, res->channels, rw, rh,
                               error);
  if (!rgb) return NULL;
  int ox = src ? src->bx - src->x : 0, oy = src ? src->by - src->y : 0;
  int w = src ? src->bwidth : rw, h = src ? src->bheight : rh;
  guint8 *rgba = g_try_malloc((gsize)w * h * 4);
  if (!rgba) {
    g_free(rgb);
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FAILED, "out of memory for a %d×%d layer", w, h);
    return NULL;
  }
  int c = res->channels;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      gsize si = (gsize)(y + oy) * rw + (x + ox);
      guint8 *d = rgba + ((gsize)y * w + x) * 4;
      memcpy(d, rgb + si * c, 3);
      d[3] = src && src->has_alpha ? src->rgba[si * 4 + 3] : 255;
    }
  g_free(rgb);
  *out_w = w;
  *out_h = h;
  return rgba;
}

GimpLayer *bagel_result_layer(GimpImage *image, const BagelProtoImage *result,
                              const BagelPlacement *place, GError **error) {
  if (!result->pixels || result->width <= 0) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_FORMAT, "bagel-engine returned no image");
    return NULL;
  }
  int w, h;
  guint8 *rgba = compose(result, place, &w, &h, error);
  if (!rgba) return NULL;
  const BagelSource *src = place->src;
  int x = src ? src->off_x + src->bx : 0, y = src ? src->off_y + src->by : 0;

  /* One undo group: a single Undo removes the layer with its pixels, mask and parasite. */
  gimp_image_undo_group_start(image);
  bagel_trace("undo-group-start");
  GimpLayer *layer = gimp_layer_new(image, place->name, w, h, layer_type(image), 100.0,
                                    gimp_image_get_default_new_layer_mode(image));
  GimpLayer *parent = place->above ? GIMP_LAYER(gimp_item_get_parent(GIMP_ITEM(place->above)))
                                   : NULL;
  int position = place->above ? gimp_image_get_item_position(image, GIMP_ITEM(place->above)) : 0;
  gimp_image_insert_layer(image, layer, parent, position);
  bagel_trace("insert-layer %s at %d", place->name, position);
  gimp_layer_set_offsets(layer, x, y);
  bagel_trace("set-offsets %d %d", x, y);

  GeglBuffer *buffer = gimp_drawable_get_buffer(GIMP_DRAWABLE(layer));
  gegl_buffer_set(buffer, GEGL_RECTANGLE(0, 0, w, h), 0, babl_format(RGBA_U8), rgba,
                  GEGL_AUTO_ROWSTRIDE);
  g_object_unref(buffer);
  gimp_drawable_update(GIMP_DRAWABLE(layer), 0, 0, w, h);
  bagel_trace("write-pixels %dx%d", w, h);
  g_free(rgba);

  if (src && src->selection) {
    /* The selection (with its feathering) decides what of the result shows: outside
     * it the mask is 0 and the image looks as before. */
    GimpLayerMask *mask = gimp_layer_create_mask(layer, GIMP_ADD_MASK_SELECTION);
    gimp_layer_add_mask(layer, mask);
    bagel_trace("add-mask selection");
  }
  GimpParasite *parasite = gimp_parasite_new(BAGEL_PARASITE_NAME,
                                             GIMP_PARASITE_PERSISTENT | GIMP_PARASITE_UNDOABLE,
                                             (guint32)strlen(place->settings_json) + 1,
                                             place->settings_json);
  gimp_item_attach_parasite(GIMP_ITEM(layer), parasite);
  gimp_parasite_free(parasite);
  bagel_trace("attach-parasite %s", BAGEL_PARASITE_NAME);
  gimp_image_set_selected_layers(image, (const GimpLayer *[]){layer, NULL});
  gimp_image_undo_group_end(image);
  bagel_trace("undo-group-end");
  return layer;
}
