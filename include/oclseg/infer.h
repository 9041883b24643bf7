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
 * shared by eval's scoring and predict: upsampled (align_corners=False) into prob_full
 * (width*height floats; NULL: not kept), then as oclseg_probs_to_mask. */
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
/* Writes size bytes to path atomically: a new temporary file beside it, renamed over it (a
 * reader never sees a partial file; an interrupted write leaves the previous file). A symbolic
 * link or a special file at path is refused (message naming it). Not fsync'ed: predictions can
 * be made again (checkpoints use oclseg_file_write_atomic, which is). */
int oclseg_write_output_atomic(const char *path, const void *data, size_t size);
/* An image as PNG (oclseg_png_encode_fast), written with oclseg_write_output_atomic. */
int oclseg_write_png_atomic(const char *path, const oclseg_image *img);
/* Writes <out_dir>/<id>_mask.png and <out_dir>/<id>_overlay.png for one image file (and
 * <out_dir>/<id>_prob.npy, the probabilities at the original resolution, when write_probs); o
 * (NULL: defaults) gives the TTA, threshold and post-processing. */
int oclseg_predict_file(oclseg_infer *inf, const char *image_path, const char *out_dir,
                        const oclseg_predict_options *o);


/* Where predict's time goes: seconds summed over the images (threads' time for the host
 * stages: decoding the file, resizing to S and normalising, upsampling and thresholding into
 * the mask, composing the overlay, PNG encoding and writing; the main thread's for the device). */
#define OCLSEG_PREDICT_STAGES 6
extern const char *const oclseg_predict_stage_names[OCLSEG_PREDICT_STAGES];
typedef struct oclseg_predict_stats {
    double seconds[OCLSEG_PREDICT_STAGES]; /* decode, resize, infer, mask, overlay, encode */
    double wall_s;
    int images, threads, batch; /* images predicted */
} oclseg_predict_stats;

/* How oclseg_predict_files runs. */
typedef struct oclseg_predict_run_options {
    const char *out_dir;
    oclseg_predict_options predict;
    int threads; /* worker threads (decode, resize, masks, overlays, PNG); 0: online CPUs (<= 16) */
    int batch;   /* images per device batch (at most the model's max_batch) */
    int overlay; /* also <id>_overlay.png (default 1) */
    /* Called on the calling thread for each image in input order once it is written or failed
     * (its error messages already printed); a non-OK return stops the run: no image is started
     * after it, those in the workers' hands are finished and reported, the rest dropped. NULL:
     * the first failure stops. */
    int (*on_image)(void *user, int index, int status);
    void *user;
} oclseg_predict_run_options;
void oclseg_predict_run_options_default(oclseg_predict_run_options *o);

/* Predicts paths[0..count-1] as oclseg_predict_file does, in a pipeline: worker threads decode,
 * resize, threshold, compose and encode while the calling thread runs the device in batches of
 * consecutive images. Outputs are the same bytes whatever the thread count or timing; messages
 * are printed in input order. Returns OCLSEG_OK or the status that stopped the run. */
int oclseg_predict_files(oclseg_infer *inf, const char *const *paths, int count,
                         const oclseg_predict_run_options *o, oclseg_predict_stats *stats);

#endif
