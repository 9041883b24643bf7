/* Inference: eval-mode probabilities for images of any size, masks at the original resolution
 * (probabilities upsampled before thresholding), and overlays a person can look at. */
#ifndef OCLSEG_INFER_H
#define OCLSEG_INFER_H

#include "oclseg/data.h"
#include "oclseg/model.h"
#include "oclseg/session.h"

typedef struct oclseg_infer {
    oclseg_ctx *ctx;
    oclseg_model *model;
    oclseg_session *session; /* owned (oclseg_infer_create) or NULL (oclseg_infer_wrap) */
    float *input;  /* (1, 3, S, S) staging */
    float *probs;  /* (max_batch, 1, S, S) */
    int write_probs; /* oclseg_predict_file also writes <id>_prob.npy (float32 probabilities) */
    float *flipped; /* (max_batch, 5, S, S) TTA staging, allocated on first use */
} oclseg_infer;

/* Creates a context on `device` and a model of input size `size` loaded from `weights`. */
int oclseg_infer_create(const char *weights, const char *device, int size, int max_batch,
                        oclseg_infer **out);
/* The same from session options (mode OCLSEG_SESSION_EVAL adds a trainer for losses). */
int oclseg_infer_create_session(const oclseg_session_options *so, oclseg_infer **out);
/* Uses an existing model (e.g. at the end of training); the model stays the caller's. */
int oclseg_infer_wrap(oclseg_model *model, oclseg_infer **out);
void oclseg_infer_free(oclseg_infer *inf);

/* Sigmoid probabilities (n, 1, S, S) for n normalised images (n, 3, S, S), eval mode. */
int oclseg_infer_batch(oclseg_infer *inf, const float *images, int n, float *probs);
/* How probabilities become masks: test-time augmentation, threshold, post-processing. */
typedef struct oclseg_predict_options {
    int tta_flips;         /* probabilities averaged over the 4 flips (none, h, v, h+v) */
    float threshold;       /* mask = prob > threshold (0.5) */
    int largest_component; /* keep the largest 8-connected component */
    int fill_holes;        /* fill background regions not connected to the border */
} oclseg_predict_options;
void oclseg_predict_options_default(oclseg_predict_options *o);

/* As oclseg_infer_batch; with tta_flips, the mean of the probabilities of the image flipped
 * left-right, top-bottom and both (each flipped back) and of the image itself. n <= max_batch. */
int oclseg_infer_batch_tta(oclseg_infer *inf, const float *images, int n, int tta_flips,
                           float *probs);
/* mask[i] = prob[i] > o->threshold (0/1), then o's post-processing. */
int oclseg_probs_to_mask(const float *prob, int width, int height,
                         const oclseg_predict_options *o, uint8_t *mask);

/* The one way probabilities at the model size (s x s) become a mask at an image's resolution,
 * shared by eval's scoring and predict: upsampled into prob_full (width*height floats,
 * align_corners=False), then oclseg_probs_to_mask. */
int oclseg_probs_to_mask_at(const float *probs, int s, int width, int height,
                            const oclseg_predict_options *o, float *prob_full, uint8_t *mask);
/* The probabilities at the model size (S x S, in inf->probs) of one image: resized to S
 * (antialiased bilinear), normalised as the data sets are, run (with tta_flips: the 4 flips). */
int oclseg_infer_image_small(oclseg_infer *inf, const oclseg_image *rgb, int tta_flips);
/* Probability map at the image's own resolution (width*height floats): the image is resized
 * to S (antialiased bilinear), run (with tta_flips: the mean over the 4 flips), and the
 * probabilities upsampled back (align_corners=False). */
int oclseg_infer_image(oclseg_infer *inf, const oclseg_image *rgb, int tta_flips,
                       float *prob_full);

/* ---- prediction files (application layer: src/app/predict.c) ---- */
/* RGB overlay: the image with the lesion lightly tinted and its contour drawn 2 px wide. */
int oclseg_overlay(const oclseg_image *rgb, const oclseg_image *mask, oclseg_image *out);
/* A (height, width) float32 array as a NumPy .npy file (format 1.0, little-endian), atomically. */
int oclseg_write_npy_f32(const char *path, const float *data, int height, int width);
/* Writes <out_dir>/<id>_mask.png and <out_dir>/<id>_overlay.png for one image file (and
 * <out_dir>/<id>_prob.npy, the probabilities at the original resolution, when write_probs); o
 * (NULL: defaults) gives the TTA, threshold and post-processing. */
int oclseg_predict_file(oclseg_infer *inf, const char *image_path, const char *out_dir,
                        const oclseg_predict_options *o);

#endif
