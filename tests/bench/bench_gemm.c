/* tests/bench/bench_gemm.c — bf16 GEMM y = x·wᵀ on the model's shapes: the maintained
 * libraries in Debian against our kernels (docs/performance.md, "Choosing the GEMM").
 *
 *   build/tests/bench/bench_gemm [--threads N] [--reps R] [--m LIST] [--only LIST]
 *                                [--shapes KxN,...] [--weights-file FILE]
 *
 * Contenders, run interleaved (one call each per round, so that the machine's load hits
 * all alike), median of the rounds:
 *   ours-dpbf16  kernels/cpu/fast_gemm.c, VDPBF16PS, exact (pair order)
 *   ours-fma     kernels/cpu/fast_gemm.c, fp32 FMA on widened bf16, exact (pair order)
 *   onednn       oneDNN matmul, bf16 src/weights, fp32 dst, weights in the checkpoint
 *                layout (N×K row-major = tag "ba"), no reorder
 *   onednn-pack  the same with weights reordered once to oneDNN's blocked layout (a copy
 *                of the model, not what we ship; shows what packing is worth)
 *   openblas     cblas_sgemm on fp32 copies (Debian 12's OpenBLAS has no sbgemm, see
 *                below); a reference point only: fp32 weights are twice the bytes
 * Each oneDNN / OpenBLAS result is compared bit for bit with ours in the pair order (fp32
 * outputs, before any rounding): "mismatch" counts the outputs that differ.
 * M = 1 reads the weights from a pool larger than the last-level cache, as decode does;
 * with --weights-file the pool is that file (a checkpoint of >= 1 GiB) mapped and locked
 * in place, which is how the engine reads its weights: on this project's VM those pages
 * stream ~25% slower than a fresh buffer (docs/performance.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "fast_gemm.h"
#include "ops.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (float)((double)(rs >> 11) * 0x1p-53 * 2 - 1);
}

enum { C_DP, C_FMA, C_DNNL, C_DNNL_PACK, C_BLAS, NC };
static const char *cname[NC] = {"ours-dpbf16", "ours-fma", "onednn", "onednn-pack", "openblas-sgemm"};

typedef struct {
  int64_t M, N, K;
  int nw;                  /* weight copies in the pool */
  uint16_t **w;
  uint16_t *x;
  float *y, *yref;
  float *xf, *wf;          /* fp32 copies for OpenBLAS (first pool entry only) */
#ifdef BENCH_HAVE_DNNL
  dnnl_engine_t eng;
  dnnl_stream_t st;
  dnnl_primitive_t mm, mm_pack;
  dnnl_memory_t a, c, *b, b_pack;
#endif
} Case;

