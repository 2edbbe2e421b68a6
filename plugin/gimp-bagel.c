/* plugin/gimp-bagel.c — the GIMP 3 plug-in: registers the procedures of procedures.h and
 * runs them: read the layer (pixels.h), send the job to bagel-engine (engine-link.h),
 * put the result in a new layer (pixels.h) or show the answer (dialogs.h).
 * Installed as plug-ins/gimp-bagel/gimp-bagel, with bagel-engine beside it.
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <string.h>

#include "dialogs.h"
#include "engine-link.h"
#include "pixels.h"
#include "procedures.h"
#include "settings.h"

#define PLUG_IN_BINARY "gimp-bagel"

typedef struct {
  GimpPlugIn parent_instance;
} BagelPlugIn;

typedef struct {
  GimpPlugInClass parent_class;
} BagelPlugInClass;

#define BAGEL_TYPE_PLUG_IN (bagel_plug_in_get_type())
GType bagel_plug_in_get_type(void);
G_DEFINE_TYPE(BagelPlugIn, bagel_plug_in, GIMP_TYPE_PLUG_IN)

static GimpValueArray *run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                           GimpDrawable **drawables, GimpProcedureConfig *config,
                           gpointer run_data);

static GList *query_procedures(GimpPlugIn *plug_in) {
  GList *list = NULL;
  for (int k = 0; k < BAGEL_PROC_N; k++)
    list = g_list_append(list, g_strdup(bagel_proc_name((BagelProcKind)k)));
  return list;
}

static GimpProcedure *create_procedure(GimpPlugIn *plug_in, const char *name) {
  BagelProcKind kind = bagel_proc_kind_from_name(name);
  return kind == BAGEL_PROC_N ? NULL : bagel_procedure_new(plug_in, kind, run);
}

static void bagel_plug_in_class_init(BagelPlugInClass *klass) {
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS(klass);
  plug_in_class->query_procedures = query_procedures;
  plug_in_class->create_procedure = create_procedure;
  plug_in_class->set_i18n = NULL;
}

static void bagel_plug_in_init(BagelPlugIn *self) {}

/* ---- running ------------------------------------------------------------------------ */

static GimpValueArray *fail(GimpProcedure *procedure, GError *error) {
  GimpPDBStatusType status =
      g_error_matches(error, BAGEL_ERROR, BAGEL_ERROR_CANCELLED) ? GIMP_PDB_CANCEL
                                                                  : GIMP_PDB_EXECUTION_ERROR;
  if (status == GIMP_PDB_CANCEL) g_clear_error(&error);
  return gimp_procedure_new_return_values(procedure, status, error);
}

/* The one layer the procedure works on. */
static GimpLayer *the_layer(GimpDrawable **drawables, GError **error) {
  int n = 0;
  while (drawables && drawables[n]) n++;
  if (n != 1 || !GIMP_IS_LAYER(drawables[0]) || GIMP_IS_LAYER_MASK(drawables[0])) {
    g_set_error(error, BAGEL_ERROR, BAGEL_ERROR_INVALID_ARG,
                n == 1 ? "select a layer (not a channel or a mask)"
                       : "select exactly one layer (%d drawables are selected)", n);
    return NULL;
  }
  return GIMP_LAYER(drawables[0]);
}

