/* Inference core: eval-mode probabilities (batches, flip TTA, any image size) and masks. */
#include "oclseg/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/metrics.h"

static int alloc_buffers(oclseg_infer *inf) {
    size_t s2 = (size_t)inf->model->cfg.size * inf->model->cfg.size;
    inf->input = malloc(3 * s2 * sizeof(float));
    inf->probs = malloc((size_t)inf->model->cfg.max_batch * s2 * sizeof(float));
    return inf->input && inf->probs ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

int oclseg_infer_create(const char *weights, const char *device, int size, int max_batch,
                        oclseg_infer **out) {
    oclseg_session_options so;
    oclseg_session_options_default(&so);
    so.device = device;
    so.model.size = size;
    so.model.max_batch = max_batch;
    so.weights = weights;
    so.weights_source = OCLSEG_WEIGHTS_FULL;
    return oclseg_infer_create_session(&so, out);
}

int oclseg_infer_create_session(const oclseg_session_options *so, oclseg_infer **out) {
    *out = NULL;
    oclseg_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_session_create(so, &inf->session);
    if (st == OCLSEG_OK) {
        inf->ctx = inf->session->ctx;
        inf->model = inf->session->model;
        st = alloc_buffers(inf);
    }
    if (st != OCLSEG_OK) {
        oclseg_infer_free(inf);
        return st;
    }
    *out = inf;
    return OCLSEG_OK;
}

int oclseg_infer_wrap(oclseg_model *model, oclseg_infer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return OCLSEG_ERR_OUT_OF_MEMORY;
    (*out)->ctx = model->ctx;
    (*out)->model = model;
    int st = alloc_buffers(*out);
    if (st != OCLSEG_OK) {
        oclseg_infer_free(*out);
        *out = NULL;
    }
    return st;
}

void oclseg_infer_free(oclseg_infer *inf) {
    if (!inf) return;
    oclseg_session_free(inf->session);
    free(inf->input);
    free(inf->probs);
    free(inf->flipped);
    free(inf);
}

int oclseg_infer_batch(oclseg_infer *inf, const float *images, int n, float *probs) {
    oclseg_model *m = inf->model;
    oclseg_tensor in = oclseg_model_input(m, n);
    TRY(oclseg_tensor_write(inf->ctx, &in, images));
    const oclseg_pass pass = oclseg_pass_eval(n);
    TRY(oclseg_model_forward(m, &pass));
    oclseg_tensor logits = oclseg_model_logits(m, n);
    oclseg_tensor p = oclseg_model_probs(m, n);
    TRY(op_sigmoid(inf->ctx, &logits, &p));
    return oclseg_tensor_read(inf->ctx, &p, probs);
}

int oclseg_infer_image_small(oclseg_infer *inf, const oclseg_image *rgb, int tta_flips) {
    const int s = inf->model->cfg.size;
    oclseg_image small = {0};
    TRY(oclseg_resize_bilinear(rgb, s, s, &small));
    oclseg_image_normalize(small.pixels, s, s, inf->input);
    oclseg_image_free(&small);
    return oclseg_infer_batch_tta(inf, inf->input, 1, tta_flips, inf->probs);
}

int oclseg_infer_image(oclseg_infer *inf, const oclseg_image *rgb, int tta_flips,
                       float *prob_full) {
    const int s = inf->model->cfg.size;
    TRY(oclseg_infer_image_small(inf, rgb, tta_flips));
    return oclseg_upsample_bilinear_f32(inf->probs, s, s, prob_full, rgb->width, rgb->height);
}

int oclseg_probs_to_mask_at(const float *probs, int s, int width, int height,
                            const oclseg_predict_options *o, float *prob_full, uint8_t *mask) {
    TRY(oclseg_upsample_threshold_f32(probs, s, s, width, height, o->threshold, prob_full,
                                      mask));
    if (!o->largest_component && !o->fill_holes) return OCLSEG_OK;
    return oclseg_mask_postprocess(mask, width, height, o->largest_component, o->fill_holes);
}

void oclseg_predict_options_default(oclseg_predict_options *o) {
    memset(o, 0, sizeof *o);
    o->threshold = 0.5f;
}

/* Mirrors each (S x S) plane of `planes` planes: left-right if fh, top-bottom if fv. */
static void flip_planes(const float *src, float *dst, int planes, int s, int fh, int fv) {
    for (int p = 0; p < planes; p++) {
        const float *a = src + (size_t)p * s * s;
        float *b = dst + (size_t)p * s * s;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
                b[(size_t)y * s + x] = a[(size_t)(fv ? s - 1 - y : y) * s + (fh ? s - 1 - x : x)];
    }
}

int oclseg_infer_batch_tta(oclseg_infer *inf, const float *images, int n, int tta_flips,
                           float *probs) {
    const int s = inf->model->cfg.size;
    const size_t s2 = (size_t)s * s;
    if (n <= 0 || n > inf->model->cfg.max_batch) {
        OCLSEG_ERROR("oclseg_infer_batch_tta: %d images for a model of batch %d", n,
                     inf->model->cfg.max_batch);
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(oclseg_infer_batch(inf, images, n, probs));
    if (!tta_flips) return OCLSEG_OK;
    const size_t mb = (size_t)inf->model->cfg.max_batch;
    if (!inf->flipped && !(inf->flipped = malloc(mb * 5 * s2 * sizeof(float))))
        return OCLSEG_ERR_OUT_OF_MEMORY;
    /* the flipped passes get buffers of their own: `probs` may be inf->probs (predict) and
     * holds the running sum */
    float *imgs = inf->flipped, *raw = imgs + mb * 3 * s2, *p = raw + mb * s2;
    for (int f = 1; f < 4; f++) {
        const int fh = f & 1, fv = f >> 1;
        flip_planes(images, imgs, 3 * n, s, fh, fv);
        TRY(oclseg_infer_batch(inf, imgs, n, raw));
        flip_planes(raw, p, n, s, fh, fv); /* a flip is its own inverse */
        for (size_t i = 0; i < (size_t)n * s2; i++) probs[i] += p[i];
    }
    for (size_t i = 0; i < (size_t)n * s2; i++) probs[i] *= 0.25f;
    return OCLSEG_OK;
}

int oclseg_probs_to_mask(const float *prob, int width, int height,
                         const oclseg_predict_options *o, uint8_t *mask) {
    for (size_t i = 0; i < (size_t)width * height; i++) mask[i] = prob[i] > o->threshold;
    if (!o->largest_component && !o->fill_holes) return OCLSEG_OK;
    return oclseg_mask_postprocess(mask, width, height, o->largest_component, o->fill_holes);
}
