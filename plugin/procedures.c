/* plugin/procedures.c — procedure registration and config reading (see procedures.h).
 * Defaults are the official notebook values (docs/bagel-spec.md §6.1): edit cfg_text 4,
 * cfg_img 2, interval [0, 1], shift 3, renorm text_channel; text-to-image cfg_text 4,
 * interval [0.4, 1], shift 3, renorm global; 50 timesteps. */
#include "procedures.h"

#include <string.h>

#include "presets.h"
#include "sizes.h"

static const char *const kind_presets[BAGEL_PROC_N] = {
  NULL, NULL, NULL, "style", "multiview",
};

BagelProcKind bagel_proc_kind_from_name(const char *name) {
  for (int k = 0; k < BAGEL_PROC_N; k++)
    if (!strcmp(name, bagel_proc_name((BagelProcKind)k))) return (BagelProcKind)k;
  return BAGEL_PROC_N;
}

static gboolean is_edit_like(BagelProcKind k) {
  return k == BAGEL_PROC_EDIT || k == BAGEL_PROC_STYLE || k == BAGEL_PROC_MULTIVIEW;
}

static GimpChoice *renorm_choice(void) {
  return gimp_choice_new_with_values(
      "global", 0, "Global", "Rescale the guided velocity as a whole",
      "channel", 1, "Per channel", "Rescale each latent channel",
      "text-channel", 2, "Text, per channel", "Rescale the text-guided velocity per channel",
      NULL);
}

/* The presets as a choice; when the file cannot be read, a single entry whose run
 * reports why. */
static GimpChoice *preset_choice(const char *kind, char **first) {
  GimpChoice *choice = gimp_choice_new();
  GError *e = NULL;
  BagelPresetList *list = bagel_presets_load(kind, &e);
  if (!list) {
    gimp_choice_add(choice, "unavailable", 0, "(presets unavailable)", e->message);
    *first = g_strdup("unavailable");
    g_error_free(e);
    return choice;
  }
  for (guint i = 0; i < list->presets->len; i++) {
    const BagelPreset *p = g_ptr_array_index(list->presets, i);
    gimp_choice_add(choice, p->id, (int)i, p->name, p->instruction);
  }
  *first = g_strdup(((BagelPreset *)g_ptr_array_index(list->presets, 0))->id);
  bagel_presets_free(list);
  return choice;
}

/* Mnemonics are unique within each dialog and avoid the dialog's own buttons (Load/Save
 * Settings, Reset, Cancel, OK): GIMP checks them. */
