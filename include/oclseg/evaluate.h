/* The one evaluation loop of the application layer, shared by `train` (per-epoch validation,
 * threshold choice, final report) and `eval`: a data set in batches through an evaluation-mode
 * forward, the BCE loss, and per-image confusion counts scored where the caller says. */
#ifndef OCLSEG_EVALUATE_H
#define OCLSEG_EVALUATE_H

#include "oclseg/data.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/trainer.h"

typedef enum oclseg_score_at {
    OCLSEG_SCORE_DEVICE = 0,     /* counts made on the device at probability 0.5 (nothing but
                                    the counts read back): per-epoch validation */
    OCLSEG_SCORE_MODEL_SIZE = 1, /* host: the probabilities at the model size, thresholded and
                                    post-processed as `predict` says: the final report */
    OCLSEG_SCORE_ORIGINAL = 2    /* host: the probabilities upsampled to each mask file's own
                                    resolution (the mask re-read): `oclseg eval` */
} oclseg_score_at;

typedef struct oclseg_eval_options {
    int batch;                      /* images per forward (<= the model's max_batch) */
    int threads;                    /* host scoring on this many worker threads, pipelined with
                                       the device batches (the same results); 0: each batch
                                       scored in the calling thread before the next runs */
    int first, end;                 /* images [first, end) of the set; end 0: to the last */
    oclseg_score_at score_at;
    oclseg_predict_options predict; /* host scoring: threshold, TTA, post-processing */
    oclseg_infer *inf;              /* needed with predict.tta_flips: over the trainer's model */
    double mask_threshold;          /* SCORE_ORIGINAL: how mask files are read (0: recognise) */
    float *probs_all;               /* if not NULL (host scoring): every probability map at the
                                       model size, image i at probs_all + i * S * S */
    const char *save_masks;         /* SCORE_ORIGINAL: if not NULL, each scored mask is written
                                       as <dir>/<id>_mask.png (0/255), as predict writes it */
    /* if not NULL: called on the calling thread after each image is scored, in order; a non-OK
     * status stops */
    int (*on_image)(void *user, int index, const oclseg_confusion *c);
    void *user;
} oclseg_eval_options;

/* Zeroes *o; default predict options, batch 16, all images, device scoring. */
void oclseg_eval_options_default(oclseg_eval_options *o);

/* Evaluates images [first, end) of ds with t (an evaluation-only trainer is enough): conf[i] for
 * each of them, and *loss_sum += the batch-mean BCE loss times the batch's image count. */
int oclseg_evaluate(oclseg_trainer *t, const oclseg_dataset *ds, const oclseg_eval_options *o,
                    double *loss_sum, oclseg_confusion *conf);

#endif
