/* Evaluation pieces of the training run shared by fit.c and fit_eval.c (not public API). */
#ifndef OCLSEG_FIT_INTERNAL_H
#define OCLSEG_FIT_INTERNAL_H

#include "oclseg/data.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/trainer.h"

/* Evaluates ds in batches: mean BCE loss (*mean_loss), per-image confusion conf[0..count) of
 * the masks po makes from the probabilities (po->tta_flips needs inf, a wrap of t's model), and,
 * if probs_all is not NULL, every probability map (count x S x S). */
int fit_evaluate(oclseg_trainer *t, oclseg_infer *inf, const oclseg_dataset *ds, int batch,
                 const oclseg_predict_options *po, double *mean_loss, oclseg_confusion *conf,
                 float *probs_all);

/* Scores of the selected model on one split, as written to final.csv. */
typedef struct fit_split_report {
    double loss;
    oclseg_metrics met;
    oclseg_jaccard_summary ja;
} fit_split_report;

/* Selection and the single test evaluation at the end of a run: the decision threshold is chosen
 * on val (if any) with the model as it is (the caller loads best.safetensors first), then val and
 * test (each if present) are scored with that threshold and po's TTA/post-processing and written
 * to dir/final.csv (split,epoch,threshold,loss,AC,DI,JA,SE,SP,pooled_dice,pooled_iou,
 * thresholded_JA,JA_p10,JA_median,JA_p90). */
int fit_final_report(oclseg_trainer *t, const oclseg_dataset *val, const oclseg_dataset *test,
                     int batch, const oclseg_predict_options *po, int best_epoch,
                     const char *dir, int quiet);

#endif
