/* engine/model/model.h — the whole BAGEL model on one backend: checkpoint, LLM-MoT,
 * ViT + connector, generation head, VAE, and the special token ids (from the tokenizer
 * config, never compiled in). */
#ifndef BAGEL_MODEL_H
#define BAGEL_MODEL_H

#include <glib.h>

#include "checkpoint.h"
#include "embed.h"
#include "llm.h"
#include "vit.h"

typedef struct {
  int32_t bos;              /* <|im_start|>: starts every text segment and decoding */
  int32_t eos;              /* <|im_end|>: ends every segment; stops decoding */
  int32_t start_of_image;   /* <|vision_start|> */
  int32_t end_of_image;     /* <|vision_end|> */
} BagelTokenIds;

typedef struct {
  BkBackend *be;
  Checkpoint *ck;           /* owned */
  LlmModel *llm;
  VitModel *vit;
  GenHead *gen;
  BagelTokenIds ids;
} BagelModel;

/* Load the weights of an opened checkpoint (takes ownership of ck). */
BagelModel *bagel_model_load(BkBackend *be, Checkpoint *ck, const BagelTokenIds *ids,
                             GError **error);
void bagel_model_free(BagelModel *m);

#endif
