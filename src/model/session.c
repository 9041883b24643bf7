/* The session constructor: context, model (random init and/or a state dict) and trainer. */
#include "oclseg/session.h"

#include <stdlib.h>
#include <string.h>

#include "oclseg/weights.h"

void oclseg_session_options_default(oclseg_session_options *o) {
    memset(o, 0, sizeof *o);
    oclseg_model_config_default(&o->model);
}

void oclseg_session_options_synthetic_training(oclseg_session_options *o, int size, int batch,
                                               int frozen_encoder) {
    oclseg_session_options_default(o);
    o->model.size = size;
    o->model.max_batch = batch;
    o->random_init = 1;
    o->seed = 1;
    o->mode = OCLSEG_SESSION_TRAIN;
    o->train = (oclseg_trainer_config){.frozen_encoder = frozen_encoder, .seed = 1};
    oclseg_optim_config_default(&o->train.optim, OCLSEG_OPT_NADAM);
}

/* The decoder a whole-model weights file was trained with (its metadata "decoder_kind"):
 * evaluation and inference build that network; a training run must have asked for it. */
static int weights_decoder(const oclseg_session_options *o, oclseg_model_config *cfg) {
    if (!o->weights || o->weights_source != OCLSEG_WEIGHTS_FULL) return OCLSEG_OK;
    oclseg_weights_meta meta;
    TRY(oclseg_weights_meta_read(o->weights, &meta));
    if (o->mode != OCLSEG_SESSION_TRAIN) {
        cfg->decoder_kind = meta.decoder_kind;
        return OCLSEG_OK;
    }
    if (meta.decoder_kind == cfg->decoder_kind) return OCLSEG_OK;
    const char *const *names = oclseg_decoder_names;
    OCLSEG_ERROR("%s holds a model with the %s decoder (its metadata 'decoder_kind'), this run "
                 "builds the %s decoder: add --decoder %s", o->weights, names[meta.decoder_kind],
                 names[cfg->decoder_kind], names[meta.decoder_kind]);
    return OCLSEG_ERR_INVALID_ARG;
}

static int session_build(const oclseg_session_options *o, oclseg_session *s) {
    if (o->dev) {
        TRY(oclseg_ctx_create_for(&s->ctx, o->dev, o->profiling));
    } else {
        oclseg_ctx_options copts = {o->device, o->profiling, 0};
        TRY(oclseg_ctx_create(&s->ctx, &copts));
    }
    oclseg_model_config cfg = o->model;
    TRY(weights_decoder(o, &cfg));
    TRY(oclseg_model_create(s->ctx, &cfg, &s->model));
    if (o->random_init) TRY(oclseg_model_init_random(s->model, o->seed));
    if (o->weights) TRY(oclseg_weights_load(s->model, o->weights, o->weights_source, NULL));
    if (o->mode == OCLSEG_SESSION_TRAIN) return oclseg_trainer_create(s->model, &o->train, &s->trainer);
    if (o->mode == OCLSEG_SESSION_EVAL) return oclseg_trainer_create(s->model, NULL, &s->trainer);
    return OCLSEG_OK;
}

int oclseg_session_create(const oclseg_session_options *o, oclseg_session **out) {
    *out = NULL;
    oclseg_session *s = calloc(1, sizeof *s);
    if (!s) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = session_build(o, s);
    if (st != OCLSEG_OK) {
        oclseg_session_free(s);
        return st;
    }
    *out = s;
    return OCLSEG_OK;
}

void oclseg_session_free(oclseg_session *s) {
    if (!s) return;
    oclseg_trainer_free(s->trainer);
    oclseg_model_free(s->model);
    oclseg_ctx_free(s->ctx);
    free(s);
}
