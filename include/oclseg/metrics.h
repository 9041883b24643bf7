/* Segmentation metrics (ISIC 2016 per-image AC/DI/JA/SE/SP, their means, pooled Dice/IoU),
 * confusion counting at a threshold, and bilinear upsampling of probability maps. */
#ifndef OCLSEG_METRICS_H
#define OCLSEG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "oclseg/status.h"

/* Pixel counts of one image: prediction positive/negative against truth positive/negative. */
typedef struct oclseg_confusion {
    uint64_t tp, fp, fn, tn;
} oclseg_confusion;

/* Scores of one image (ISIC 2016 Part 1 definitions):
 *   accuracy    AC = (tp + tn) / (tp + fp + fn + tn)
 *   dice        DI = 2 tp / (2 tp + fp + fn)
 *   jaccard     JA = tp / (tp + fp + fn)
 *   sensitivity SE = tp / (tp + fn)
 *   specificity SP = tn / (tn + fp)
 * Empty-case rule: a metric whose denominator is 0 is 1 (perfect agreement): DI and JA when
 * prediction and truth are both empty, SE when the truth is empty (nothing to find), SP when
 * there are no negative pixels, AC on an image of no pixels. */
typedef struct oclseg_scores {
    double accuracy, dice, jaccard, sensitivity, specificity;
} oclseg_scores;

/* Means over images of each per-image score (how ISIC ranks), plus pooled Dice and IoU
 * (counts summed over all images first: one big image). Note that per image
 * IoU = Dice / (2 - Dice) <= Dice, so mean IoU <= mean Dice always: a report of IoU 0.30
 * next to Dice 0.75 is impossible for the same predictions. */
typedef struct oclseg_metrics {
    int count;
    oclseg_scores mean;
    double pooled_dice, pooled_iou;
    oclseg_confusion total; /* summed counts */
} oclseg_metrics;

oclseg_scores oclseg_scores_from_confusion(const oclseg_confusion *c);

/* Means and pooled scores of `count` images (count 0 gives all ones and count 0). */
int oclseg_metrics_compute(const oclseg_confusion *per_image, int count, oclseg_metrics *out);

/* Counts one image: prediction = prob > threshold, truth = mask != 0, over n pixels. */
int oclseg_confusion_count(const float *prob, const uint8_t *mask, size_t n, float threshold,
                           oclseg_confusion *out);

/* ISIC 2018 Task 1 scoring and the per-image Jaccard distribution of `count` images. */
#define OCLSEG_ISIC2018_JA_FLOOR 0.65
typedef struct oclseg_jaccard_summary {
    int count;
    double thresholded; /* mean per-image JA with every JA < 0.65 counted as 0 (ISIC 2018) */
    int below_floor;    /* images with JA < 0.65 */
    double min, p10, p25, median, p75, p90, max; /* quantiles, linear interpolation (numpy) */
    int histogram[10];  /* images with JA in [k/10, (k+1)/10); bin 9 includes 1 */
} oclseg_jaccard_summary;
int oclseg_jaccard_summary_compute(const oclseg_confusion *per_image, int count,
                                   oclseg_jaccard_summary *out);

/* Decision threshold chosen on a validation set: the probability threshold in
 * {0.30, 0.35, ..., 0.70} with the highest mean per-image Jaccard of prob > t over `count`
 * images of `per_image` pixels (masks 0/non-0); ties go to the threshold nearest 0.5. */
int oclseg_select_threshold(const float *probs, const uint8_t *masks, int count,
                            size_t per_image, float *threshold, double *mean_jaccard);

/* Counts one image from a predicted mask: prediction = pred != 0, truth = mask != 0. */
int oclseg_confusion_count_masks(const uint8_t *pred, const uint8_t *mask, size_t n,
                                 oclseg_confusion *out);

/* Bilinear resize of a single-channel float map (src_w x src_h -> dst_w x dst_h) with
 * align_corners=False semantics (PyTorch's F.interpolate(..., 'bilinear',
 * align_corners=False)): source coordinate (d + 0.5) * in / out - 0.5, clamped at 0 below and
 * at the last pixel above. Used to bring predictions back to the original image size. */
int oclseg_upsample_bilinear_f32(const float *src, int src_w, int src_h, float *dst, int dst_w,
                                 int dst_h);
/* The same upsampling thresholded: mask[i] = (upsampled value > threshold) (0/1), the values
 * also into dst unless dst is NULL (then no full-size float map is held). */
int oclseg_upsample_threshold_f32(const float *src, int src_w, int src_h, int dst_w, int dst_h,
                                  float threshold, float *dst, uint8_t *mask);

#endif
