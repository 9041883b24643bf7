/* Mask decoding: recognises how a ground-truth file encodes lesion/background and binarises it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "oclseg/data.h"

/* JPEG masks: compression noise stays near 0 and 255; at most this fraction of the pixels may lie
 * in the middle band [64, 191] (ringing along the lesion border). A grey-level image across the
 * range has far more. */
#define LOSSY_MAX_MIDDLE_FRACTION 0.10
/* A file with at most this many distinct values (and no binary pattern) is a label map. */
#define LABEL_MAP_MAX_VALUES 16

const char *oclseg_mask_encoding_name(oclseg_mask_encoding e) {
    switch (e) {
    case OCLSEG_MASK_EMPTY: return "empty (all 0)";
    case OCLSEG_MASK_BINARY: return "0/max";
    case OCLSEG_MASK_LABELS_01: return "0/1 labels";
    case OCLSEG_MASK_ONE_BIT: return "1-bit";
    case OCLSEG_MASK_PALETTE_01: return "palette indices 0/1";
    case OCLSEG_MASK_TWO_LEVEL: return "two levels";
    case OCLSEG_MASK_LOSSY: return "JPEG near 0/255";
    case OCLSEG_MASK_THRESHOLD: return "threshold";
    }
    return "?";
}

void oclseg_mask_describe(const oclseg_mask_info *info, char *buf, size_t size) {
    const char *kind = info->palette ? "palette " : info->rgb ? "RGB " : "";
    char depth[16] = "";
    if (info->bit_depth == 16) snprintf(depth, sizeof depth, " 16-bit");
    switch (info->encoding) {
    case OCLSEG_MASK_BINARY:
    case OCLSEG_MASK_TWO_LEVEL:
        snprintf(buf, size, "%s0/%u%s", kind, info->foreground_value, depth);
        break;
    case OCLSEG_MASK_LABELS_01:
        snprintf(buf, size, "%s0/1 labels%s", kind, depth);
        break;
    case OCLSEG_MASK_THRESHOLD:
        snprintf(buf, size, "%s>= %g%s", kind, info->threshold, depth);
        break;
    case OCLSEG_MASK_EMPTY:
        snprintf(buf, size, "%sempty (all 0)", kind);
        break;
    default:
        snprintf(buf, size, "%s", oclseg_mask_encoding_name(info->encoding));
        break;
    }
}

/* "0 (812 px), 1 (40 px), 7 (3 px)" for the first distinct values of a histogram. */
static void list_values(const size_t *hist, unsigned maxval, char *buf, size_t size) {
    size_t used = 0;
    int listed = 0, distinct = 0;
    buf[0] = '\0';
    for (unsigned v = 0; v <= maxval; v++) {
        if (!hist[v]) continue;
        distinct++;
        if (listed < 8 && used < size) {
            int w = snprintf(buf + used, size - used, "%s%u (%zu px)", listed ? ", " : "", v,
                             hist[v]);
            if (w > 0) used += (size_t)w;
            listed++;
        }
    }
    if (distinct > listed && used < size)
        snprintf(buf + used, size - used, ", ... (%d distinct values)", distinct);
}

/* Decides the encoding of single-channel values in 0..maxval; sets *fg_min so that a value v is
 * lesion iff v >= *fg_min (and, for a two-level mask, v == foreground_value). */
