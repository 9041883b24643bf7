/* Evaluation inside a training run: per-epoch validation scores, and at the end the threshold
 * chosen on validation and the one test-set report of the selected model (final.csv). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/fit_internal.h"
#include "oclseg/safetensors.h"

int fit_evaluate(oclseg_trainer *t, oclseg_infer *inf, const oclseg_dataset *ds, int batch,
                 const oclseg_predict_options *po, double *mean_loss, oclseg_confusion *conf,
                 float *probs_all) {
    const int S = ds->size;
    const size_t s2 = (size_t)S * S;
    float *images = malloc((size_t)batch * 3 * s2 * sizeof *images);
    float *masks = malloc((size_t)batch * s2 * sizeof *masks);
    float *probs = malloc((size_t)batch * s2 * sizeof *probs);
    uint8_t *pred = malloc(s2);
    int *idx = malloc((size_t)batch * sizeof *idx);
    uint32_t *counts = malloc((size_t)batch * 4 * sizeof *counts);
    int st = OCLSEG_OK;
    double loss_sum = 0;
    if (!images || !masks || !probs || !pred || !idx || !counts) st = OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK && po->tta_flips && !inf) st = OCLSEG_ERR_INVALID_ARG;
    for (int b0 = 0; st == OCLSEG_OK && b0 < ds->count; b0 += batch) {
        const int n = ds->count - b0 < batch ? ds->count - b0 : batch;
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        float loss = 0.0f;
        st = oclseg_dataset_batch(ds, idx, n, NULL, images, masks);
        if (st == OCLSEG_OK) st = oclseg_trainer_eval_batch(t, images, masks, n, &loss, counts, probs);
        if (st == OCLSEG_OK && po->tta_flips) st = oclseg_infer_batch_tta(inf, images, n, 1, probs);
        if (st == OCLSEG_OK) loss_sum += (double)loss * n;
        for (int i = 0; st == OCLSEG_OK && i < n; i++) {
            const float *p = probs + (size_t)i * s2;
            st = oclseg_probs_to_mask(p, S, S, po, pred);
            if (st == OCLSEG_OK)
                st = oclseg_confusion_count_masks(pred, ds->masks + (size_t)(b0 + i) * s2, s2,
                                                  &conf[b0 + i]);
            if (probs_all) memcpy(probs_all + (size_t)(b0 + i) * s2, p, s2 * sizeof *p);
        }
    }
    if (st == OCLSEG_OK) *mean_loss = loss_sum / ds->count;
    free(images);
    free(masks);
    free(probs);
    free(pred);
    free(idx);
    free(counts);
    return st;
}

/* Scores one split with po into *r. */
static int score_split(oclseg_trainer *t, oclseg_infer *inf, const oclseg_dataset *ds, int batch,
                       const oclseg_predict_options *po, fit_split_report *r) {
    oclseg_confusion *conf = calloc((size_t)ds->count, sizeof *conf);
    if (!conf) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = fit_evaluate(t, inf, ds, batch, po, &r->loss, conf, NULL);
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
    oclseg_predict_options plain;
    oclseg_predict_options_default(&plain);
    double loss;
    int st = probs && conf ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = fit_evaluate(t, NULL, val, batch, &plain, &loss, conf, probs);
    if (st == OCLSEG_OK)
        st = oclseg_select_threshold(probs, val->masks, val->count, s2, threshold, NULL);
    free(probs);
    free(conf);
    return st;
}

int fit_final_report(oclseg_trainer *t, const oclseg_dataset *val, const oclseg_dataset *test,
                     int batch, const oclseg_predict_options *po, int best_epoch,
                     const char *dir, int quiet) {
    oclseg_predict_options o = *po;
    TRY(choose_threshold(t, val, batch, &o.threshold));
    oclseg_infer *inf = NULL;
    TRY(oclseg_infer_wrap(t->model, &inf));
    char text[2048] = "split,epoch,threshold,loss,AC,DI,JA,SE,SP,pooled_dice,pooled_iou,"
                      "thresholded_JA,JA_p10,JA_median,JA_p90\n";
    fit_split_report r;
    int st = OCLSEG_OK;
    if (!quiet)
        printf("selected model (epoch %d by validation Jaccard), threshold %.2f%s%s%s, at the "
               "training size:\n", best_epoch, (double)o.threshold,
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
    return oclseg_file_write_atomic(path, text, strlen(text));
}
