/* Model weights and training checkpoints as safetensors files (PyTorch state-dict key names). */
#ifndef OCLSEG_WEIGHTS_H
#define OCLSEG_WEIGHTS_H

#include "oclseg/safetensors.h"
#include "oclseg/trainer.h"

typedef enum oclseg_weights_source {
    OCLSEG_WEIGHTS_FULL = 0,        /* a whole LesionSegNet state dict (encoder.*, decoder.*) */
    OCLSEG_WEIGHTS_TORCHVISION = 1, /* torchvision mobilenet_v2 (features.* -> encoder.*;
                                       classifier.* ignored); the decoder is left as is */
} oclseg_weights_source;

/* Loads weights into the model. Every key is validated (missing, unexpected, wrong dtype or
 * shape: an error naming the key, the expected and the found shape) before anything is written
 * to the device, so a failure leaves the model untouched. `prefix` is prepended to the model's
 * key names when looking them up (e.g. "init." for golden files; NULL for none). */
int oclseg_weights_load(oclseg_model *m, const char *path, oclseg_weights_source source,
                        const char *prefix);
/* The file's own description (oclseg_weights_meta: input size, threshold, inference options)
 * from its __metadata__; absent keys leave zero fields, a malformed value is an error naming the
 * file and the key. _read loads the file first. */
int oclseg_weights_meta_parse(const oclseg_st_file *f, oclseg_weights_meta *out);
int oclseg_weights_meta_read(const char *path, oclseg_weights_meta *out);
/* Rewrites a weights file (atomically, tensors and other metadata unchanged) with meta's
 * recorded fields replacing its own; input_size 0 keeps the file's. */
int oclseg_weights_meta_rewrite(const char *path, const oclseg_weights_meta *meta);
/* Writes the model's state dict (float32 parameters and running statistics, int64
 * num_batches_tracked), atomically, with m->meta (input_size: the model's) in __metadata__. */
int oclseg_weights_save(oclseg_model *m, const char *path);

/* Where a training run stands (saved in checkpoints). */
typedef struct oclseg_run_position {
    int epoch;          /* epoch being trained (0-based) */
    int step_in_epoch;  /* batches of that epoch already done */
    double best_jaccard;
    int best_epoch;     /* 1-based epoch of best_jaccard (selection, patience); 0: none yet */
    double epoch_loss_sum;      /* the losses of the epoch's steps so far (its train loss is */
    int64_t epoch_loss_count;   /* their mean, so a resumed epoch reports the whole epoch's) */
} oclseg_run_position;

/* Checkpoint = state dict + optimizer state (per parameter, each state arena of the optimizer
 * under optimizer.<its state key>.<parameter>, e.g. optimizer.exp_avg_sq.x; step, mu_product)
 * + trainer step + run position + config (JSON text), one safetensors file written atomically
 * (temp file, fsync, rename): an interruption never damages the previous one. */
int oclseg_checkpoint_save(oclseg_trainer *t, const oclseg_run_position *pos,
                           const char *config_json, const char *path);
/* The run state in a checkpoint's __metadata__ (what a resumed run reads besides tensors). */
typedef struct oclseg_checkpoint_meta {
    int64_t trainer_step, optimizer_step; /* 0 .. 2^53 */
    double mu_product;                    /* finite */
    int epoch, step_in_epoch;             /* 0 .. INT_MAX */
    double best_jaccard;                  /* finite (-1: none yet) */
    int best_epoch;                       /* 0 .. epoch */
    double epoch_loss_sum;                /* finite */
    int64_t epoch_loss_count;             /* 0 .. 2^53 */
    int frozen_encoder;                   /* 0 or 1 */
    int optimizer;                        /* oclseg_optimizer_kind as written (not range-checked) */
    const char *config_json;              /* the run's config.json text, borrowed; may be NULL */
} oclseg_checkpoint_meta;

/* Parses and range-checks the metadata of a loaded checkpoint file: format "oclseg-checkpoint",
 * every number present, a number, integral where it counts something and in range (before any
 * conversion). OCLSEG_ERR_FORMAT with a message naming the file and the key otherwise. */
int oclseg_checkpoint_meta_parse(const oclseg_st_file *f, oclseg_checkpoint_meta *out);
/* Restores everything saved above; *config_json is malloc'd (may be NULL if absent). */
int oclseg_checkpoint_load(oclseg_trainer *t, const char *path, oclseg_run_position *pos,
                           char **config_json);

#endif
