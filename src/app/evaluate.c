/* The evaluation loop shared by training (validation, final report) and `oclseg eval`. */
#include "oclseg/evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oclseg_eval_options_default(oclseg_eval_options *o) {
    memset(o, 0, sizeof *o);
    o->batch = 16;
    oclseg_predict_options_default(&o->predict);
}

/* Per-image confusion at the original resolution of sample s from its probabilities at S,
 * thresholded and post-processed as po says. */
static int score_original(const oclseg_sample *s, const float *probs, int size,
                          double mask_threshold, const oclseg_predict_options *po,
                          const char *save_dir, oclseg_confusion *c) {
    oclseg_image mask = {0};
    oclseg_mask_info info;
    TRY(oclseg_mask_load(s->mask_path, mask_threshold, &mask, &info));
    const size_t n = (size_t)mask.width * mask.height;
    uint8_t *pred = malloc(n);
    int st = pred ? oclseg_probs_to_mask_at(probs, size, mask.width, mask.height, po, NULL, pred)
                  : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_confusion_count_masks(pred, mask.pixels, n, c);
    if (st == OCLSEG_OK && save_dir) { /* what predict writes: <id>_mask.png, 0/255 */
        oclseg_image out = {.width = mask.width, .height = mask.height, .channels = 1,
                            .pixels = pred};
        char path[4400];
        snprintf(path, sizeof path, "%s/%s_mask.png", save_dir, s->id);
        for (size_t i = 0; i < n; i++) pred[i] = pred[i] ? 255 : 0;
        st = oclseg_write_png_atomic(path, &out); /* the bytes predict writes */
    }
    free(pred);
    oclseg_image_free(&mask);
    return st;
}

/* Scores image i of ds (its probabilities p, or row k of the device counts). */
static int score_image(const oclseg_dataset *ds, const oclseg_eval_options *o, int i,
                       const float *p, const uint32_t *counts, int k, uint8_t *pred,
                       oclseg_confusion *c) {
    const int S = ds->size;
    const size_t s2 = (size_t)S * S;
    if (o->score_at == OCLSEG_SCORE_DEVICE) {
        c->tp = counts[4 * k];
        c->fp = counts[4 * k + 1] - counts[4 * k];
        c->fn = counts[4 * k + 2] - counts[4 * k];
        c->tn = counts[4 * k + 3];
        return OCLSEG_OK;
    }
    if (o->probs_all) memcpy(o->probs_all + (size_t)i * s2, p, s2 * sizeof *p);
    if (o->score_at == OCLSEG_SCORE_ORIGINAL)
        return score_original(&ds->samples[i], p, S, o->mask_threshold, &o->predict,
                              o->save_masks, c);
    TRY(oclseg_probs_to_mask(p, S, S, &o->predict, pred));
    return oclseg_confusion_count_masks(pred, ds->masks + (size_t)i * s2, s2, c);
}

int oclseg_evaluate(oclseg_trainer *t, const oclseg_dataset *ds, const oclseg_eval_options *o,
                    double *loss_sum, oclseg_confusion *conf) {
    const int batch = o->batch, end = o->end > 0 ? o->end : ds->count;
    const int host = o->score_at != OCLSEG_SCORE_DEVICE;
    const size_t s2 = (size_t)ds->size * ds->size;
    float *images = malloc((size_t)batch * 3 * s2 * sizeof *images);
    float *masks = malloc((size_t)batch * s2 * sizeof *masks);
    float *probs = host ? malloc((size_t)batch * s2 * sizeof *probs) : NULL;
    uint8_t *pred = host ? malloc(s2) : NULL;
    int *idx = malloc((size_t)batch * sizeof *idx);
    uint32_t *counts = malloc((size_t)batch * 4 * sizeof *counts);
    int st = OCLSEG_OK;
    if (!images || !masks || !idx || !counts || (host && (!probs || !pred)))
        st = OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK && host && o->predict.tta_flips && !o->inf) {
        OCLSEG_ERROR("oclseg_evaluate: flip TTA needs an oclseg_infer over the model");
        st = OCLSEG_ERR_INVALID_ARG;
    }
    for (int b0 = o->first; st == OCLSEG_OK && b0 < end; b0 += batch) {
        const int n = end - b0 < batch ? end - b0 : batch;
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        float loss = 0.0f;
        st = oclseg_dataset_batch(ds, idx, n, NULL, images, masks);
        if (st == OCLSEG_OK) st = oclseg_trainer_eval_batch(t, images, masks, n, &loss, counts, probs);
        if (st == OCLSEG_OK && host && o->predict.tta_flips)
            st = oclseg_infer_batch_tta(o->inf, images, n, 1, probs);
        if (st == OCLSEG_OK) *loss_sum += (double)loss * n;
        for (int i = 0; st == OCLSEG_OK && i < n; i++) {
            st = score_image(ds, o, b0 + i, host ? probs + (size_t)i * s2 : NULL, counts, i, pred,
                             &conf[b0 + i]);
            if (st == OCLSEG_OK && o->on_image) st = o->on_image(o->user, b0 + i, &conf[b0 + i]);
        }
    }
    free(images);
    free(masks);
    free(probs);
    free(pred);
    free(idx);
    free(counts);
    return st;
}
