/* engine/checkpoint.h — opening an official BAGEL-7B-MoT checkpoint directory
 * (ema.safetensors, ae.safetensors, llm_config.json, vit_config.json, tokenizer files;
 * spec §2) and the table of every tensor the model needs.
 *
 * checkpoint_open() validates the whole directory before anything runs: missing files are
 * listed in one message with the download command; every expected tensor is checked by
 * name, shape and dtype and ALL problems are reported at once; tensors the model does not
 * use are kept as warnings.  The same expected-tensor table drives bagel-mkckpt (which
 * writes tensors in the table's order, the order the official model draws its weights).
 */
#ifndef BAGEL_CHECKPOINT_H
#define BAGEL_CHECKPOINT_H

#include <glib.h>

#include "config.h"
#include "safetensors.h"

#define BAGEL_HF_REPO "ByteDance-Seed/BAGEL-7B-MoT"

/* How bagel-mkckpt draws a tensor (the rules of the golden oracle's manifest). */
typedef enum {
  CKPT_INIT_NORMAL,     /* N(0,1) */
  CKPT_INIT_FAN_IN,     /* N(0,1)/sqrt(fan_in) */
  CKPT_INIT_BIAS,       /* 0.1·N(0,1) */
  CKPT_INIT_NORM,       /* 1 + 0.2·N(0,1) */
  CKPT_INIT_SINCOS,     /* the fixed 2-D sin-cos table (spec §1.6), no draw */
} CkptInit;

typedef enum {
  CKPT_LLM_SHARED,   /* embed_tokens, lm_head */
  CKPT_LLM_UND,      /* understanding expert */
  CKPT_LLM_GEN,      /* generation expert (*_moe_gen) */
  CKPT_VIT,
  CKPT_CONNECTOR,    /* connector + vit_pos_embed */
  CKPT_GEN_HEAD,     /* time_embedder, vae2llm, llm2vae, latent_pos_embed */
  CKPT_VAE_ENC,
  CKPT_VAE_DEC,
  CKPT_NCOMPONENTS
} CkptComponent;

typedef enum { CKPT_FILE_EMA = 0, CKPT_FILE_AE = 1 } CkptFileId;

typedef struct {
  char *name;
  CkptFileId file;
  StDType dtype;
  int ndim;
  int64_t shape[4];
  CkptComponent component;
  CkptInit init;
  int fan_in;          /* CKPT_INIT_FAN_IN */
  int sincos_grid;     /* CKPT_INIT_SINCOS */
} CkptSpec;

const char *ckpt_component_name(CkptComponent c);

/* Every tensor the model needs, in the order the official model creates them (ema
 * first, then ae).  Free with g_ptr_array_unref. */
GPtrArray *ckpt_expected_tensors(const ModelConfig *cfg);
int64_t ckpt_spec_numel(const CkptSpec *s);

typedef struct {
  char *dir;
  ModelConfig cfg;
  StFile *ema;
  StFile *ae;
  GPtrArray *expected;     /* CkptSpec* */
  GPtrArray *warnings;     /* char*: unexpected tensors and other oddities */
  gboolean has_tokenizer_json;
  gboolean has_vocab_merges;
} Checkpoint;

Checkpoint *checkpoint_open(const char *dir, GError **error);
void checkpoint_free(Checkpoint *ck);

/* A checked tensor by name (from ema or ae per the spec table); NULL if not expected. */
const StTensor *ckpt_tensor(const Checkpoint *ck, const char *name);

/* The message for a missing/partial model directory: which files, and how to get it. */
char *ckpt_download_hint(const char *dir);

/* Does the directory look like a model directory (configs + ema present)? */
gboolean ckpt_dir_looks_complete(const char *dir);

/* Scan every floating-point weight for NaN/Inf; names the first bad tensor. */
gboolean ckpt_check_finite(const Checkpoint *ck, GError **error);

/* The same, skipped when this scan already passed on these very files (a stamp per file
 * in $BAGEL_CACHE_DIR or the user cache directory: device, inode, size, mtime and ctime
 * in ns);
 * a passing scan writes the stamps.  *scanned (may be NULL): whether it scanned. */
gboolean ckpt_check_finite_once(const Checkpoint *ck, gboolean *scanned, GError **error);

#endif
