/* Segmentation metrics: per-image ISIC scores with the empty-case rule, means, pooled scores,
 * confusion counting and bilinear upsampling of probability maps. */
#include <stdlib.h>
#include <string.h>

#include "oclseg/metrics.h"

/* num / den, or 1 when den is 0: the empty-case rule (nothing to get wrong = perfect). */
static double ratio_or_one(double num, double den) { return den == 0.0 ? 1.0 : num / den; }

oclseg_scores oclseg_scores_from_confusion(const oclseg_confusion *c) {
    const double tp = (double)c->tp, fp = (double)c->fp, fn = (double)c->fn, tn = (double)c->tn;
    oclseg_scores s;
    s.accuracy = ratio_or_one(tp + tn, tp + fp + fn + tn);
    s.dice = ratio_or_one(2.0 * tp, 2.0 * tp + fp + fn);
    s.jaccard = ratio_or_one(tp, tp + fp + fn);
    s.sensitivity = ratio_or_one(tp, tp + fn);
    s.specificity = ratio_or_one(tn, tn + fp);
    return s;
}

int oclseg_metrics_compute(const oclseg_confusion *per_image, int count, oclseg_metrics *out) {
    if (!out || count < 0 || (count > 0 && !per_image)) {
        OCLSEG_ERROR("oclseg_metrics_compute: invalid arguments (count %d)", count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    out->count = count;
    oclseg_scores sum = {0};
    for (int i = 0; i < count; i++) {
        oclseg_scores s = oclseg_scores_from_confusion(&per_image[i]);
        sum.accuracy += s.accuracy;
        sum.dice += s.dice;
        sum.jaccard += s.jaccard;
        sum.sensitivity += s.sensitivity;
        sum.specificity += s.specificity;
        out->total.tp += per_image[i].tp;
        out->total.fp += per_image[i].fp;
        out->total.fn += per_image[i].fn;
        out->total.tn += per_image[i].tn;
    }
    const double n = count > 0 ? count : 1;
    out->mean.accuracy = count ? sum.accuracy / n : 1.0;
    out->mean.dice = count ? sum.dice / n : 1.0;
    out->mean.jaccard = count ? sum.jaccard / n : 1.0;
    out->mean.sensitivity = count ? sum.sensitivity / n : 1.0;
    out->mean.specificity = count ? sum.specificity / n : 1.0;
    oclseg_scores pooled = oclseg_scores_from_confusion(&out->total);
    out->pooled_dice = pooled.dice;
    out->pooled_iou = pooled.jaccard;
    return OCLSEG_OK;
}

/* Adds one pixel (prediction, truth) to the counts. */
static void tally(oclseg_confusion *c, int pred, int truth) {
    c->tp += (uint64_t)(pred && truth);
    c->fp += (uint64_t)(pred && !truth);
    c->fn += (uint64_t)(!pred && truth);
    c->tn += (uint64_t)(!pred && !truth);
}

int oclseg_confusion_count(const float *prob, const uint8_t *mask, size_t n, float threshold,
                           oclseg_confusion *out) {
    if (!out || (n && (!prob || !mask))) {
        OCLSEG_ERROR("oclseg_confusion_count: invalid arguments");
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_confusion c = {0};
    for (size_t i = 0; i < n; i++) tally(&c, prob[i] > threshold, mask[i] != 0);
    *out = c;
    return OCLSEG_OK;
}

/* Source position and weights of each output index along one axis (align_corners=False). */
static void axis_weights(int in, int out, int d, int *i0, int *i1, float *w1) {
    double pos = ((double)d + 0.5) * ((double)in / out) - 0.5;
    if (pos < 0.0) pos = 0.0;
    int lo = (int)pos;
    if (lo > in - 1) lo = in - 1;
    *i0 = lo;
    *i1 = lo + 1 < in ? lo + 1 : in - 1;
    *w1 = (float)(pos - lo);
}

/* Upsamples src row by row; each output row goes to dst (if not NULL) and, thresholded, to mask
 * (if not NULL). Each source row is interpolated along x once (every output row between two
 * source rows reuses it): the same float operations, in the same order, as a per-pixel
 * evaluation of top + (bottom - top) * wy with top and bottom interpolated along x. */
static int upsample_rows(const float *src, int src_w, int src_h, int dst_w, int dst_h,
                         float *dst, uint8_t *mask, float threshold) {
    if (!src || src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0) {
        OCLSEG_ERROR("oclseg_upsample_bilinear_f32: invalid sizes %dx%d -> %dx%d", src_w, src_h,
                     dst_w, dst_h);
        return OCLSEG_ERR_INVALID_ARG;
    }
    int *x0 = malloc((size_t)dst_w * 2 * sizeof *x0);
    float *wx = malloc((size_t)dst_w * sizeof *wx);
    float *rows = malloc((size_t)dst_w * (src_h + 1) * sizeof *rows); /* + one output row */
    int st = x0 && wx && rows ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) {
        int *x1 = x0 + dst_w;
        for (int x = 0; x < dst_w; x++) axis_weights(src_w, dst_w, x, &x0[x], &x1[x], &wx[x]);
        for (int r = 0; r < src_h; r++) {
            const float *in = src + (size_t)r * src_w;
            float *h = rows + (size_t)r * dst_w;
            for (int x = 0; x < dst_w; x++) h[x] = in[x0[x]] + (in[x1[x]] - in[x0[x]]) * wx[x];
        }
        float *line = rows + (size_t)src_h * dst_w;
        for (int y = 0; y < dst_h; y++) {
            int y0, y1;
            float wy;
            axis_weights(src_h, dst_h, y, &y0, &y1, &wy);
            const float *top = rows + (size_t)y0 * dst_w, *bottom = rows + (size_t)y1 * dst_w;
            float *out = dst ? dst + (size_t)y * dst_w : line;
            for (int x = 0; x < dst_w; x++) out[x] = top[x] + (bottom[x] - top[x]) * wy;
            if (mask)
                for (int x = 0; x < dst_w; x++)
                    mask[(size_t)y * dst_w + x] = out[x] > threshold;
        }
    }
    free(x0);
    free(wx);
    free(rows);
    return st;
}

int oclseg_upsample_bilinear_f32(const float *src, int src_w, int src_h, float *dst, int dst_w,
                                 int dst_h) {
    if (!dst) {
        OCLSEG_ERROR("oclseg_upsample_bilinear_f32: no destination");
        return OCLSEG_ERR_INVALID_ARG;
    }
    return upsample_rows(src, src_w, src_h, dst_w, dst_h, dst, NULL, 0.0f);
}

int oclseg_upsample_threshold_f32(const float *src, int src_w, int src_h, int dst_w, int dst_h,
                                  float threshold, float *dst, uint8_t *mask) {
    return upsample_rows(src, src_w, src_h, dst_w, dst_h, dst, mask, threshold);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.quantile's default (linear): position q * (n - 1) in the sorted values. */
static double quantile(const double *sorted, int n, double q) {
    const double pos = q * (n - 1);
    const int lo = (int)pos;
    const int hi = lo + 1 < n ? lo + 1 : n - 1;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

int oclseg_jaccard_summary_compute(const oclseg_confusion *per_image, int count,
                                   oclseg_jaccard_summary *out) {
    if (!out || count <= 0 || !per_image) {
        OCLSEG_ERROR("oclseg_jaccard_summary_compute: invalid arguments (count %d)", count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    double *ja = malloc((size_t)count * sizeof *ja);
    if (!ja) return OCLSEG_ERR_OUT_OF_MEMORY;
    double sum = 0.0;
    for (int i = 0; i < count; i++) {
        ja[i] = oclseg_scores_from_confusion(&per_image[i]).jaccard;
        if (ja[i] < OCLSEG_ISIC2018_JA_FLOOR) out->below_floor++;
        else sum += ja[i];
        int bin = (int)(ja[i] * 10.0);
        out->histogram[bin < 0 ? 0 : bin > 9 ? 9 : bin]++;
    }
    qsort(ja, (size_t)count, sizeof *ja, cmp_double);
    out->count = count;
    out->thresholded = sum / count;
    out->min = ja[0];
    out->max = ja[count - 1];
    out->p10 = quantile(ja, count, 0.10);
    out->p25 = quantile(ja, count, 0.25);
    out->median = quantile(ja, count, 0.50);
    out->p75 = quantile(ja, count, 0.75);
    out->p90 = quantile(ja, count, 0.90);
    free(ja);
    return OCLSEG_OK;
}

int oclseg_select_threshold(const float *probs, const uint8_t *masks, int count,
                            size_t per_image, float *threshold, double *mean_jaccard) {
    if (!probs || !masks || count <= 0 || per_image == 0 || !threshold) {
        OCLSEG_ERROR("oclseg_select_threshold: invalid arguments (count %d)", count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* candidates in order of distance from 0.5, so a strict '>' keeps the nearest on ties */
    static const float grid[] = {0.50f, 0.45f, 0.55f, 0.40f, 0.60f, 0.35f, 0.65f, 0.30f, 0.70f};
    double best = -1.0;
    for (size_t g = 0; g < sizeof grid / sizeof grid[0]; g++) {
        double sum = 0.0;
        for (int i = 0; i < count; i++) {
            oclseg_confusion c;
            TRY(oclseg_confusion_count(probs + (size_t)i * per_image, masks + (size_t)i * per_image,
                                       per_image, grid[g], &c));
            sum += oclseg_scores_from_confusion(&c).jaccard;
        }
        if (sum / count > best) {
            best = sum / count;
            *threshold = grid[g];
        }
    }
    if (mean_jaccard) *mean_jaccard = best;
    return OCLSEG_OK;
}

int oclseg_confusion_count_masks(const uint8_t *pred, const uint8_t *mask, size_t n,
                                 oclseg_confusion *out) {
    if (!out || (n && (!pred || !mask))) {
        OCLSEG_ERROR("oclseg_confusion_count_masks: invalid arguments");
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_confusion c = {0};
    for (size_t i = 0; i < n; i++) tally(&c, pred[i] != 0, mask[i] != 0);
    *out = c;
    return OCLSEG_OK;
}
