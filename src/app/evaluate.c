/* The evaluation loop shared by training (validation, final report) and `oclseg eval`. */
#include "oclseg/evaluate.h"
#include "oclseg/env.h"
#include "oclseg/ordered_pool.h"

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

/* Batches in flight: the device runs batch b while the workers score batch b - 1; batch b's
 * probabilities and counts live in slot b % EVAL_DEPTH until its images are taken. */
enum { EVAL_DEPTH = 2 };

/* What the scoring tasks share: task j scores image first + j of batch j / batch. */
typedef struct eval_run {
    const oclseg_dataset *ds;
    const oclseg_eval_options *o;
    int first, batch, depth;
    float *probs;     /* depth slots of batch * S * S */
    uint32_t *counts; /* depth slots of batch * 4 */
    oclseg_confusion *conf;
} eval_run;

static int score_task(void *ctx, int j) {
    const eval_run *r = ctx;
    const size_t s2 = (size_t)r->ds->size * r->ds->size;
    const int slot = j / r->batch % r->depth, k = j % r->batch;
    const size_t row = (size_t)slot * r->batch + (size_t)k;
    uint8_t *pred = NULL; /* the model-size mask: a task's own */
    if (r->o->score_at == OCLSEG_SCORE_MODEL_SIZE && !(pred = malloc(s2)))
        return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = score_image(r->ds, r->o, r->first + j, r->probs ? r->probs + row * s2 : NULL,
                         r->counts + (size_t)slot * r->batch * 4, k, pred,
                         &r->conf[r->first + j]);
    free(pred);
    return st;
}

/* Takes the scored images below `end` (tasks) in order, calling on_image for each. */
static int take_scored(oclseg_ordered_pool *pool, const eval_run *r, int end) {
    while (oclseg_ordered_pool_taken(pool) < end) {
        int j;
        TRY(oclseg_ordered_pool_take(pool, &j));
        if (r->o->on_image) TRY(r->o->on_image(r->o->user, r->first + j, &r->conf[r->first + j]));
    }
    return OCLSEG_OK;
}

int oclseg_evaluate(oclseg_trainer *t, const oclseg_dataset *ds, const oclseg_eval_options *o,
                    double *loss_sum, oclseg_confusion *conf) {
    const int batch = o->batch, end = o->end > 0 ? o->end : ds->count;
    const int host = o->score_at != OCLSEG_SCORE_DEVICE;
    const int threads = o->threads > 0 ? o->threads : 0;
    /* without workers, each batch is scored before the next runs (one slot) */
    eval_run r = {.ds = ds, .o = o, .first = o->first, .batch = batch, .conf = conf,
                  .depth = threads ? EVAL_DEPTH : 1};
    const size_t s2 = (size_t)ds->size * ds->size;
    float *images = malloc((size_t)batch * 3 * s2 * sizeof *images);
    float *masks = malloc((size_t)batch * s2 * sizeof *masks);
    r.probs = host ? malloc((size_t)r.depth * batch * s2 * sizeof *r.probs) : NULL;
    r.counts = malloc((size_t)r.depth * batch * 4 * sizeof *r.counts);
    int *idx = malloc((size_t)batch * sizeof *idx);
    oclseg_ordered_pool *pool = NULL;
    int st = OCLSEG_OK;
    if (!images || !masks || !idx || !r.counts || (host && !r.probs))
        st = OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK && host && o->predict.tta_flips && !o->inf) {
        OCLSEG_ERROR("oclseg_evaluate: flip TTA needs an oclseg_infer over the model");
        st = OCLSEG_ERR_INVALID_ARG;
    }
    (void)oclseg_env_get(); /* read once, before the threads (the workers' writes consult it) */
    if (st == OCLSEG_OK)
        st = oclseg_ordered_pool_create(threads, r.depth * batch, score_task, &r, &pool);
    for (int b0 = o->first; st == OCLSEG_OK && b0 < end; b0 += batch) {
        const int n = end - b0 < batch ? end - b0 : batch;
        const int slot = (b0 - o->first) / batch % r.depth;
        float *probs = host ? r.probs + (size_t)slot * batch * s2 : NULL;
        /* the images that used this slot are taken first */
        st = take_scored(pool, &r, b0 - o->first - (r.depth - 1) * batch);
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        float loss = 0.0f;
        if (st == OCLSEG_OK) st = oclseg_dataset_batch(ds, idx, n, NULL, images, masks);
        if (st == OCLSEG_OK)
            st = oclseg_trainer_eval_batch(t, images, masks, n, &loss,
                                           r.counts + (size_t)slot * batch * 4, probs);
        if (st == OCLSEG_OK && host && o->predict.tta_flips)
            st = oclseg_infer_batch_tta(o->inf, images, n, 1, probs);
        if (st == OCLSEG_OK) *loss_sum += (double)loss * n;
        if (st == OCLSEG_OK) st = oclseg_ordered_pool_release(pool, b0 - o->first + n);
    }
    if (st == OCLSEG_OK) st = take_scored(pool, &r, end - o->first);
    oclseg_ordered_pool_free(pool);
    free(images);
    free(masks);
    free(r.probs);
    free(r.counts);
    free(idx);
    return st;
}