static void add_sampler_args(GimpProcedure *p, BagelProcKind kind) {
  gboolean gen = kind == BAGEL_PROC_GENERATE;
  gimp_procedure_add_int_argument(p, "steps", "St_eps",
      "Timesteps of the flow sampler (the official num_timesteps: steps − 1 model "
      "evaluations)", 2, 1000, 50, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument(p, "cfg-text", "Text _guidance",
      "Classifier-free guidance scale for the text", 0.0, 100.0, 4.0, G_PARAM_READWRITE);
  if (!gen)
    gimp_procedure_add_double_argument(p, "cfg-image", "I_mage guidance",
        "Classifier-free guidance scale for the input image", 0.0, 100.0, 2.0,
        G_PARAM_READWRITE);
  gimp_procedure_add_double_argument(p, "cfg-interval-start", "Guidance st_art",
      "Guidance applies from this fraction of the schedule to its end", 0.0, 1.0,
      gen ? 0.4 : 0.0, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument(p, "timestep-shift", "Timestep shi_ft",
      "Shift of the timestep schedule towards high noise", 0.01, 100.0, 3.0, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument(p, "renorm-type", "Re_norm type",
      "How the guided velocity is renormalised", renorm_choice(),
      gen ? "global" : "text-channel", G_PARAM_READWRITE);
  gimp_procedure_add_double_argument(p, "renorm-min", "Renorm minim_um",
      "Lower bound of the renormalisation factor", 0.0, 100.0, 0.0, G_PARAM_READWRITE);
}

static void add_common_args(GimpProcedure *p) {
  gimp_procedure_add_boolean_argument(p, "think", "_Think first",
      "Let the model reason before answering; the reasoning is shown and returned", FALSE,
      G_PARAM_READWRITE);
  gimp_procedure_add_int_argument(p, "seed", "See_d",
      "Random seed; -1 picks one (the seed used is in the layer name and its parasite)", -1,
      G_MAXINT32, -1, G_PARAM_READWRITE);
}

GimpProcedure *bagel_procedure_new(GimpPlugIn *plug_in, BagelProcKind kind,
                                   GimpRunImageFunc run) {
  GimpProcedure *p = gimp_image_procedure_new(plug_in, bagel_proc_name(kind),
                                              GIMP_PDB_PROC_TYPE_PLUGIN, run,
                                              GINT_TO_POINTER(kind), NULL);
  gimp_procedure_set_image_types(p, "*");
  gimp_procedure_set_attribution(p, "gimp-bagel authors", "gimp-bagel authors", "2025");
  gimp_procedure_set_sensitivity_mask(p, kind == BAGEL_PROC_GENERATE
      ? GIMP_PROCEDURE_SENSITIVE_DRAWABLE | GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES
      : GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
  switch (kind) {
  case BAGEL_PROC_EDIT:
    gimp_procedure_set_menu_label(p, "_Edit…");
    gimp_procedure_set_documentation(p, "Edit the layer with BAGEL from an instruction",
        "Edits the active layer (or the selection) as the instruction says and adds the "
        "result as a new layer above it; the source layer is not changed.", NULL);
    gimp_procedure_add_string_argument(p, "instruction", "_Instruction",
        "What to change, in words", "", G_PARAM_READWRITE);
    break;
  case BAGEL_PROC_GENERATE:
    gimp_procedure_set_menu_label(p, "_Generate…");
    gimp_procedure_set_documentation(p, "Generate an image with BAGEL from a prompt",
        "Generates an image from the prompt as a new layer, the size of the canvas unless "
        "width and height say otherwise.", NULL);
    gimp_procedure_add_string_argument(p, "prompt", "_Prompt", "What to draw", "",
                                       G_PARAM_READWRITE);
    break;
  case BAGEL_PROC_DESCRIBE:
    gimp_procedure_set_menu_label(p, "_Describe…");
    gimp_procedure_set_documentation(p, "Describe the layer or answer a question about it",
        "Shows BAGEL's answer in a dialog it can be copied from and returns it.", NULL);
    gimp_procedure_add_string_argument(p, "question", "_Question", "What to ask about the image",
                                       BAGEL_DEFAULT_QUESTION, G_PARAM_READWRITE);
    break;
  case BAGEL_PROC_STYLE:
  case BAGEL_PROC_MULTIVIEW: {
    gboolean style = kind == BAGEL_PROC_STYLE;
    gimp_procedure_set_menu_label(p, style ? "_Style…" : "_Multiview…");
    gimp_procedure_set_documentation(p,
        style ? "Restyle the layer with BAGEL (watercolor, oil painting, …)"
              : "Show the layer's object from another side with BAGEL",
        "An edit with a preset instruction (resources/presets) plus an optional extra one; "
        "the result is a new layer above the source.", NULL);
    char *first = NULL;
    GimpChoice *presets = preset_choice(kind_presets[kind], &first);
    gimp_procedure_add_choice_argument(p, "preset", style ? "Style _preset" : "_View",
        "The preset", presets, first, G_PARAM_READWRITE);
    g_free(first);
    gimp_procedure_add_string_argument(p, "extra-instruction", "E_xtra instruction",
        "Added after the preset's instruction (may be empty)", "", G_PARAM_READWRITE);
    break;
  }
  case BAGEL_PROC_N:
    break;
  }
  gimp_procedure_add_menu_path(p, BAGEL_MENU_PATH);  /* after the menu label */

  add_common_args(p);
  if (kind == BAGEL_PROC_DESCRIBE) {
    gimp_procedure_add_int_argument(p, "max-tokens", "_Maximum length",
        "The longest answer, in tokens", 1, 8192, 512, G_PARAM_READWRITE);
    gimp_procedure_add_string_return_value(p, "text", "Answer", "The answer", "",
                                           G_PARAM_READWRITE);
  } else {
    if (kind == BAGEL_PROC_GENERATE) {
      gimp_procedure_add_int_argument(p, "width", "_Width",
          "Width of the new layer (0: the canvas width)", 0, BAGEL_PROTO_MAX_DIM, 0,
          G_PARAM_READWRITE);
      gimp_procedure_add_int_argument(p, "height", "_Height",
          "Height of the new layer (0: the canvas height)", 0, BAGEL_PROTO_MAX_DIM, 0,
          G_PARAM_READWRITE);
    }
    add_sampler_args(p, kind);
    if (is_edit_like(kind))
      gimp_procedure_add_boolean_argument(p, "use-selection", "Edit onl_y the selection",
          "With a selection, edit only what it covers: its bounds (with some context) are "
          "edited and the selection becomes the new layer's mask", TRUE, G_PARAM_READWRITE);
    gimp_procedure_add_layer_return_value(p, "layer", "Layer", "The new layer", FALSE,
                                          G_PARAM_READWRITE);
  }
  gimp_procedure_add_string_return_value(p, "reasoning", "Reasoning",
      "The model's reasoning when think is on (else empty)", "", G_PARAM_READWRITE);
  return p;
}

gboolean bagel_procedure_settings(BagelProcKind kind, GimpProcedureConfig *config,
                                  int canvas_width, int canvas_height, BagelSettings *s,
                                  GError **error) {
  memset(s, 0, sizeof *s);
  s->kind = kind;
  int seed = -1;
  const char *text_arg = kind == BAGEL_PROC_EDIT ? "instruction"
                         : kind == BAGEL_PROC_GENERATE ? "prompt"
                         : kind == BAGEL_PROC_DESCRIBE ? "question" : "extra-instruction";
  g_object_get(config, text_arg, &s->text, "think", &s->think, "seed", &seed, NULL);
  s->seed = seed;
  if (kind == BAGEL_PROC_DESCRIBE) {
    g_object_get(config, "max-tokens", &s->max_tokens, NULL);
  } else {
    g_object_get(config, "steps", &s->steps, "cfg-text", &s->cfg_text,
                 "cfg-interval-start", &s->cfg_interval_start,
                 "timestep-shift", &s->timestep_shift, "renorm-type", &s->renorm,
                 "renorm-min", &s->renorm_min, NULL);
  }
  if (is_edit_like(kind))
    g_object_get(config, "cfg-image", &s->cfg_image, "use-selection", &s->use_selection, NULL);
  if (kind == BAGEL_PROC_GENERATE) {
    g_object_get(config, "width", &s->width, "height", &s->height, NULL);
    if (s->width <= 0) s->width = canvas_width;
    if (s->height <= 0) s->height = canvas_height;
    bagel_generate_size(s->width, s->height, &s->gen_width, &s->gen_height);
  }
  if (kind_presets[kind]) {
    g_object_get(config, "preset", &s->preset, NULL);
    BagelPresetList *list = bagel_presets_load(kind_presets[kind], error);
    if (!list) return FALSE;
    const BagelPreset *p = bagel_presets_find(list, s->preset);
    if (p) {
      s->preset_name = g_strdup(p->name);
      s->preset_instruction = g_strdup(p->instruction);
    }
    bagel_presets_free(list);
  }
  return bagel_settings_validate(s, error);
}