static GimpValueArray *layer_values(GimpProcedure *procedure, GimpLayer *layer,
                                    const char *reasoning) {
  GimpValueArray *rv = gimp_procedure_new_return_values(procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_LAYER(rv, 1, layer);
  GIMP_VALUES_SET_STRING(rv, 2, reasoning ? reasoning : "");
  return rv;
}

/* Edit, style, multiview: the layer (or its selected part) in, a new layer out. */
static GimpValueArray *run_edit(GimpProcedure *procedure, GimpRunMode run_mode,
                                GimpImage *image, GimpLayer *layer, BagelSettings *s) {
  GError *error = NULL;
  BagelSource src;
  if (!bagel_source_read(image, layer, s->use_selection, &src, &error))
    return fail(procedure, error);
  BagelMsg *job = bagel_settings_job(s);
  char *engine = NULL;
  BagelMsg *res = NULL;
  if (bagel_source_to_job(&src, job, &error))
    res = bagel_engine_run(job, s->kind == BAGEL_PROC_EDIT ? "editing"
                                : s->kind == BAGEL_PROC_STYLE ? "restyling" : "turning",
                           &engine, &error);
  GimpLayer *out = NULL;
  if (res) {
    char *name = bagel_settings_layer_name(s, res->seed);
    BagelOutcome o = {res->seed, src.off_x + src.bx, src.off_y + src.by, src.bwidth,
                      src.bheight, res->image.width, res->image.height, engine};
    char *json = bagel_settings_to_json(s, &o);
    BagelPlacement place = {name, json, layer, &src, 0, 0};
    out = bagel_result_layer(image, &res->image, &place, &error);
    g_free(json);
    g_free(name);
  }
  bagel_source_clear(&src);
  bagel_msg_free(job);
  g_free(engine);
  if (!out) {
    bagel_msg_free(res);
    return fail(procedure, error);
  }
  if (run_mode != GIMP_RUN_NONINTERACTIVE) gimp_displays_flush();
  if (run_mode == GIMP_RUN_INTERACTIVE && res->reasoning && *res->reasoning)
    bagel_dialog_show_text("BAGEL — Reasoning", res->reasoning, NULL);
  GimpValueArray *rv = layer_values(procedure, out, res->reasoning);
  bagel_msg_free(res);
  return rv;
}

static GimpValueArray *run_generate(GimpProcedure *procedure, GimpRunMode run_mode,
                                    GimpImage *image, GimpLayer *above, BagelSettings *s) {
  GError *error = NULL;
  BagelMsg *job = bagel_settings_job(s);
  char *engine = NULL;
  BagelMsg *res = bagel_engine_run(job, "generating", &engine, &error);
  bagel_msg_free(job);
  GimpLayer *out = NULL;
  if (res) {
    char *name = bagel_settings_layer_name(s, res->seed);
    BagelOutcome o = {res->seed, 0, 0, s->width, s->height, res->image.width,
                      res->image.height, engine};
    char *json = bagel_settings_to_json(s, &o);
    BagelPlacement place = {name, json, above, NULL, s->width, s->height};
    out = bagel_result_layer(image, &res->image, &place, &error);
    g_free(json);
    g_free(name);
  }
  g_free(engine);
  if (!out) {
    bagel_msg_free(res);
    return fail(procedure, error);
  }
  if (run_mode != GIMP_RUN_NONINTERACTIVE) gimp_displays_flush();
  if (run_mode == GIMP_RUN_INTERACTIVE && res->reasoning && *res->reasoning)
    bagel_dialog_show_text("BAGEL — Reasoning", res->reasoning, NULL);
  GimpValueArray *rv = layer_values(procedure, out, res->reasoning);
  bagel_msg_free(res);
  return rv;
}

static GimpValueArray *run_describe(GimpProcedure *procedure, GimpRunMode run_mode,
                                    GimpImage *image, GimpLayer *layer, BagelSettings *s) {
  GError *error = NULL;
  BagelSource src;
  if (!bagel_source_read(image, layer, FALSE, &src, &error)) return fail(procedure, error);
  BagelMsg *job = bagel_settings_job(s);
  BagelMsg *res = NULL;
  if (bagel_source_to_job(&src, job, &error))
    res = bagel_engine_run(job, "describing", NULL, &error);
  bagel_source_clear(&src);
  bagel_msg_free(job);
  if (!res) return fail(procedure, error);
  if (run_mode == GIMP_RUN_INTERACTIVE)
    bagel_dialog_show_text("BAGEL — Describe", res->text, res->reasoning);
  GimpValueArray *rv = gimp_procedure_new_return_values(procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_STRING(rv, 1, res->text ? res->text : "");
  GIMP_VALUES_SET_STRING(rv, 2, res->reasoning ? res->reasoning : "");
  bagel_msg_free(res);
  return rv;
}

static GimpValueArray *run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                           GimpDrawable **drawables, GimpProcedureConfig *config,
                           gpointer run_data) {
  BagelProcKind kind = (BagelProcKind)GPOINTER_TO_INT(run_data);
  gegl_init(NULL, NULL);
  GError *error = NULL;
  GimpLayer *layer = the_layer(drawables, kind == BAGEL_PROC_GENERATE ? NULL : &error);
  if (!layer && kind != BAGEL_PROC_GENERATE)
    return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, error);

  if (run_mode == GIMP_RUN_INTERACTIVE) {
    gimp_ui_init(PLUG_IN_BINARY);
    if (!bagel_dialog_run(procedure, config, kind))
      return gimp_procedure_new_return_values(procedure, GIMP_PDB_CANCEL, NULL);
  }
  BagelSettings s;
  if (!bagel_procedure_settings(kind, config, gimp_image_get_width(image),
                                gimp_image_get_height(image), &s, &error)) {
    bagel_settings_clear(&s);
    return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, error);
  }
  GimpValueArray *rv;
  switch (kind) {
  case BAGEL_PROC_GENERATE: rv = run_generate(procedure, run_mode, image, layer, &s); break;
  case BAGEL_PROC_DESCRIBE: rv = run_describe(procedure, run_mode, image, layer, &s); break;
  default: rv = run_edit(procedure, run_mode, image, layer, &s); break;
  }
  bagel_settings_clear(&s);
  return rv;
}

GIMP_MAIN(BAGEL_TYPE_PLUG_IN)
