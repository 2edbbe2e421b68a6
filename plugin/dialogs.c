/* plugin/dialogs.c — procedure dialogs and the text dialog (see dialogs.h). */
#include "dialogs.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define RESPONSE_COPY 1

/* ---- the test hook ----------------------------------------------------------------- */

static void dump_widget(GtkWidget *w, JsonBuilder *b);

static void dump_child(GtkWidget *child, gpointer data) { dump_widget(child, data); }

static void dump_widget(GtkWidget *w, JsonBuilder *b) {
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, G_OBJECT_TYPE_NAME(w));
  json_builder_set_member_name(b, "visible");
  json_builder_add_boolean_value(b, gtk_widget_get_visible(w));
  if (GTK_IS_LABEL(w)) {
    json_builder_set_member_name(b, "label");
    json_builder_add_string_value(b, gtk_label_get_text(GTK_LABEL(w)));
  }
  if (GTK_IS_BUTTON(w) && gtk_button_get_label(GTK_BUTTON(w))) {
    json_builder_set_member_name(b, "label");
    json_builder_add_string_value(b, gtk_button_get_label(GTK_BUTTON(w)));
  }
  if (GTK_IS_TOGGLE_BUTTON(w)) {
    json_builder_set_member_name(b, "active");
    json_builder_add_boolean_value(b, gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(w)));
  }
  if (GTK_IS_EXPANDER(w)) {
    json_builder_set_member_name(b, "expanded");
    json_builder_add_boolean_value(b, gtk_expander_get_expanded(GTK_EXPANDER(w)));
  }
  if (GTK_IS_SPIN_BUTTON(w)) {
    json_builder_set_member_name(b, "value");
    json_builder_add_double_value(b, gtk_spin_button_get_value(GTK_SPIN_BUTTON(w)));
  }
  if (GTK_IS_TEXT_VIEW(w)) {
    GtkTextBuffer *tb = gtk_text_view_get_buffer(GTK_TEXT_VIEW(w));
    GtkTextIter a, z;
    gtk_text_buffer_get_bounds(tb, &a, &z);
    char *text = gtk_text_buffer_get_text(tb, &a, &z, FALSE);
    json_builder_set_member_name(b, "text");
    json_builder_add_string_value(b, text);
    json_builder_set_member_name(b, "editable");
    json_builder_add_boolean_value(b, gtk_text_view_get_editable(GTK_TEXT_VIEW(w)));
    g_free(text);
  }
  if (GTK_IS_CONTAINER(w)) {
    json_builder_set_member_name(b, "children");
    json_builder_begin_array(b);
    /* forall: internal children too (an expander's title label) */
    gtk_container_forall(GTK_CONTAINER(w), dump_child, b);
    json_builder_end_array(b);
  }
  json_builder_end_object(b);
}

static void open_expanders(GtkWidget *w, gpointer data) {
  if (GTK_IS_EXPANDER(w)) gtk_expander_set_expanded(GTK_EXPANDER(w), TRUE);
  if (GTK_IS_CONTAINER(w)) gtk_container_forall(GTK_CONTAINER(w), open_expanders, data);
}

static void settle(void) {
  gint64 until = g_get_monotonic_time() + 400 * 1000;
  while (g_get_monotonic_time() < until) {
    while (gtk_events_pending()) gtk_main_iteration();
    g_usleep(10 * 1000);
  }
}

/* With BAGEL_DIALOG_TEST set: record the dialog and return TRUE; the caller then takes
 * it as accepted (OK) without running it. */
static gboolean dialog_test(GtkWidget *dialog, const char *name) {
  const char *prefix = g_getenv("BAGEL_DIALOG_TEST");
  if (!prefix || !*prefix) return FALSE;
  if (g_strcmp0(g_getenv("BAGEL_DIALOG_TEST_EXPAND"), "1") == 0) open_expanders(dialog, NULL);
  gtk_widget_show(dialog);
  settle();
  JsonBuilder *b = json_builder_new();
  dump_widget(dialog, b);
  JsonGenerator *gen = json_generator_new();
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  char *path = g_strdup_printf("%s-%s.json", prefix, name);
  json_generator_to_file(gen, path, NULL);
  g_free(path);
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  GdkWindow *win = gtk_widget_get_window(dialog);
  if (win) {
    GdkPixbuf *shot = gdk_pixbuf_get_from_window(win, 0, 0, gdk_window_get_width(win),
                                                 gdk_window_get_height(win));
    if (shot) {
      path = g_strdup_printf("%s-%s.png", prefix, name);
      gdk_pixbuf_save(shot, path, "png", NULL, NULL);
      g_free(path);
      g_object_unref(shot);
    }
  }
  return TRUE;
}

/* ---- procedure dialogs --------------------------------------------------------------- */