static int classify_gray(const char *name, const uint16_t *values, size_t n, unsigned maxval,
                         int lossy, oclseg_mask_info *info, unsigned *fg_min) {
    size_t *hist = calloc((size_t)maxval + 1, sizeof *hist);
    if (!hist) {
        OCLSEG_ERROR("%s: out of memory for a mask histogram", name);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    unsigned vmax = 0, distinct = 0, nonzero_value = 0;
    for (size_t i = 0; i < n; i++) hist[values[i]]++;
    for (unsigned v = 0; v <= maxval; v++) {
        if (!hist[v]) continue;
        distinct++;
        vmax = v;
        if (v) nonzero_value = v;
    }
    int status = OCLSEG_OK;
    if (vmax == 0) {
        info->encoding = OCLSEG_MASK_EMPTY;
        *fg_min = 1;
    } else if (vmax == 1 && distinct <= 2) {
        info->encoding = info->bit_depth == 1 ? OCLSEG_MASK_ONE_BIT : OCLSEG_MASK_LABELS_01;
        info->foreground_value = 1;
        *fg_min = 1;
    } else if (distinct <= 2 && (distinct == 1 || hist[0])) {
        /* 0 and one other value: 0/255, 0/65535 (the maximum of the depth) or 0/v */
        info->encoding = nonzero_value == maxval ? OCLSEG_MASK_BINARY : OCLSEG_MASK_TWO_LEVEL;
        info->foreground_value = nonzero_value;
        *fg_min = nonzero_value;
    } else if (lossy) {
        size_t middle = 0;
        for (unsigned v = 64; v <= 191 && v <= maxval; v++) middle += hist[v];
        if ((double)middle > LOSSY_MAX_MIDDLE_FRACTION * (double)n) {
            char vals[512];
            list_values(hist, maxval, vals, sizeof vals);
            OCLSEG_ERROR("%s: not a binary mask: %.1f%% of the pixels are grey levels between 64 "
                         "and 191 (a JPEG mask may have at most %.0f%%); values: %s. Pass "
                         "--mask-threshold T to count values >= T as lesion",
                         name, 100.0 * (double)middle / (double)n,
                         100 * LOSSY_MAX_MIDDLE_FRACTION, vals);
            status = OCLSEG_ERR_FORMAT;
        } else {
            info->encoding = OCLSEG_MASK_LOSSY;
            info->foreground_value = 255;
            *fg_min = 128;
        }
    } else {
        char vals[512];
        list_values(hist, maxval, vals, sizeof vals);
        if (distinct <= LABEL_MAP_MAX_VALUES)
            OCLSEG_ERROR("%s: not a binary mask: %u distinct values (%s), a label map with several "
                         "labels? Pass --mask-threshold T to count values >= T as lesion (e.g. "
                         "--mask-threshold 1: every non-zero label)", name, distinct, vals);
        else
            OCLSEG_ERROR("%s: not a binary mask: grey levels across the range (%s). Pass "
                         "--mask-threshold T to count values >= T as lesion (e.g. "
                         "--mask-threshold %u)", name, vals, (maxval + 1) / 2);
        status = OCLSEG_ERR_FORMAT;
    }
    free(hist);
    return status;
}

/* RGB values: equal channels become one; a colour mask needs a threshold (any channel >= T). */
static void rgb_to_gray(const uint16_t *rgb, size_t n, uint16_t *gray, int *is_color) {
    *is_color = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t *p = rgb + 3 * i;
        if (p[0] != p[1] || p[1] != p[2]) {
            *is_color = 1;
            break;
        }
        gray[i] = p[0];
    }
    if (*is_color) /* max over channels, for a threshold */
        for (size_t i = 0; i < n; i++) {
            const uint16_t *p = rgb + 3 * i;
            uint16_t m = p[0] > p[1] ? p[0] : p[1];
            gray[i] = m > p[2] ? m : p[2];
        }
}

