/* One constructor for what every run needs: a context on a device, a model on it (randomly
 * initialised and/or loaded from a state dict) and, optionally, a trainer for training or
 * evaluation. Used by train, eval, predict, bench and tune. */
#ifndef OCLSEG_SESSION_H
#define OCLSEG_SESSION_H

#include "oclseg/trainer.h"
#include "oclseg/weights.h"

typedef enum oclseg_session_mode {
    OCLSEG_SESSION_MODEL = 0, /* context + model (inference) */
    OCLSEG_SESSION_EVAL = 1,  /* + an evaluation-only trainer (no optimizer config needed) */
    OCLSEG_SESSION_TRAIN = 2  /* + a trainer configured by `train` */
} oclseg_session_mode;

typedef struct oclseg_session_options {
    const char *device;              /* device spec (oclseg_device_choose), used when */
    const oclseg_device_info *dev;   /* ... this already chosen device is NULL */
    int profiling;                   /* event profiling on the queue (bench's kernel profile) */
    oclseg_model_config model;       /* oclseg_model_config_default after options_default */
    int random_init;                 /* oclseg_model_init_random(model, seed) */
    uint64_t seed;
    const char *weights;             /* a state dict loaded after the init (NULL: none) */
    oclseg_weights_source weights_source;
    oclseg_session_mode mode;
    oclseg_trainer_config train;     /* OCLSEG_SESSION_TRAIN only */
} oclseg_session_options;

typedef struct oclseg_session {
    oclseg_ctx *ctx;
    oclseg_model *model;
    oclseg_trainer *trainer;         /* NULL in OCLSEG_SESSION_MODEL */
} oclseg_session;

/* Zeroes *o and sets the default model configuration. */
void oclseg_session_options_default(oclseg_session_options *o);
/* Defaults, then a randomly initialised (seed 1) model of input size x size for batches of
 * `batch`, trained by NAdam with its default settings (seed 1; the encoder frozen or not): the
 * session `oclseg bench` and `oclseg tune` time. The device is still to be set. */
void oclseg_session_options_synthetic_training(oclseg_session_options *o, int size, int batch,
                                               int frozen_encoder);
/* Creates ctx, model (init, weights) and trainer in that order; on failure frees what it made. */
int oclseg_session_create(const oclseg_session_options *o, oclseg_session **out);
void oclseg_session_free(oclseg_session *s);

#endif
