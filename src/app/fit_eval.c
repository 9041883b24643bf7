/* Evaluation inside a training run: per-epoch validation scores, and at the end the threshold
 * chosen on validation and the one test-set report of the selected model (final.csv). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/fit_internal.h"
#include "oclseg/evaluate.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

/* Scores one split with po into *r. */
static int score_split(oclseg_trainer *t, oclseg_infer *inf, const oclseg_dataset *ds, int batch,
                       const oclseg_predict_options *po, fit_split_report *r) {
    oclseg_confusion *conf = calloc((size_t)ds->count, sizeof *conf);
    if (!conf) return OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_eval_options eo;
    oclseg_eval_options_default(&eo);
    eo.batch = batch;
    eo.score_at = OCLSEG_SCORE_MODEL_SIZE;
    eo.predict = *po;
    eo.inf = inf;
    double loss_sum = 0;
    int st = oclseg_evaluate(t, ds, &eo, &loss_sum, conf);
    if (st == OCLSEG_OK) r->loss = loss_sum / ds->count;
    if (st == OCLSEG_OK) st = oclseg_metrics_compute(conf, ds->count, &r->met);
    if (st == OCLSEG_OK) st = oclseg_jaccard_summary_compute(conf, ds->count, &r->ja);
    free(conf);
    return st;
}

static void append_row(char *buf, size_t size, const char *split, int epoch, float threshold,
                       const fit_split_report *r) {
    size_t len = strlen(buf);
    snprintf(buf + len, size - len,
             "%s,%d,%.2f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", split,
             epoch, (double)threshold, r->loss, r->met.mean.accuracy, r->met.mean.dice,
             r->met.mean.jaccard, r->met.mean.sensitivity, r->met.mean.specificity,
             r->met.pooled_dice, r->met.pooled_iou, r->ja.thresholded, r->ja.p10, r->ja.median,
             r->ja.p90);
}

static void print_report(const char *split, const fit_split_report *r) {
    printf("  %-4s AC %.4f  DI %.4f  JA %.4f  SE %.4f  SP %.4f  thresholded JA %.4f "
           "(%d of %d below 0.65)  JA p10/median/p90 %.3f/%.3f/%.3f\n",
           split, r->met.mean.accuracy, r->met.mean.dice, r->met.mean.jaccard,
           r->met.mean.sensitivity, r->met.mean.specificity, r->ja.thresholded,
           r->ja.below_floor, r->ja.count, r->ja.p10, r->ja.median, r->ja.p90);
}

/* Threshold from the validation probabilities (0.5 without validation). */
static int choose_threshold(oclseg_trainer *t, const oclseg_dataset *val, int batch,
                            float *threshold) {
    *threshold = 0.5f;
    if (!val) return OCLSEG_OK;
    const size_t s2 = (size_t)val->size * val->size;
    float *probs = malloc((size_t)val->count * s2 * sizeof *probs);
    oclseg_confusion *conf = calloc((size_t)val->count, sizeof *conf);
    oclseg_eval_options eo; /* plain predict options: the threshold is chosen from probs */
    oclseg_eval_options_default(&eo);
    eo.batch = batch;
    eo.score_at = OCLSEG_SCORE_MODEL_SIZE;
    eo.probs_all = probs;
    double loss_sum = 0;
    int st = probs && conf ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_evaluate(t, val, &eo, &loss_sum, conf);
    if (st == OCLSEG_OK)
        st = oclseg_select_threshold(probs, val->masks, val->count, s2, threshold, NULL);
    free(probs);
    free(conf);
    return st;
}

int fit_final_report(oclseg_trainer *t, const oclseg_dataset *val, const oclseg_dataset *test,
                     int batch, const oclseg_predict_options *po, int best_epoch,
                     const char *dir, int quiet, float *threshold) {
    oclseg_predict_options o = *po;
    TRY(choose_threshold(t, val, batch, &o.threshold));
    *threshold = o.threshold;
    oclseg_infer *inf = NULL;
    TRY(oclseg_infer_wrap(t->model, &inf));
    char text[2048] = "split,epoch,threshold,loss,AC,DI,JA,SE,SP,pooled_dice,pooled_iou,"
                      "thresholded_JA,JA_p10,JA_median,JA_p90\n";
    fit_split_report r;
    int st = OCLSEG_OK;
    if (!quiet)
        printf(val ? "selected model (epoch %d by validation Jaccard), threshold %.2f%s%s%s, at "
                     "the training size:\n"
                   : "last model (epoch %d; no validation split, nothing selected), threshold "
                     "%.2f%s%s%s, at the training size:\n", best_epoch, (double)o.threshold,
               o.tta_flips ? ", flip TTA" : "", o.largest_component ? ", largest component" : "",
               o.fill_holes ? ", holes filled" : "");
    const oclseg_dataset *sets[2] = {val, test};
    const char *names[2] = {"val", "test"};
    for (int k = 0; k < 2 && st == OCLSEG_OK; k++) {
        if (!sets[k]) continue;
        st = score_split(t, inf, sets[k], batch, &o, &r);
        if (st != OCLSEG_OK) break;
        append_row(text, sizeof text, names[k], best_epoch, o.threshold, &r);
        if (!quiet) print_report(names[k], &r);
    }
    oclseg_infer_free(inf);
    if (st != OCLSEG_OK) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/final.csv", dir);
    TRY(oclseg_file_write_atomic(path, text, strlen(text)));
    /* the selected model's file gets the threshold final.csv reports, so that eval, predict
     * and export use it by default (rewritten atomically: tensors unchanged) */
    oclseg_weights_meta meta = t->model->meta;
    meta.threshold = o.threshold;
    snprintf(path, sizeof path, "%s/best.safetensors", dir);
    return oclseg_weights_meta_rewrite(path, &meta);
}
