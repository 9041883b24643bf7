/* Image resizing: PIL-compatible antialiased bilinear (images) and nearest (masks). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/data.h"

/* Fixed-point fraction bits of the 8-bit path (PIL: 32 - 8 - 2). */
#define PRECISION_BITS 22

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Per output pixel: the first input index, the tap count and `ksize` fixed-point weights.
 * For output pixel i the centre in input coordinates is (i + 0.5) * scale; when shrinking
 * (scale > 1) the triangle is stretched by scale, so every input pixel under it contributes
 * (antialiasing). Weights are normalized to sum 1 before conversion to fixed point. */
typedef struct filter_taps {
    int ksize;
    int *first, *count;
    int32_t *weights; /* out_size x ksize */
} filter_taps;

static void taps_free(filter_taps *t) {
    free(t->first);
    free(t->count);
    free(t->weights);
}

static int taps_compute(int in_size, int out_size, filter_taps *t) {
    double scale = (double)in_size / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filter_scale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc(sizeof(int) * (size_t)out_size);
    t->count = malloc(sizeof(int) * (size_t)out_size);
    t->weights = malloc(sizeof(int32_t) * (size_t)out_size * (size_t)t->ksize);
    double *w = malloc(sizeof(double) * (size_t)t->ksize);
    if (!t->first || !t->count || !t->weights || !w) {
        free(w);
        taps_free(t);
        OCLSEG_ERROR("out of memory computing resize weights (%d -> %d)", in_size, out_size);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double sum = 0.0;
        for (int k = 0; k < n; k++) {
            w[k] = triangle((k + lo - center + 0.5) / filter_scale);
            sum += w[k];
        }
        int32_t *dst = t->weights + (size_t)i * (size_t)t->ksize;
        for (int k = 0; k < t->ksize; k++) {
            double v = (k < n && sum != 0.0) ? w[k] / sum : 0.0;
            dst[k] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                     : 0.5 + v * (1 << PRECISION_BITS));
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    free(w);
    return OCLSEG_OK;
}

static inline uint8_t clip8(int64_t acc) {
    if (acc >= ((int64_t)255 << PRECISION_BITS)) return 255;
    if (acc <= 0) return 0;
    return (uint8_t)(acc >> PRECISION_BITS);
}

/* The horizontal pass of an RGB image with 32-bit sums, as PIL: the weights are non-negative
 * and sum to 2^22 (each rounded: at most ksize/2 more), so a sum stays below
 * 2^21 + 255 * (2^22 + ksize) < 2^31 and equals the 64-bit one. */
static void resample_horizontal_rgb(const oclseg_image *src, oclseg_image *dst,
                                    const filter_taps *t) {
    for (int y = 0; y < dst->height; y++) {
        const uint8_t *in = src->pixels + (size_t)y * src->width * 3;
        uint8_t *out = dst->pixels + (size_t)y * dst->width * 3;
        for (int x = 0; x < dst->width; x++) {
            const int32_t *w = t->weights + (size_t)x * t->ksize;
            const uint8_t *p = in + (size_t)t->first[x] * 3;
            int32_t r = 1 << (PRECISION_BITS - 1), g = r, b = r;
            for (int k = 0; k < t->count[x]; k++, p += 3) {
                r += p[0] * w[k];
                g += p[1] * w[k];
                b += p[2] * w[k];
            }
            out[3 * x] = clip8(r);
            out[3 * x + 1] = clip8(g);
            out[3 * x + 2] = clip8(b);
        }
    }
}

/* One separable pass along x (horizontal) or y. */
static void resample_horizontal(const oclseg_image *src, oclseg_image *dst, const filter_taps *t) {
    const int c = src->channels;
    if (c == 3 && t->ksize <= 4096) {
        resample_horizontal_rgb(src, dst, t);
        return;
    }
    for (int y = 0; y < dst->height; y++) {
        const uint8_t *in = src->pixels + (size_t)y * src->width * c;
        uint8_t *out = dst->pixels + (size_t)y * dst->width * c;
        for (int x = 0; x < dst->width; x++) {
            const int32_t *w = t->weights + (size_t)x * t->ksize;
            const uint8_t *p = in + (size_t)t->first[x] * c;
            for (int ch = 0; ch < c; ch++) {
                int64_t acc = 1 << (PRECISION_BITS - 1);
                for (int k = 0; k < t->count[x]; k++) acc += (int64_t)p[k * c + ch] * w[k];
                out[x * c + ch] = clip8(acc);
            }
        }
    }
}

static void resample_vertical(const oclseg_image *src, oclseg_image *dst, const filter_taps *t) {
    const int c = src->channels;
    const size_t stride = (size_t)src->width * c;
    for (int y = 0; y < dst->height; y++) {
        const int32_t *w = t->weights + (size_t)y * t->ksize;
        const uint8_t *in = src->pixels + (size_t)t->first[y] * stride;
        uint8_t *out = dst->pixels + (size_t)y * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t acc = 1 << (PRECISION_BITS - 1);
            for (int k = 0; k < t->count[y]; k++) acc += (int64_t)in[(size_t)k * stride + i] * w[k];
            out[i] = clip8(acc);
        }
    }
}