#ifdef BENCH_HAVE_DNNL
#define DN(call)                                                                   \
  do {                                                                             \
    dnnl_status_t s_ = (call);                                                     \
    if (s_ != dnnl_success) {                                                      \
      fprintf(stderr, "oneDNN: %s failed (%d)\n", #call, (int)s_);                 \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

static void dnnl_setup(Case *c) {
  DN(dnnl_engine_create(&c->eng, dnnl_cpu, 0));
  DN(dnnl_stream_create(&c->st, c->eng, dnnl_stream_default_flags));
  dnnl_memory_desc_t a_md, b_md, bany_md, c_md;
  dnnl_dims_t ad = {c->M, c->K}, bd = {c->K, c->N}, cd = {c->M, c->N};
  DN(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_bf16, dnnl_ab));
  DN(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dnnl_bf16, dnnl_ba));
  DN(dnnl_memory_desc_init_by_tag(&bany_md, 2, bd, dnnl_bf16, dnnl_format_tag_any));
  DN(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t md;
  dnnl_primitive_desc_t pd, pdp;
  DN(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
  DN(dnnl_primitive_desc_create(&pd, &md, NULL, c->eng, NULL));
  DN(dnnl_primitive_create(&c->mm, pd));
  const char *impl = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  DN(dnnl_matmul_desc_init(&md, &a_md, &bany_md, NULL, &c_md));
  DN(dnnl_primitive_desc_create(&pdp, &md, NULL, c->eng, NULL));
  DN(dnnl_primitive_create(&c->mm_pack, pdp));
  const char *impl_p = NULL;
  dnnl_primitive_desc_query(pdp, dnnl_query_impl_info_str, 0, &impl_p);
  fprintf(stderr, "  oneDNN impl: plain %s, packed %s\n", impl ? impl : "?", impl_p ? impl_p : "?");
  DN(dnnl_memory_create(&c->a, &a_md, c->eng, c->x));
  DN(dnnl_memory_create(&c->c, &c_md, c->eng, c->y));
  c->b = calloc((size_t)c->nw, sizeof *c->b);
  for (int i = 0; i < c->nw; i++) DN(dnnl_memory_create(&c->b[i], &b_md, c->eng, c->w[i]));
  /* the packed copy of pool entry 0 */
  const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pdp, dnnl_query_weights_md, 0);
  DN(dnnl_memory_create(&c->b_pack, pmd, c->eng, DNNL_MEMORY_ALLOCATE));
  dnnl_primitive_desc_t rpd;
  dnnl_primitive_t r;
  DN(dnnl_reorder_primitive_desc_create(&rpd, &b_md, c->eng, pmd, c->eng, NULL));
  DN(dnnl_primitive_create(&r, rpd));
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, c->b[0]}, {DNNL_ARG_TO, c->b_pack}};
  DN(dnnl_primitive_execute(r, c->st, 2, ra));
  DN(dnnl_stream_wait(c->st));
  dnnl_primitive_destroy(r);
  dnnl_primitive_desc_destroy(rpd);
  dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_desc_destroy(pdp);
}

static void dnnl_run(Case *c, int wi, bool packed) {
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, c->a},
                             {DNNL_ARG_WEIGHTS, packed ? c->b_pack : c->b[wi]},
                             {DNNL_ARG_DST, c->c}};
  DN(dnnl_primitive_execute(packed ? c->mm_pack : c->mm, c->st, 3, args));
  DN(dnnl_stream_wait(c->st));
}

static void dnnl_teardown(Case *c) {
  dnnl_primitive_destroy(c->mm);
  dnnl_primitive_destroy(c->mm_pack);
  dnnl_memory_destroy(c->a);
  dnnl_memory_destroy(c->c);
  for (int i = 0; i < c->nw; i++) dnnl_memory_destroy(c->b[i]);
  free(c->b);
  dnnl_memory_destroy(c->b_pack);
  dnnl_stream_destroy(c->st);
  dnnl_engine_destroy(c->eng);
}
#endif

static bool available(int which) {
  switch (which) {
  case C_DP: return fg_kernel_supported(FG_KERNEL_DPBF16, FG_ORDER_PAIRS);
  case C_FMA: return fg_kernel_supported(FG_KERNEL_FMA, FG_ORDER_PAIRS);
#ifdef BENCH_HAVE_DNNL
  case C_DNNL: case C_DNNL_PACK: return true;
#endif
#ifdef BENCH_HAVE_OPENBLAS
  case C_BLAS: return true;
#endif
  default: return false;
  }
}

static void run_one(Case *c, FgWork *work, int which, int wi) {
  FgGemm g = {.M = c->M, .N = c->N, .K = c->K, .x = c->x, .ldx = c->K, .w = c->w[wi],
              .ldw = c->K, .y = c->y, .ldy = c->N, .y_bf16 = false};
  switch (which) {
  case C_DP: fg_gemm(work, &g, FG_ORDER_PAIRS, FG_KERNEL_DPBF16); break;
  case C_FMA: fg_gemm(work, &g, FG_ORDER_PAIRS, FG_KERNEL_FMA); break;
#ifdef BENCH_HAVE_DNNL
  case C_DNNL: dnnl_run(c, wi, false); break;
  case C_DNNL_PACK: dnnl_run(c, 0, true); break;
#endif
#ifdef BENCH_HAVE_OPENBLAS
  case C_BLAS:
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->M, (int)c->N, (int)c->K, 1.0f,
                c->xf, (int)c->K, c->wf, (int)c->K, 0.0f, c->y, (int)c->N);
    break;
#endif
  }
}

