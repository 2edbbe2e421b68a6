/* tests/server/fixture.h — what the bagel-engine tests share: a private runtime
 * directory and fake model per test, engines started through the client library (as
 * the plug-in starts them) and stopped at teardown, and jobs whose results the test
 * double (fake_engine.c) makes predictable. */
#ifndef BAGEL_TEST_SERVER_FIXTURE_H
#define BAGEL_TEST_SERVER_FIXTURE_H

#include <gio/gio.h>

#include "client.h"

extern const char *engine_path;  /* bagel-engine-fake ($BAGEL_TEST_ENGINE) */

typedef struct {
  char *runtime;            /* XDG_RUNTIME_DIR */
  char *model;              /* a complete (fake) model directory */
  GArray *pids;             /* engines started, stopped at teardown */
} Fx;

void make_model_dir(const char *dir, const char *skip);
void rm_rf(const char *path);
void fx_setup(Fx *fx, gconstpointer data);
void fx_teardown(Fx *fx, gconstpointer data);
gboolean engine_alive(GPid pid);
void stop_engine(GPid pid);
BagelClient *connect_engine(Fx *fx);
BagelMsg *status(BagelClient *c);
guint8 fixture_pixel(int x, int y, int c, int salt);
/* An edit job on a w×h image of fixture_pixel(…, salt). */
BagelMsg *edit_job(int w, int h, int channels, int salt, gint64 seed, int steps);
/* The fake's edit: out = 255 − in + seed (mod 256), RGB. */
void assert_edit_result(const BagelMsg *r, int w, int h, int salt, gint64 seed);

#define ADD_FX_TEST(path, fn) g_test_add(path, Fx, NULL, fx_setup, fn, fx_teardown)

/* test_server_setup.c */
void add_setup_tests(void);

#endif
