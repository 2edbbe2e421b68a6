/* engine/engine_internal.h — the BagelEngine object behind bagel.h, shared by
 * engine/engine.c (lifetime) and engine/pipeline/ (the modes). */
#ifndef BAGEL_ENGINE_INTERNAL_H
#define BAGEL_ENGINE_INTERNAL_H

#include "bagel.h"
#include "model.h"
#include "tokenizer.h"
#include "vae.h"
#include "weights.h"

struct BagelEngine {
  BagelEngineOptions opts;
  BkBackend *be;
  BagelModel *model;      /* LLM, ViT, generation head (owns the checkpoint) */
  VaeModel *vae;
  BagelTokenizer *tok;
  Arena arena;            /* activations; every call rewinds it */
  char backend_name[32];
  char *backend_note;       /* why a GPU found by auto could not be used; NULL: none */
};

#endif
