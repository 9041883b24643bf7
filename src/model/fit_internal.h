/* Pieces of the training run shared by fit.c, fit_eval.c and fit_files.c (not public API). */
#ifndef OCLSEG_FIT_INTERNAL_H
#define OCLSEG_FIT_INTERNAL_H

#include "oclseg/data.h"
#include "oclseg/fit.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/trainer.h"

typedef struct fit_data {
    oclseg_dataset *train, *val, *test; /* val: NULL with --val-fraction 0; test: NULL (generic) */
} fit_data;

/* ---- run directory files (fit_files.c) ---- */
/* config.json: every effective setting, the model, device and versions (malloc'd text). */
char *fit_config_json(const oclseg_fit_options *o, const oclseg_ctx *ctx, const oclseg_model *m,
                      const fit_data *d);
/* Writes dir/name atomically. */
int fit_write_text_file(const char *dir, const char *name, const char *text);
/* Keeps the lines of a CSV whose first field is < limit (drops what a resumed run redoes). */
void fit_csv_truncate(const char *path, long long limit);
/* Draws dir/curves.png from dir/metrics.csv with gnuplot (a warning if that fails). */
void fit_plot_curves(const char *dir);

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
