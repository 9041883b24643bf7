/* Prediction files of the application layer: masks, overlays and probability maps of images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/infer.h"
#include "oclseg/safetensors.h"

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
    if (st == OCLSEG_OK) st = oclseg_infer_image_small(inf, &rgb, o->tta_flips);
    if (st == OCLSEG_OK) st = oclseg_image_create(&mask, rgb.width, rgb.height, 1);
    if (st == OCLSEG_OK) /* as eval scores it (evaluate.c) */
        st = oclseg_probs_to_mask_at(inf->probs, inf->model->cfg.size, rgb.width, rgb.height, o,
                                     prob, mask.pixels);
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

