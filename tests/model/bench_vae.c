/* tests/model/bench_vae.c — time the VAE on the CPU backend (not a test: a tool).
 *
 *   bagel-mkckpt --config tests/data/vae-real.json --out /tmp/vae-real
 *   bench_vae /tmp/vae-real [THREADS [SIZE...]]      (default: all cores, 256 512)
 *
 * For each square SIZE: encode a random SIZE×SIZE image and decode a random
 * SIZE/8 latent, printing wall time, process CPU time, FLOPs (2·MAC of the convs and the attention
 * matmuls, counted by the model) and GFLOP/s, and the arena's peak. */
#include <glib.h>
#include <stdlib.h>
#include <time.h>

#include "checkpoint.h"
#include "vae.h"

/* CPU seconds of the whole process (all threads): on a shared machine the wall time
 * depends on the other load, this does not (much). */
static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static BkTensor random_tensor(BkBackend *be, Arena *a, GRand *r, int64_t c, int64_t h,
                              int64_t w) {
  BkTensor t = arena_tensor(a, BK_F32, 3, (int64_t[]){c, h, w});
  float *v = g_new(float, c * h * w);
  for (int64_t i = 0; i < c * h * w; i++) v[i] = (float)g_rand_double_range(r, -1, 1);
  be->ops->upload(be, &t, v);
  g_free(v);
  return t;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    g_printerr("usage: %s CKPT_DIR [THREADS [SIZE...]]\n", argv[0]);
    return 2;
  }
  GError *err = NULL;
  Checkpoint *ck = checkpoint_open(argv[1], &err);
  if (!ck) {
    g_printerr("%s\n", err->message);
    return 1;
  }
  int threads = argc > 2 ? atoi(argv[2]) : 0;
  BkBackend *be = bk_cpu_new(threads);
  VaeModel *m = vae_load(be, ck, &err);
  if (!m) {
    g_printerr("%s\n", err->message);
    return 1;
  }
  const int f = vae_downsample_factor(&m->cfg);
  g_print("VAE ch %d, %d levels, z %d; %d thread(s)\n", m->cfg.ch, m->cfg.levels,
          m->cfg.z_channels, threads > 0 ? threads : (int)g_get_num_processors());
  GRand *r = g_rand_new_with_seed(1);
  int nsizes = argc > 3 ? argc - 3 : 2;
  for (int s = 0; s < nsizes; s++) {
    int size = argc > 3 ? atoi(argv[3 + s]) : (s ? 512 : 256);
    Arena a;
    arena_init(&a, be, 64 << 20);
    BkTensor img = random_tensor(be, &a, r, 3, size, size);
    BkTensor z = random_tensor(be, &a, r, m->cfg.z_channels, size / f, size / f);
    BkTensor out;
    gint64 t0 = g_get_monotonic_time();
    double c0 = cpu_seconds();
    if (!vae_encode(m, &a, &img, &out, NULL, &err)) {
      g_printerr("%s\n", err->message);
      return 1;
    }
    double te = (g_get_monotonic_time() - t0) * 1e-6, fe = m->last_flops;
    double ce = cpu_seconds() - c0;
    t0 = g_get_monotonic_time();
    c0 = cpu_seconds();
    if (!vae_decode(m, &a, &z, &out, NULL, &err)) {
      g_printerr("%s\n", err->message);
      return 1;
    }
    double td = (g_get_monotonic_time() - t0) * 1e-6, fd = m->last_flops;
    double cd = cpu_seconds() - c0;
    g_print("%4dx%-4d encode %7.2f s (%7.2f cpu-s) %7.1f GFLOP %6.1f GFLOP/s | decode %7.2f s "
            "(%7.2f cpu-s) %7.1f GFLOP %6.1f GFLOP/s | arena peak %.0f MB\n", size, size, te,
            ce, fe * 1e-9, fe * 1e-9 / te, td, cd, fd * 1e-9, fd * 1e-9 / td,
            a.peak / 1048576.0);
    arena_clear(&a);
  }
  g_rand_free(r);
  vae_free(m);
  bk_backend_free(be);
  checkpoint_free(ck);
  return 0;
}
