/* plugin/pixels.h — layers in and out: read the active layer (or the selection's part of
 * it) as 8-bit sRGB through GEGL/babl whatever the image mode, prepare the job's image,
 * and write a result back as a NEW layer above the source, in one undo group, with the
 * settings parasite and, for a selection, the selection as the layer's mask.  The source
 * layer is never written.
 */
#ifndef BAGEL_PLUGIN_PIXELS_H
#define BAGEL_PLUGIN_PIXELS_H

#include <libgimp/gimp.h>

#include "protocol.h"

G_BEGIN_DECLS

typedef struct {
  GimpLayer *layer;
  int off_x, off_y;          /* the layer's offsets in the image */
  /* the region read, in layer coordinates: the whole layer, or the selection's bounds
   * grown by a margin of context (clamped to the layer) */
  int x, y, width, height;
  /* the region the result covers, in layer coordinates: the whole layer, or the
   * selection's bounds */
  int bx, by, bwidth, bheight;
  gboolean selection;        /* the result is masked by the selection */
  gboolean has_alpha;
  guint8 *rgba;              /* width × height R'G'B'A u8 */
} BagelSource;

/* Read `layer` of `image`.  use_selection with a non-empty selection: only the part of
 * the layer the selection touches (an error when it touches none). */
gboolean bagel_source_read(GimpImage *image, GimpLayer *layer, gboolean use_selection,
                           BagelSource *src, GError **error);
void bagel_source_clear(BagelSource *src);

/* Attach the source pixels to the job: RGBA when the layer has alpha, else RGB; sides
 * longer than BAGEL_SEND_MAX_SIDE are first scaled to the model's size. */
gboolean bagel_source_to_job(const BagelSource *src, BagelMsg *job, GError **error);

/* Resample 8-bit pixels (3 or 4 channels) to dst_w × dst_h with GEGL. */
guint8 *bagel_resample(const guint8 *pixels, int width, int height, int channels,
                       int dst_w, int dst_h, GError **error);

/* What to make of a result image. */
typedef struct {
  const char *name;          /* the layer name */
  const char *settings_json; /* the parasite */
  GimpLayer *above;          /* insert above this layer (NULL: at the top) */
  const BagelSource *src;    /* edit: the source (size, offsets, alpha, mask); NULL for
                                generate */
  int width, height;         /* generate: the layer size (at offsets 0, 0) */
} BagelPlacement;

/* Create the new layer from the engine's RGB result (scaled to the placement's size). */
GimpLayer *bagel_result_layer(GimpImage *image, const BagelProtoImage *result,
                              const BagelPlacement *place, GError **error);

/* Development aid for the GIMP tests: with BAGEL_PLUGIN_TRACE=<file>, the image changes
 * the plug-in makes are appended to that file, one per line. */
void bagel_trace(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

G_END_DECLS
#endif
