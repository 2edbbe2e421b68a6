/* engine/bagel.h — the public C API of libbagel.
 *
 * Opaque engine opened from an official BAGEL-7B-MoT checkpoint directory (or a
 * bagel-mkckpt one); one call per thing people do: describe, generate, edit, each with
 * an optional "think" (chain-of-thought) pass.  Images cross this boundary as 8-bit sRGB
 * RGB or RGBA buffers.  Errors come back as GError (domain BAGEL_ERROR) with a message
 * that names the file / tensor / field at fault; nothing here calls exit() or abort().
 *
 * Defaults (bagel_*_params_init) are the official notebook values (docs/bagel-spec.md
 * §6.1).  Same seed + same backend ⇒ same result.
 *
 * One engine may be used from one thread at a time; two engines in one process are
 * independent (libbagel has no global mutable state).
 */
#ifndef BAGEL_H
#define BAGEL_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define BAGEL_ERROR (bagel_error_quark())
GQuark bagel_error_quark(void);

typedef enum {
  BAGEL_ERROR_FAILED,        /* anything else */
  BAGEL_ERROR_IO,            /* a file could not be read or written */
  BAGEL_ERROR_MODEL,         /* the checkpoint directory is missing, partial or invalid */
  BAGEL_ERROR_FORMAT,        /* a malformed file (safetensors, JSON, tokenizer, image) */
  BAGEL_ERROR_INVALID_ARG,   /* an out-of-range or unknown parameter, an empty prompt */
  BAGEL_ERROR_BACKEND,       /* the compute backend failed (no GPU, out of memory, …) */
  BAGEL_ERROR_CANCELLED      /* the progress callback asked to stop */
} BagelErrorCode;

typedef enum {
  BAGEL_BACKEND_AUTO = 0,    /* CUDA when a usable GPU is present, else CPU */
  BAGEL_BACKEND_CPU,
  BAGEL_BACKEND_CUDA,
  BAGEL_BACKEND_COUNT        /* bagel bench only: counts FLOPs and bytes, computes nothing
                              * (results are zeros/grey), for the GPU projection */
} BagelBackendKind;

typedef enum {
  BAGEL_RENORM_GLOBAL = 0,
  BAGEL_RENORM_CHANNEL,
  BAGEL_RENORM_TEXT_CHANNEL
} BagelRenormType;

/* An 8-bit sRGB image: channels 3 (RGB) or 4 (RGBA, straight alpha), rows of
 * `stride` bytes.  Results are always RGB, tightly packed, owned by the result. */
typedef struct {
  int width;
  int height;
  int channels;
  int stride;
  const uint8_t *pixels;
} BagelImage;

typedef struct {
  int width, height;
  uint8_t *pixels;           /* RGB, width*3 bytes per row; g_free */
} BagelRgb;

/* Progress: stage is a short name ("load", "vit", "vae-encode", "prefill", "think",
 * "decode", "denoise", "vae-decode"); step/total count within the stage; elapsed is
 * seconds since the call started.  Return FALSE to cancel: the call then fails with
 * BAGEL_ERROR_CANCELLED, frees what it allocated, and the engine stays usable. */
typedef gboolean (*BagelProgressFunc)(const char *stage, int step, int total,
                                      double elapsed, gpointer user_data);

/* Sampler knobs shared by generate and edit (§6).  steps is the official
 * num_timesteps (steps−1 model evaluations). */
typedef struct {
  int steps;
  float cfg_text;
  float cfg_image;
  float cfg_interval[2];
  float timestep_shift;
  BagelRenormType renorm;
  float renorm_min;
} BagelSampler;

/* Text decoding knobs. max_tokens: at most this many new tokens. */
typedef struct {
  int max_tokens;
  gboolean sample;           /* FALSE: greedy (argmax, lowest index on ties) */
  float temperature;         /* used only when sample */
} BagelDecode;

typedef struct {
  gboolean think;
  BagelDecode think_decode;  /* the reasoning pass (generate, edit) */
  int64_t seed;              /* < 0: pick one at random (reported in the result) */
  gconstpointer debug;       /* parity checks only (engine/bagel-debug.h); NULL */
} BagelCommon;

