/* plugin/settings.h — what one run of a gimp-bagel procedure asked for, independent of
 * libgimp: the job it becomes (protocol.h), the new layer's name, and the JSON recorded
 * in the "gimp-bagel-settings" parasite of the new layer so the result can be reproduced
 * (same procedure, same arguments, the seed actually used).
 */
#ifndef BAGEL_PLUGIN_SETTINGS_H
#define BAGEL_PLUGIN_SETTINGS_H

#include <glib.h>

#include "presets.h"
#include "protocol.h"

G_BEGIN_DECLS

#define BAGEL_PARASITE_NAME "gimp-bagel-settings"
#define BAGEL_LAYER_NAME_MAX_CHARS 60

typedef enum {
  BAGEL_PROC_EDIT,
  BAGEL_PROC_GENERATE,
  BAGEL_PROC_DESCRIBE,
  BAGEL_PROC_STYLE,
  BAGEL_PROC_MULTIVIEW,
  BAGEL_PROC_N
} BagelProcKind;

typedef struct {
  BagelProcKind kind;
  char *text;                /* edit: instruction; generate: prompt; describe: question;
                                style/multiview: the extra instruction (may be empty) */
  char *preset;              /* style/multiview: the preset id */
  char *preset_name;         /* its human name (for the layer name) */
  char *preset_instruction;  /* its instruction */
  gboolean think;
  gint64 seed;               /* −1: random */
  int steps;
  double cfg_text, cfg_image, cfg_interval_start, timestep_shift, renorm_min;
  char *renorm;              /* "global" | "channel" | "text-channel" (GIMP spelling) */
  gboolean use_selection;
  int width, height;         /* generate: the layer size */
  int gen_width, gen_height; /* generate: the size the model generates at */
  int max_tokens;            /* describe */
} BagelSettings;

/* What the run produced, for the parasite. */
typedef struct {
  gint64 seed;
  int src_x, src_y, src_width, src_height;   /* the new layer's place in the image */
  int model_width, model_height;             /* the size the engine saw / returned */
  const char *engine;                        /* the engine's software string */
} BagelOutcome;

const char *bagel_proc_name(BagelProcKind kind);
void bagel_settings_clear(BagelSettings *s);

/* Refuse what the engine would refuse anyway, with a message for the user. */
gboolean bagel_settings_validate(const BagelSettings *s, GError **error);

/* The job the settings ask for (no image yet); the prompt is the full text sent. */
BagelMsg *bagel_settings_job(const BagelSettings *s);
char *bagel_settings_prompt(const BagelSettings *s);

/* "BAGEL: <text> (seed N)", the text cut to BAGEL_LAYER_NAME_MAX_CHARS characters. */
char *bagel_settings_layer_name(const BagelSettings *s, gint64 seed);

/* The parasite's JSON (schema "gimp-bagel-settings/1"). */
char *bagel_settings_to_json(const BagelSettings *s, const BagelOutcome *o);

G_END_DECLS
#endif
