/* engine/model/model.c — loading the model's parts (model.h). */
#include "model.h"

BagelModel *bagel_model_load(BkBackend *be, Checkpoint *ck, const BagelTokenIds *ids,
                             GError **error) {
  BagelModel *m = g_new0(BagelModel, 1);
  m->be = be;
  m->ck = ck;
  m->ids = *ids;
  if (!(m->llm = llm_load(be, ck, error)) || !(m->vit = vit_load(be, ck, error)) ||
      !(m->gen = gen_head_load(be, ck, error))) {
    bagel_model_free(m);
    return NULL;
  }
  return m;
}

void bagel_model_free(BagelModel *m) {
  if (!m) return;
  llm_free(m->llm);
  vit_free(m->vit);
  gen_head_free(m->gen);
  checkpoint_free(m->ck);
  g_free(m);
}