/* Binarises a decoded mask file into out (values 0/1). */
static int binarize_raw(const char *name, const image_raw *raw, double threshold,
                        oclseg_image *out, oclseg_mask_info *info) {
    const size_t n = (size_t)raw->width * raw->height;
    memset(info, 0, sizeof *info);
    info->bit_depth = raw->bit_depth;
    info->threshold = threshold;
    unsigned maxval = (1u << raw->bit_depth) - 1;
    uint16_t *gray = malloc(n * sizeof *gray);
    if (!gray) {
        OCLSEG_ERROR("%s: out of memory for a %dx%d mask", name, raw->width, raw->height);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    int status = OCLSEG_OK, is_color = 0, decided = 0;
    unsigned fg_min = 1;
    const uint16_t *values = raw->values;
    if (raw->palette_size > 0) {
        /* indices 0/1 are the labels; otherwise the palette colours are the values */
        int only_01 = threshold <= 0; /* a threshold applies to the colours */
        for (size_t i = 0; i < n && only_01; i++) only_01 = raw->values[i] <= 1;
        info->palette = 1;
        if (only_01) {
            for (size_t i = 0; i < n; i++) gray[i] = raw->values[i];
            info->encoding = OCLSEG_MASK_PALETTE_01;
            info->foreground_value = 1;
            decided = 1;
        }
    }
    if (raw->palette_size > 0 && !decided) {
        uint16_t *rgb = malloc(3 * n * sizeof *rgb);
        if (!rgb) {
            free(gray);
            OCLSEG_ERROR("%s: out of memory for a %dx%d mask", name, raw->width, raw->height);
            return OCLSEG_ERR_OUT_OF_MEMORY;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned idx = raw->values[i] < (unsigned)raw->palette_size ? raw->values[i] : 0;
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = raw->palette[idx][c];
        }
        rgb_to_gray(rgb, n, gray, &is_color);
        free(rgb);
        maxval = 255;
        info->bit_depth = 8;
    } else if (raw->channels == 3) {
        rgb_to_gray(values, n, gray, &is_color);
        info->rgb = !raw->lossy;
    } else if (!decided) {
        memcpy(gray, values, n * sizeof *gray);
    }
    if (decided) {
        /* palette indices 0/1 */
    } else if (threshold > 0) {
        if (threshold > maxval) {
            OCLSEG_ERROR("%s: --mask-threshold %g exceeds the largest value of this %d-bit mask "
                         "(%u)", name, threshold, info->bit_depth, maxval);
            status = OCLSEG_ERR_INVALID_ARG;
            goto done;
        }
        info->encoding = OCLSEG_MASK_THRESHOLD;
        fg_min = (unsigned)threshold;
        if ((double)fg_min < threshold) fg_min++; /* v >= 2.5 means v >= 3 */
    } else if (is_color && !raw->lossy) {
        OCLSEG_ERROR("%s: a colour mask (its channels differ), not a grey-level or label mask. "
                     "Pass --mask-threshold T to count pixels with any channel >= T as lesion",
                     name);
        status = OCLSEG_ERR_FORMAT;
        goto done;
    } else {
        status = classify_gray(name, gray, n, maxval, raw->lossy, info, &fg_min);
        if (status != OCLSEG_OK) goto done;
    }
    status = oclseg_image_create(out, raw->width, raw->height, 1);
    if (status != OCLSEG_OK) goto done;
    size_t fg = 0;
    for (size_t i = 0; i < n; i++) {
        int lesion = gray[i] >= fg_min &&
                     (info->encoding != OCLSEG_MASK_TWO_LEVEL || gray[i] == info->foreground_value);
        out->pixels[i] = (uint8_t)lesion;
        fg += (size_t)lesion;
    }
    info->foreground_fraction = (double)fg / (double)n;
done:
    free(gray);
    return status;
}

int oclseg_mask_load(const char *path, double threshold, oclseg_image *out,
                     oclseg_mask_info *info) {
    if (!path || !out || !info) return OCLSEG_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    image_raw raw;
    TRY(image_load_raw(path, &raw));
    int st = binarize_raw(path, &raw, threshold, out, info);
    image_raw_free(&raw);
    return st;
}

int oclseg_mask_decode(const void *data, size_t size, const char *name, double threshold,
                       oclseg_image *out, oclseg_mask_info *info) {
    if (!out || !info || (!data && size)) return OCLSEG_ERR_INVALID_ARG;
    if (!name) name = "<memory>";
    memset(out, 0, sizeof *out);
    image_raw raw;
    TRY(image_decode_raw(data, size, name, &raw));
    int st = binarize_raw(name, &raw, threshold, out, info);
    image_raw_free(&raw);
    return st;
}
