/* Image decode (PNG via libpng, JPEG via libjpeg-turbo; detected by magic bytes) and encode. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

/* ---- basics ------------------------------------------------------------------------------ */

int oclseg_image_create(oclseg_image *img, int width, int height, int channels) {
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
        OCLSEG_ERROR("oclseg_image_create: invalid shape %dx%dx%d", width, height, channels);
        return OCLSEG_ERR_INVALID_ARG;
    }
    size_t bytes = (size_t)width * (size_t)height * (size_t)channels;
    img->pixels = calloc(bytes, 1);
    if (!img->pixels) {
        OCLSEG_ERROR("out of memory allocating a %dx%dx%d image", width, height, channels);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    return OCLSEG_OK;
}

void oclseg_image_free(oclseg_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

void image_set(oclseg_image *out, int width, int height, int channels, uint8_t *pixels) {
    out->width = width;
    out->height = height;
    out->channels = channels;
    out->pixels = pixels;
}

/* The bomb guard, applied to header dimensions before the pixel buffer is allocated. */
int image_check_dimensions(const char *name, long long width, long long height) {
    if (width <= 0 || height <= 0) {
        OCLSEG_ERROR("%s: invalid image dimensions %lldx%lld", name, width, height);
        return OCLSEG_ERR_FORMAT;
    }
    if (width > OCLSEG_IMAGE_MAX_SIDE || height > OCLSEG_IMAGE_MAX_SIDE ||
        width * height > OCLSEG_IMAGE_MAX_PIXELS) {
        OCLSEG_ERROR("%s: image dimensions %lldx%lld exceed the limit (%d px a side, %lld "
                     "pixels); refusing to decode (corrupt file or decompression bomb)",
                     name, width, height, OCLSEG_IMAGE_MAX_SIDE, OCLSEG_IMAGE_MAX_PIXELS);
        return OCLSEG_ERR_FORMAT;
    }
    return OCLSEG_OK;
}

/* The second bomb guard, on the file size: a header may not claim more pixels than the file
 * could code. PNG: deflate expands at most 1032:1, so the filtered rows (one filter byte per row)
 * need more than raw / 1032 bytes. JPEG (Huffman): every 8x8 block of a full-resolution
 * component costs at least one bit, and such components cover at least a quarter of the image
 * (sampling factors 1..4), so at most 2048 pixels per byte; arithmetic-coded files get the same
 * limit (no photograph comes near it). Both hold for every complete file; the point is that a
 * 300-byte file claiming 14000x14000 fails before the 600 MB allocation, not after. */

int image_check_data_size(const char *name, const char *format, long long width,
                           long long height, unsigned long long min_bytes, size_t size) {
    if (min_bytes <= size) return OCLSEG_OK;
    OCLSEG_ERROR("%s: the %s header claims %lldx%lld pixels, which need at least %llu bytes, "
                 "but the file has %zu; refusing to decode (truncated file or decompression bomb)",
                 name, format, width, height, min_bytes, size);
    return OCLSEG_ERR_FORMAT;
}

/* ITU-R 601 luma in 16-bit fixed point, exactly as PIL's RGB -> L conversion. */
static inline uint8_t luma(const uint8_t *rgb) {
    return (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* Converts a decoded image (1 or 3 channels) in place-ish to the requested channel count. */
static int convert_channels(oclseg_image *img, int channels, const char *name) {
    if (img->channels == channels) return OCLSEG_OK;
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *out = malloc(n * (size_t)channels);
    if (!out) {
        OCLSEG_ERROR("%s: out of memory converting %dx%d image", name, img->width, img->height);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    if (img->channels == 1) {
        for (size_t i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = img->pixels[i];
    } else {
        for (size_t i = 0; i < n; i++) out[i] = luma(img->pixels + 3 * i);
    }
    free(img->pixels);
    img->pixels = out;
    img->channels = channels;
    return OCLSEG_OK;
}

/* ---- load -------------------------------------------------------------------------------------- */

int oclseg_image_decode(const void *data, size_t size, const char *name, int channels,
                        oclseg_image *out) {
    if (!out || (!data && size) || (channels != 1 && channels != 3)) {
        OCLSEG_ERROR("oclseg_image_decode(%s): invalid arguments (channels %d)",
                     name ? name : "?", channels);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (!name) name = "<memory>";
    memset(out, 0, sizeof *out);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *bytes = data;
    int status;
    if (size >= 8 && memcmp(bytes, png_magic, 8) == 0) {
        status = image_decode_png(bytes, size, name, out, NULL);
    } else if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
        status = image_decode_jpeg(bytes, size, name, out);
    } else {
        OCLSEG_ERROR("%s: not a PNG or JPEG file (%zu bytes, unknown signature)", name, size);
        return OCLSEG_ERR_FORMAT;
    }
    if (status == OCLSEG_OK) status = convert_channels(out, channels, name);
    if (status != OCLSEG_OK) oclseg_image_free(out);
    return status;
}

void image_raw_free(image_raw *raw) {
    if (!raw) return;
    free(raw->values);
    memset(raw, 0, sizeof *raw);
}

int image_decode_raw(const void *data, size_t size, const char *name, image_raw *out) {
    memset(out, 0, sizeof *out);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *bytes = data;
    if (size >= 8 && memcmp(bytes, png_magic, 8) == 0) {
        int st = image_decode_png(bytes, size, name, NULL, out);
        if (st != OCLSEG_OK) image_raw_free(out);
        return st;
    }
    oclseg_image img;
    TRY(oclseg_image_decode(data, size, name, 3, &img));
    /* a JPEG: 8-bit, lossy; gray files come back as three equal channels */
    size_t n = (size_t)img.width * img.height * 3;
    out->values = malloc(n * sizeof *out->values);
    if (!out->values) {
        OCLSEG_ERROR("%s: out of memory for a %dx%d image", name, img.width, img.height);
        oclseg_image_free(&img);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++) out->values[i] = img.pixels[i];
    out->width = img.width;
    out->height = img.height;
    out->channels = 3;
    out->bit_depth = 8;
    out->lossy = 1;
    oclseg_image_free(&img);
    return OCLSEG_OK;
}

/* A compressed file larger than this is no dermoscopy image or mask. */
#define IMAGE_FILE_MAX_BYTES (1ULL << 30)

static int read_image_file(const char *path, uint8_t **data, size_t *size) {
    char *bytes;
    TRY(oclseg_read_file(path, IMAGE_FILE_MAX_BYTES, &bytes, size));
    *data = (uint8_t *)bytes;
    return OCLSEG_OK;
}

int oclseg_image_load(const char *path, int channels, oclseg_image *out) {
    if (!path || !out) return OCLSEG_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    uint8_t *data;
    size_t size;
    TRY(read_image_file(path, &data, &size));
    int status = oclseg_image_decode(data, size, path, channels, out);
    free(data);
    return status;
}

int image_load_raw(const char *path, image_raw *out) {
    memset(out, 0, sizeof *out);
    uint8_t *data;
    size_t size;
    TRY(read_image_file(path, &data, &size));
    int status = image_decode_raw(data, size, path, out);
    free(data);
    return status;
}

/* ---- save ---------------------------------------------------------------------------------- */

int image_check_savable(const char *path, const oclseg_image *img) {
    if (!path || !img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        (img->channels != 1 && img->channels != 3)) {
        OCLSEG_ERROR("cannot save %s: invalid image", path ? path : "(null)");
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}
