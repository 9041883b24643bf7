/* Inference: probabilities at the model size and at the original resolution, masks, overlays. */
#include "oclseg/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/metrics.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

static int alloc_buffers(oclseg_infer *inf) {
    size_t s2 = (size_t)inf->model->cfg.size * inf->model->cfg.size;
    inf->input = malloc(3 * s2 * sizeof(float));
    inf->probs = malloc((size_t)inf->model->cfg.max_batch * s2 * sizeof(float));
    return inf->input && inf->probs ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

int oclseg_infer_create(const char *weights, const char *device, int size, int max_batch,
                        oclseg_infer **out) {
    *out = NULL;
    oclseg_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return OCLSEG_ERR_OUT_OF_MEMORY;
    inf->owns = 1;
    oclseg_ctx_options copts = {device, 0, 0};
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = size;
    cfg.max_batch = max_batch;
    int st = oclseg_ctx_create(&inf->ctx, &copts);
    if (st == OCLSEG_OK) st = oclseg_model_create(inf->ctx, &cfg, &inf->model);
    if (st == OCLSEG_OK) st = oclseg_weights_load(inf->model, weights, OCLSEG_WEIGHTS_FULL, NULL);
    if (st == OCLSEG_OK) st = alloc_buffers(inf);
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
    if (inf->owns) {
        oclseg_model_free(inf->model);
        oclseg_ctx_free(inf->ctx);
    }
    free(inf->input);
    free(inf->probs);
    free(inf->flipped);
    free(inf);
}

int oclseg_infer_batch(oclseg_infer *inf, const float *images, int n, float *probs) {
    oclseg_model *m = inf->model;
    oclseg_tensor in = oclseg_model_input(m, n);
    TRY(oclseg_tensor_write(inf->ctx, &in, images));
    TRY(oclseg_model_forward(m, n, 0, 1, 0, 0));
    oclseg_tensor logits = oclseg_model_logits(m, n);
    oclseg_tensor p = oclseg_model_logits_grad(m, n); /* free in eval: holds the probabilities */
    TRY(op_sigmoid(inf->ctx, &logits, &p));
    return oclseg_tensor_read(inf->ctx, &p, probs);
}

int oclseg_infer_image(oclseg_infer *inf, const oclseg_image *rgb, int tta_flips,
                       float *prob_full) {
    const int s = inf->model->cfg.size;
    oclseg_image small = {0};
    TRY(oclseg_resize_bilinear(rgb, s, s, &small));
    oclseg_image_normalize(small.pixels, s, s, inf->input);
    oclseg_image_free(&small);
    TRY(oclseg_infer_batch_tta(inf, inf->input, 1, tta_flips, inf->probs));
    return oclseg_upsample_bilinear_f32(inf->probs, s, s, prob_full, rgb->width, rgb->height);
}

int oclseg_overlay(const oclseg_image *rgb, const oclseg_image *mask, oclseg_image *out) {
    const int w = rgb->width, h = rgb->height;
    TRY(oclseg_image_create(out, w, h, 3));
    /* contour: a lesion pixel within `thick` pixels (Chebyshev) of a background pixel */
    const int thick = w > 600 ? 3 : 1;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const uint8_t *src = &rgb->pixels[((size_t)y * w + x) * 3];
            uint8_t *dst = &out->pixels[((size_t)y * w + x) * 3];
            int inside = mask->pixels[(size_t)y * w + x] != 0, edge = 0;
            for (int dy = -thick; inside && !edge && dy <= thick; dy++)
                for (int dx = -thick; !edge && dx <= thick; dx++) {
                    int yy = y + dy, xx = x + dx;
                    edge = yy < 0 || yy >= h || xx < 0 || xx >= w ||
                           mask->pixels[(size_t)yy * w + xx] == 0;
                }
            if (edge) { /* bright green contour */
                dst[0] = 0;
                dst[1] = 255;
                dst[2] = 0;
            } else if (inside) { /* light green tint */
                dst[0] = (uint8_t)(src[0] * 3 / 4);
                dst[1] = (uint8_t)((src[1] * 3 + 255) / 4);
                dst[2] = (uint8_t)(src[2] * 3 / 4);
            } else {
                memcpy(dst, src, 3);
            }
        }
    }
    return OCLSEG_OK;
}