gboolean bagel_dialog_run(GimpProcedure *procedure, GimpProcedureConfig *config,
                          BagelProcKind kind) {
  static const char *const titles[BAGEL_PROC_N] = {
    "BAGEL — Edit", "BAGEL — Generate", "BAGEL — Describe", "BAGEL — Style",
    "BAGEL — Multiview",
  };
  GtkWidget *dialog = gimp_procedure_dialog_new(procedure, config, titles[kind]);
  GimpProcedureDialog *d = GIMP_PROCEDURE_DIALOG(dialog);
  gboolean edit_like = kind == BAGEL_PROC_EDIT || kind == BAGEL_PROC_STYLE ||
                       kind == BAGEL_PROC_MULTIVIEW;
  const char *text_arg = kind == BAGEL_PROC_EDIT ? "instruction"
                         : kind == BAGEL_PROC_GENERATE ? "prompt"
                         : kind == BAGEL_PROC_DESCRIBE ? "question" : "extra-instruction";
  /* The text argument: a multi-line view in a frame titled with the argument's nick. */
  GtkWidget *text = gimp_procedure_dialog_get_widget(d, text_arg, GTK_TYPE_TEXT_VIEW);
  gtk_widget_set_size_request(text, 420, 80);
  gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(text), GTK_WRAP_WORD_CHAR);
  GParamSpec *pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(config), text_arg);
  GtkWidget *title = gimp_procedure_dialog_get_label(d, "text-title",
                                                     g_param_spec_get_nick(pspec), FALSE, TRUE);
  gtk_label_set_mnemonic_widget(GTK_LABEL(title), text);
  gimp_procedure_dialog_fill_frame(d, "text-frame", "text-title", FALSE, text_arg);

  /* What everyone sets on top; the sampler knobs in a collapsed expander. */
  GList *main = NULL;
  if (kind == BAGEL_PROC_STYLE || kind == BAGEL_PROC_MULTIVIEW)
    main = g_list_append(main, "preset");
  main = g_list_append(main, "text-frame");
  if (kind == BAGEL_PROC_GENERATE) {
    main = g_list_append(main, "width");
    main = g_list_append(main, "height");
  }
  main = g_list_append(main, "think");
  if (edit_like) main = g_list_append(main, "use-selection");

  if (kind == BAGEL_PROC_DESCRIBE) {
    gimp_procedure_dialog_fill_box(d, "advanced-box", "max-tokens", "seed", NULL);
  } else {
    GList *adv = g_list_append(NULL, "seed");
    adv = g_list_append(adv, "steps");
    adv = g_list_append(adv, "cfg-text");
    if (edit_like) adv = g_list_append(adv, "cfg-image");
    adv = g_list_append(adv, "cfg-interval-start");
    adv = g_list_append(adv, "timestep-shift");
    adv = g_list_append(adv, "renorm-type");
    adv = g_list_append(adv, "renorm-min");
    gimp_procedure_dialog_fill_box_list(d, "advanced-box", adv);
    g_list_free(adv);
  }
  gimp_procedure_dialog_get_label(d, "advanced-title", "Advanced", FALSE, FALSE);
  GtkWidget *expander = gimp_procedure_dialog_fill_expander(d, "advanced", "advanced-title",
                                                            FALSE, "advanced-box");
  gtk_expander_set_expanded(GTK_EXPANDER(expander), FALSE);
  main = g_list_append(main, "advanced");
  gimp_procedure_dialog_fill_list(d, main);
  g_list_free(main);

  gboolean run = dialog_test(dialog, bagel_proc_name(kind)) || gimp_procedure_dialog_run(d);
  gtk_widget_destroy(dialog);
  return run;
}

/* ---- the text dialog ------------------------------------------------------------------ */

static GtkWidget *text_view(const char *text) {
  GtkWidget *view = gtk_text_view_new();
  gtk_text_view_set_editable(GTK_TEXT_VIEW(view), FALSE);
  gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(view), GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_left_margin(GTK_TEXT_VIEW(view), 6);
  gtk_text_view_set_right_margin(GTK_TEXT_VIEW(view), 6);
  gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(view)), text, -1);
  GtkWidget *scrolled = gtk_scrolled_window_new(NULL, NULL);
  gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scrolled), GTK_POLICY_NEVER,
                                 GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_shadow_type(GTK_SCROLLED_WINDOW(scrolled), GTK_SHADOW_IN);
  gtk_widget_set_size_request(scrolled, 480, 160);
  gtk_container_add(GTK_CONTAINER(scrolled), view);
  return scrolled;
}

void bagel_dialog_show_text(const char *title, const char *text, const char *reasoning) {
  GtkWidget *dialog = gimp_dialog_new(title, "gimp-bagel-text", NULL, 0, NULL, NULL,
                                      "_Copy", RESPONSE_COPY, "_Close", GTK_RESPONSE_CLOSE,
                                      NULL);
  GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
  gtk_container_set_border_width(GTK_CONTAINER(box), 12);
  gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), box, TRUE,
                     TRUE, 0);
  gtk_box_pack_start(GTK_BOX(box), text_view(text ? text : ""), TRUE, TRUE, 0);
  if (reasoning && *reasoning) {
    GtkWidget *exp = gtk_expander_new("Reasoning");
    gtk_container_add(GTK_CONTAINER(exp), text_view(reasoning));
    gtk_box_pack_start(GTK_BOX(box), exp, FALSE, FALSE, 0);
  }
  gtk_widget_show_all(box);
  if (!dialog_test(dialog, "text")) {
    while (gimp_dialog_run(GIMP_DIALOG(dialog)) == RESPONSE_COPY) {
      GtkClipboard *clip = gtk_clipboard_get(GDK_SELECTION_CLIPBOARD);
      gtk_clipboard_set_text(clip, text ? text : "", -1);
      gtk_clipboard_store(clip);
    }
  }
  gtk_widget_destroy(dialog);
}
