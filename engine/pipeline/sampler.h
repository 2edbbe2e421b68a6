/* engine/pipeline/sampler.h — the rectified-flow sampler (docs/bagel-spec.md §6, §13).
 *
 * Schedule: t = linspace(1, 0, T) in fp32 (torch's two-sided formula), shifted
 * t ← s·t / (1 + (s−1)·t) in fp32, Δ_j = t_j − t_{j+1}; T−1 model evaluations.
 * Step j: CFG is active iff interval[0] < t_j ≤ interval[1]; the text branch runs when
 * its (gated) scale is > 1, the image branch likewise; the combine + Euler step is the
 * backend's cfg_euler op.  The CFG contexts are built by the caller once; the loop only
 * reads them (no cache is rebuilt or copied). */
#ifndef BAGEL_SAMPLER_H
#define BAGEL_SAMPLER_H

#include "bagel.h"
#include "context.h"
#include "dump.h"
#include "progress.h"

/* t[T] and dt[T−1] in fp32. */
void sampler_schedule(int T, float shift, float *t, float *dt);

/* Check the knobs (steps ≥ 2, finite scales ≥ 0, interval inside [0, 1], shift > 0,
 * renorm_min in [0, 1]). */
gboolean sampler_check(const BagelSampler *s, GError **error);

/* Run the loop on x[h·w, C] (host fp32: the initial noise in, the final latent out).
 * ut / ui may be NULL when that branch can never run.  Dump names: x_t.<j>, v.<j>,
 * v_cond.<j>, v_text.<j>, v_img.<j>. */
gboolean sampler_run(BagelModel *m, Arena *a, Ctx *cond, Ctx *ut, Ctx *ui, int h, int w,
                     const BagelSampler *s, float *x, Progress *prog, Dump *dump,
                     GError **error);

#endif