int main(int argc, char **argv) {
  int nt = 0, reps = 3;
  const char *mlist = "1,16,512,4096", *only = NULL, *slist = NULL, *wfile = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads")) nt = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--m")) mlist = argv[i + 1];
    else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    else if (!strcmp(argv[i], "--shapes")) slist = argv[i + 1];   /* KxN,KxN,... */
    else if (!strcmp(argv[i], "--weights-file")) wfile = argv[i + 1];
  }
#ifdef _OPENMP
  if (nt > 0) omp_set_num_threads(nt);
  nt = omp_get_max_threads();
#else
  nt = 1;
#endif
#ifdef BENCH_HAVE_OPENBLAS
  openblas_set_num_threads(nt);
#endif
  if (reps > 15) reps = 15;
  int64_t shapes[16][2] = {{3584, 3584}, {3584, 18944}, {18944, 3584}, {1536, 8960}};
  size_t nshapes = 4;
  if (slist) {
    nshapes = 0;
    char *sl = strdup(slist);
    for (char *tok = strtok(sl, ","); tok && nshapes < 16; tok = strtok(NULL, ",")) {
      long long k = 0, n = 0;
      if (sscanf(tok, "%lldx%lld", &k, &n) != 2 || k <= 0 || n <= 0) {
        fprintf(stderr, "bench_gemm: --shapes wants KxN[,KxN...], got '%s'\n", tok);
        return 2;
      }
      shapes[nshapes][0] = k;
      shapes[nshapes++][1] = n;
    }
    free(sl);
  }
  FgWork *work = fg_work_new(nt);
  printf("| M | K | N | contender | median ms | GFLOP/s | GB/s (weights) | runs ms | mismatch vs ours |\n");
  printf("|---|---|---|---|---|---|---|---|---|\n");
  char *ml = strdup(mlist);
  for (char *tok = strtok(ml, ","); tok; tok = strtok(NULL, ",")) {
    const int64_t M = atoll(tok);
    for (size_t s = 0; s < nshapes; s++) {
      Case c = {.M = M, .K = shapes[s][0], .N = shapes[s][1]};
      const size_t wbytes = (size_t)(c.N * c.K) * 2;
      c.nw = M == 1 ? (int)((((size_t)1 << 30) + wbytes - 1) / wbytes) : 1;
      c.w = calloc((size_t)c.nw, sizeof *c.w);
      /* --weights-file: the weights are slices of a (checkpoint) file mapped and locked
       * in place, as the engine reads them, instead of a fresh buffer */
      static uint8_t *fmap;
      static size_t fsize;
      if (wfile && !fmap) {
        const int fd = open(wfile, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < ((size_t)1 << 30)) {
          fprintf(stderr, "bench_gemm: --weights-file %s: cannot open, or smaller than 1 GiB\n", wfile);
          return 2;
        }
        fsize = (size_t)st.st_size;
        fmap = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (fmap == MAP_FAILED) {
          perror("bench_gemm: mmap");
          return 2;
        }
        if (mlock(fmap, fsize)) perror("bench_gemm: mlock (going on unlocked)");
      }
      if (fmap && wbytes + 8192 > fsize) {
        fprintf(stderr, "bench_gemm: --weights-file is smaller than one weight matrix\n");
        return 2;
      }
      for (int i = 0; fmap && i < c.nw; i++) c.w[i] = (uint16_t *)(void *)(fmap + 4096 + ((size_t)i * wbytes) % (fsize - wbytes - 8192) / 64 * 64);
      for (int i = 0; !fmap && i < c.nw; i++) {
        c.w[i] = aligned_alloc(64, (wbytes + 63) & ~(size_t)63);
        for (int64_t j = 0; j < c.N * c.K; j++) c.w[i][j] = bk_f32_to_bf16(frand() * 0.05f);
      }
      c.x = aligned_alloc(64, ((size_t)(M * c.K) * 2 + 63) & ~(size_t)63);
      for (int64_t j = 0; j < M * c.K; j++) c.x[j] = bk_f32_to_bf16(frand());
      c.y = aligned_alloc(64, ((size_t)(M * c.N) * 4 + 63) & ~(size_t)63);
      c.yref = malloc((size_t)(M * c.N) * 4);
      bool blas = available(C_BLAS) && (!only || strstr(only, "openblas"));
      if (blas) {
        c.xf = malloc((size_t)(M * c.K) * 4);
        c.wf = malloc((size_t)(c.N * c.K) * 4);
        for (int64_t j = 0; j < M * c.K; j++) c.xf[j] = bk_bf16_to_f32(c.x[j]);
        for (int64_t j = 0; j < c.N * c.K; j++) c.wf[j] = bk_bf16_to_f32(c.w[0][j]);
      }
#ifdef BENCH_HAVE_DNNL
      fprintf(stderr, "M=%lld K=%lld N=%lld\n", (long long)M, (long long)c.K, (long long)c.N);
      dnnl_setup(&c);
#endif
      /* the exact reference for the mismatch column: ours, pair order, weights 0 */
      FgGemm g = {.M = M, .N = c.N, .K = c.K, .x = c.x, .ldx = c.K, .w = c.w[0], .ldw = c.K,
                  .y = c.yref, .ldy = c.N};
      fg_gemm(work, &g, FG_ORDER_PAIRS, fg_pick(FG_ORDER_PAIRS));
      double t[NC][16];
      int64_t mis[NC];
      const double flop = 2.0 * (double)M * (double)c.N * (double)c.K;
      const int r = M >= 4096 ? (reps < 2 ? reps : 2) : reps;
      for (int w = 0; w < NC; w++) {   /* warm-up + mismatch count */
        mis[w] = -1;
        if (!available(w) || (only && !strstr(only, cname[w]))) continue;
        run_one(&c, work, w, 0);
        mis[w] = 0;
        for (int64_t j = 0; j < M * c.N; j++) mis[w] += memcmp(&c.y[j], &c.yref[j], 4) != 0;
      }
      int wi = 0;
      for (int rep = 0; rep < r; rep++)
        for (int w = 0; w < NC; w++) {
          if (mis[w] < 0) continue;
          wi = (wi + 1) % c.nw;
          double t0 = now_s();
          run_one(&c, work, w, wi);
          t[w][rep] = now_s() - t0;
        }
      for (int w = 0; w < NC; w++) {
        if (mis[w] < 0) continue;
        double sorted[16];
        memcpy(sorted, t[w], sizeof(double) * (size_t)r);
        qsort(sorted, (size_t)r, sizeof(double), cmpd);
        double med = r % 2 ? sorted[r / 2] : 0.5 * (sorted[r / 2 - 1] + sorted[r / 2]);
        printf("| %lld | %lld | %lld | %s | %.2f | %.1f | %.1f | ", (long long)M, (long long)c.K,
               (long long)c.N, cname[w], med * 1e3, flop / med / 1e9,
               (double)wbytes * (w == C_BLAS ? 2 : 1) / med / 1e9);
        for (int i = 0; i < r; i++) printf("%s%.1f", i ? " " : "", t[w][i] * 1e3);
        printf(" | %lld |\n", (long long)mis[w]);
        fflush(stdout);
      }
#ifdef BENCH_HAVE_DNNL
      dnnl_teardown(&c);
#endif
      for (int i = 0; !wfile && i < c.nw; i++) free(c.w[i]);
      free(c.w);
      free(c.x);
      free(c.y);
      free(c.yref);
      free(c.xf);
      free(c.wf);
    }
  }
  free(ml);
  fg_work_free(work);
  return 0;
}
