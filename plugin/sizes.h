/* plugin/sizes.h — the model's image size rules, as the plug-in needs them.
 *
 * bagel_fit_size is the official MaxLongEdgeMinShortEdgeResize (BAGEL data/transforms.py),
 * including its quirks: Python's round() (half to even), the pixel budget applied as a
 * plain ratio, stride multiples of at least one stride.  The VAE side of BAGEL-7B-MoT uses
 * (1024, 512, 16, 14·14·9·1024).  The engine applies the same rule to what it receives;
 * the plug-in uses it to pre-scale very large layers before sending them and to size
 * text-to-image requests.
 */
#ifndef BAGEL_PLUGIN_SIZES_H
#define BAGEL_PLUGIN_SIZES_H

#include <glib.h>

G_BEGIN_DECLS

#define BAGEL_VAE_MAX_SIZE 1024
#define BAGEL_VAE_MIN_SIZE 512
#define BAGEL_VAE_STRIDE 16
#define BAGEL_VAE_MAX_PIXELS (14 * 14 * 9 * 1024)

/* Layers whose long side exceeds this are pre-scaled to the model's size by the plug-in
 * (the transfer would otherwise be large for nothing: the engine scales them down). */
#define BAGEL_SEND_MAX_SIDE 4096

void bagel_fit_size(int width, int height, int max_size, int min_size, int stride,
                    gint64 max_pixels, int *out_width, int *out_height);

/* The VAE size of an image of width × height (the size the engine edits at). */
void bagel_model_size(int width, int height, int *out_width, int *out_height);

/* The size text-to-image generates at for a layer of width × height: the aspect kept,
 * the long side 1024, both multiples of 16. */
void bagel_generate_size(int width, int height, int *out_width, int *out_height);

G_END_DECLS
#endif
