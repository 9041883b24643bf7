/* Inference: eval-mode probabilities for images of any size, masks at the original resolution
 * (probabilities upsampled before thresholding), and overlays a person can look at. */
#ifndef OCLSEG_INFER_H
#define OCLSEG_INFER_H

#include "oclseg/data.h"
#include "oclseg/model.h"

typedef struct oclseg_infer {
    oclseg_ctx *ctx;
    oclseg_model *model;
    int owns;      /* created ctx/model (oclseg_infer_create) or borrowed (oclseg_infer_wrap) */
    float *input;  /* (1, 3, S, S) staging */
    float *probs;  /* (max_batch, 1, S, S) */
    int write_probs; /* oclseg_predict_file also writes <id>_prob.npy (float32 probabilities) */
} oclseg_infer;

/* Creates a context on `device` and a model of input size `size` loaded from `weights`. */
int oclseg_infer_create(const char *weights, const char *device, int size, int max_batch,
                        oclseg_infer **out);
/* Uses an existing model (e.g. at the end of training); the model stays the caller's. */
int oclseg_infer_wrap(oclseg_model *model, oclseg_infer **out);
void oclseg_infer_free(oclseg_infer *inf);

/* Sigmoid probabilities (n, 1, S, S) for n normalised images (n, 3, S, S), eval mode. */
int oclseg_infer_batch(oclseg_infer *inf, const float *images, int n, float *probs);
/* Probability map at the image's own resolution (width*height floats): the image is resized
 * to S (antialiased bilinear), run, and the probabilities upsampled back (align_corners=False). */
int oclseg_infer_image(oclseg_infer *inf, const oclseg_image *rgb, float *prob_full);

/* mask = prob > 0.5 as a 0/255 gray image of the same size. */
int oclseg_mask_from_probs(const float *prob, int width, int height, oclseg_image *mask);
/* RGB overlay: the image with the lesion lightly tinted and its contour drawn 2 px wide. */
int oclseg_overlay(const oclseg_image *rgb, const oclseg_image *mask, oclseg_image *out);
/* A (height, width) float32 array as a NumPy .npy file (format 1.0, little-endian), atomically. */
int oclseg_write_npy_f32(const char *path, const float *data, int height, int width);
/* Writes <out_dir>/<id>_mask.png and <out_dir>/<id>_overlay.png for one image file (and
 * <out_dir>/<id>_prob.npy, the probabilities at the original resolution, when write_probs). */
int oclseg_predict_file(oclseg_infer *inf, const char *image_path, const char *out_dir);

#endif