static int check_resize_args(const char *what, const oclseg_image *src, int w, int h,
                             oclseg_image *dst) {
    if (!src || !dst || !src->pixels || src->width <= 0 || src->height <= 0 ||
        (src->channels != 1 && src->channels != 3) || w <= 0 || h <= 0) {
        OCLSEG_ERROR("%s: invalid arguments (source %dx%dx%d, target %dx%d)", what,
                     src ? src->width : 0, src ? src->height : 0, src ? src->channels : 0, w, h);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int oclseg_resize_bilinear(const oclseg_image *src, int out_width, int out_height,
                           oclseg_image *dst) {
    TRY(check_resize_args("oclseg_resize_bilinear", src, out_width, out_height, dst));
    int status;
    /* PIL skips a pass whose size does not change (it would be the identity anyway). */
    oclseg_image tmp = {0};
    const oclseg_image *stage = src;
    if (out_width != src->width) {
        filter_taps t = {0};
        TRY(taps_compute(src->width, out_width, &t));
        status = oclseg_image_create(&tmp, out_width, src->height, src->channels);
        if (status == OCLSEG_OK) resample_horizontal(src, &tmp, &t);
        taps_free(&t);
        TRY(status);
        stage = &tmp;
    }
    if (out_height != src->height) {
        filter_taps t = {0};
        status = taps_compute(src->height, out_height, &t);
        if (status == OCLSEG_OK) {
            status = oclseg_image_create(dst, out_width, out_height, src->channels);
            if (status == OCLSEG_OK) resample_vertical(stage, dst, &t);
            taps_free(&t);
        }
        oclseg_image_free(&tmp);
        return status;
    }
    if (stage == &tmp) {
        *dst = tmp;
        return OCLSEG_OK;
    }
    TRY(oclseg_image_create(dst, out_width, out_height, src->channels));
    memcpy(dst->pixels, src->pixels, (size_t)out_width * out_height * src->channels);
    return OCLSEG_OK;
}

/* Source index of each output index, as PIL's affine nearest: the position starts at
 * scale / 2 and advances by scale (accumulated in double, as PIL does), then is truncated. */
static void nearest_map(int in_size, int out_size, int *map) {
    double scale = (double)in_size / out_size;
    double pos = scale * 0.5;
    for (int i = 0; i < out_size; i++) {
        int s = pos < 0.0 ? 0 : (int)pos;
        map[i] = s < in_size ? s : in_size - 1;
        pos += scale;
    }
}

int oclseg_resize_nearest(const oclseg_image *src, int out_width, int out_height,
                          oclseg_image *dst) {
    TRY(check_resize_args("oclseg_resize_nearest", src, out_width, out_height, dst));
    int *xmap = malloc(sizeof(int) * (size_t)out_width);
    int *ymap = malloc(sizeof(int) * (size_t)out_height);
    int status = (xmap && ymap) ? oclseg_image_create(dst, out_width, out_height, src->channels)
                                : OCLSEG_ERR_OUT_OF_MEMORY;
    if (status == OCLSEG_OK) {
        nearest_map(src->width, out_width, xmap);
        nearest_map(src->height, out_height, ymap);
        const int c = src->channels;
        for (int y = 0; y < out_height; y++) {
            const uint8_t *in = src->pixels + (size_t)ymap[y] * src->width * c;
            uint8_t *out = dst->pixels + (size_t)y * out_width * c;
            for (int x = 0; x < out_width; x++)
                for (int ch = 0; ch < c; ch++) out[x * c + ch] = in[(size_t)xmap[x] * c + ch];
        }
    } else if (status == OCLSEG_ERR_OUT_OF_MEMORY && (!xmap || !ymap)) {
        OCLSEG_ERROR("oclseg_resize_nearest: out of memory");
    }
    free(xmap);
    free(ymap);
    return status;
}

void oclseg_mask_binarize(oclseg_image *mask) {
    size_t n = (size_t)mask->width * mask->height * mask->channels;
    for (size_t i = 0; i < n; i++) mask->pixels[i] = mask->pixels[i] >= 128 ? 1 : 0;
}