/* describe: one decoding pass, as the official inferencer does; with think the model
 * writes "<think>reasoning</think> answer" in that pass, and answer.max_tokens bounds the
 * whole text.  The result's reasoning and text are the two parts. */
typedef struct {
  BagelCommon common;
  BagelDecode answer;
} BagelDescribeParams;

typedef struct {
  BagelCommon common;
  BagelSampler sampler;
  int width, height;         /* multiples of 16, long side ≤ 1024 (rounded otherwise) */
} BagelGenerateParams;

typedef struct {
  BagelCommon common;
  BagelSampler sampler;
} BagelEditParams;

void bagel_describe_params_init(BagelDescribeParams *p);
void bagel_generate_params_init(BagelGenerateParams *p);
void bagel_edit_params_init(BagelEditParams *p);

/* Per-stage wall time of a call, seconds (0 when the stage did not run). */
typedef struct {
  double vit, vae_encode, prefill, think, decode, denoise, vae_decode, total;
  int denoise_steps;
  int decode_tokens;
} BagelTimings;

typedef struct {
  char *text;                /* describe: the answer; NULL otherwise */
  char *reasoning;           /* think mode: the reasoning text; NULL otherwise */
  BagelRgb image;            /* generate/edit: the result (RGB); pixels NULL otherwise */
  int64_t seed;              /* the seed actually used */
  BagelTimings timings;
} BagelResult;

void bagel_result_clear(BagelResult *r);

typedef struct BagelEngine BagelEngine;

typedef struct {
  BagelBackendKind backend;
  int n_threads;             /* CPU backend; <= 0: all cores */
  gboolean mlock;            /* lock the weights in RAM */
  gboolean skip_weight_check; /* do not scan every weight for NaN/Inf at open.  The scan
                              * reads the whole checkpoint (seconds to minutes for 7B) on
                              * the first open of a file only: its verdict is remembered
                              * per file (checkpoint.h, ckpt_check_finite_once) */
} BagelEngineOptions;

void bagel_engine_options_init(BagelEngineOptions *o);

/* Process start-up, before anything else in main(): OpenMP worker threads that spin at
 * a barrier take the core from the thread they wait for when the machine is shared
 * (measured: decode 2.5x slower on two busy vCPUs).  libgomp reads OMP_WAIT_POLICY when
 * it is loaded, so if the caller has not chosen a policy this sets "passive" and
 * re-executes the program with the same arguments (argv as main received it).  Returns
 * only when no re-execution happened (a policy was set, or exec failed). */
void bagel_prefer_passive_threads(char **argv);

BagelEngine *bagel_engine_open(const char *model_dir, const BagelEngineOptions *opts,
                               GError **error);
void bagel_engine_free(BagelEngine *engine);
const char *bagel_engine_backend_name(const BagelEngine *engine);
/* With the auto backend: why a GPU that was found could not be used (one line, ending
 * "; using the CPU backend"), for the user to see; NULL when there is nothing to say. */
const char *bagel_engine_backend_note(const BagelEngine *engine);

gboolean bagel_describe(BagelEngine *engine, const BagelImage *image, const char *question,
                        const BagelDescribeParams *params, BagelProgressFunc progress,
                        gpointer user_data, BagelResult *result, GError **error);

gboolean bagel_generate(BagelEngine *engine, const char *prompt,
                        const BagelGenerateParams *params, BagelProgressFunc progress,
                        gpointer user_data, BagelResult *result, GError **error);

gboolean bagel_edit(BagelEngine *engine, const BagelImage *image, const char *instruction,
                    const BagelEditParams *params, BagelProgressFunc progress,
                    gpointer user_data, BagelResult *result, GError **error);

/* Parse "global" | "channel" | "text_channel". */
gboolean bagel_renorm_from_string(const char *s, BagelRenormType *out, GError **error);
const char *bagel_renorm_to_string(BagelRenormType t);

G_END_DECLS
#endif