int oclseg_write_npy_f32(const char *path, const float *data, int height, int width) {
    static const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) {
        OCLSEG_ERROR("%s: .npy output is written little-endian only", path);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    /* magic, version 1.0, header length, then the header dict padded with spaces and a newline
     * so that the data starts at a multiple of 64 bytes */
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", height,
                       width);
    int total = (10 + len + 1 + 63) / 64 * 64;
    size_t nbytes = (size_t)height * width * sizeof *data;
    unsigned char *buf = malloc((size_t)total + nbytes);
    if (!buf) return OCLSEG_ERR_OUT_OF_MEMORY;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((total - 10) & 0xff);
    buf[9] = (unsigned char)((total - 10) >> 8);
    memset(buf + 10, ' ', (size_t)total - 10);
    memcpy(buf + 10, header, (size_t)len);
    buf[total - 1] = '\n';
    memcpy(buf + total, data, nbytes);
    int st = oclseg_file_write_atomic(path, buf, (size_t)total + nbytes);
    free(buf);
    return st;
}

/* "dir/ISIC_0001.jpg" -> "ISIC_0001" */
static void file_id(const char *path, char *out, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

int oclseg_predict_file(oclseg_infer *inf, const char *image_path, const char *out_dir,
                        const oclseg_predict_options *o) {
    oclseg_predict_options defaults;
    oclseg_predict_options_default(&defaults);
    if (!o) o = &defaults;
    oclseg_image rgb = {0}, mask = {0}, over = {0};
    float *prob = NULL;
    int st = oclseg_image_load(image_path, 3, &rgb);
    if (st == OCLSEG_OK && !(prob = malloc((size_t)rgb.width * rgb.height * sizeof *prob)))
        st = OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_infer_image(inf, &rgb, o->tta_flips, prob);
    if (st == OCLSEG_OK) st = oclseg_image_create(&mask, rgb.width, rgb.height, 1);
    if (st == OCLSEG_OK) st = oclseg_probs_to_mask(prob, rgb.width, rgb.height, o, mask.pixels);
    for (size_t i = 0; st == OCLSEG_OK && i < (size_t)rgb.width * rgb.height; i++)
        mask.pixels[i] = mask.pixels[i] ? 255 : 0;
    if (st == OCLSEG_OK) st = oclseg_overlay(&rgb, &mask, &over);
    char id[256], path[4400];
    file_id(image_path, id, sizeof id);
    if (st == OCLSEG_OK) {
        snprintf(path, sizeof path, "%s/%s_mask.png", out_dir, id);
        st = oclseg_image_save_png(path, &mask);
    }
    if (st == OCLSEG_OK) {
        snprintf(path, sizeof path, "%s/%s_overlay.png", out_dir, id);
        st = oclseg_image_save_png(path, &over);
    }
    if (st == OCLSEG_OK && inf->write_probs) {
        snprintf(path, sizeof path, "%s/%s_prob.npy", out_dir, id);
        st = oclseg_write_npy_f32(path, prob, rgb.height, rgb.width);
    }
    free(prob);
    oclseg_image_free(&rgb);
    oclseg_image_free(&mask);
    oclseg_image_free(&over);
    return st;
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
    if (!inf->flipped &&
        !(inf->flipped = malloc((size_t)inf->model->cfg.max_batch * 4 * s2 * sizeof(float))))
        return OCLSEG_ERR_OUT_OF_MEMORY;
    float *imgs = inf->flipped, *p = inf->flipped + (size_t)inf->model->cfg.max_batch * 3 * s2;
    for (int f = 1; f < 4; f++) {
        const int fh = f & 1, fv = f >> 1;
        flip_planes(images, imgs, 3 * n, s, fh, fv);
        TRY(oclseg_infer_batch(inf, imgs, n, inf->probs));
        flip_planes(inf->probs, p, n, s, fh, fv); /* a flip is its own inverse */
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
