/* Helpers shared by the data layer's source files (not part of the public API). */
#ifndef OCLSEG_DATA_INTERNAL_H
#define OCLSEG_DATA_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Prints "oclseg: warning: <message>" to stderr (for problems skipped with skip_bad). */
static inline void __attribute__((format(printf, 1, 2))) data_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "oclseg: warning: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* An image decoded without any conversion: the values as the file stores them. */
typedef struct image_raw {
    int width, height;
    int channels;           /* 1 or 3 (alpha dropped; a JPEG always comes back as 3) */
    int bit_depth;          /* 1, 2, 4, 8 or 16: values lie in 0 .. 2^bit_depth - 1 */
    int lossy;              /* 1 for JPEG */
    int palette_size;       /* > 0: values are indices into palette (a palette PNG) */
    uint8_t palette[256][3];
    uint16_t *values;       /* (H, W, channels) */
} image_raw;

/* PNG: stored values (palette indices, 1..16-bit unscaled); JPEG: 8-bit RGB, lossy = 1. Same
 * guards and messages as oclseg_image_decode. */
int image_decode_raw(const void *data, size_t size, const char *name, image_raw *out);
int image_load_raw(const char *path, image_raw *out);
void image_raw_free(image_raw *raw);

/* ---- image decoding internals (image.c, image_png.c, image_jpeg.c) ---- */
struct oclseg_image;
/* The bomb guards (image.c): header dimensions within OCLSEG_IMAGE_MAX_*, and a file large enough
 * for the pixels its header claims (min_bytes: PNG raw / PNG_MAX_EXPANSION, JPEG pixels /
 * JPEG_MAX_PIXELS_PER_BYTE; see image.c). */
#define PNG_MAX_EXPANSION 1032ULL
#define JPEG_MAX_PIXELS_PER_BYTE 2048ULL
int image_check_dimensions(const char *name, long long width, long long height);
int image_check_data_size(const char *name, const char *format, long long width,
                          long long height, unsigned long long min_bytes, size_t size);
/* Fills out with a decoded image of width x height x channels owning `pixels`. */
void image_set(struct oclseg_image *out, int width, int height, int channels, uint8_t *pixels);
/* A savable image (1 or 3 channels, pixels present); message naming path otherwise. */
int image_check_savable(const char *path, const struct oclseg_image *img);
/* Image mode (raw NULL): 8-bit gray or RGB into out; raw mode: the stored values (image_png.c). */
int image_decode_png(const uint8_t *data, size_t size, const char *name, struct oclseg_image *out,
                     image_raw *raw);
/* 8-bit gray or RGB (image_jpeg.c). */
int image_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                      struct oclseg_image *out);

/* ---- decoding a data set (dataset.c; used by dataset_shared.c) ---- */
struct oclseg_dataset;
struct oclseg_pair_list;
struct oclseg_dataset_options;
/* The checks and defaults of oclseg_dataset_load (size, threads at most the pair count). */
int dataset_resolve_options(const struct oclseg_pair_list *pairs,
                            const struct oclseg_dataset_options *opts,
                            struct oclseg_dataset_options *o);
/* Decodes pairs lo..hi-1 into their slots of ds (images, masks, samples' size and mask info,
 * allocated for every pair) on o->threads threads; sample_status[i] gets OCLSEG_OK or the error
 * (already printed, naming the file), OCLSEG_ERR_INTERRUPTED for pairs left after an error. */
void dataset_decode_range(const struct oclseg_pair_list *pairs,
                          const struct oclseg_dataset_options *o, struct oclseg_dataset *ds,
                          int lo, int hi, int *sample_status);
/* Keeps the good samples in pair order (moving pixels: ds must be writable when any failed),
 * names them, and returns the first error (skip_bad 0) or warns about the skipped ones. */
int dataset_finish(struct oclseg_dataset *ds, const struct oclseg_pair_list *pairs, int skip_bad,
                   const int *sample_status);

/* ---- batch assembly (dataset.c; used by the loader) ---- */
struct oclseg_augment;
/* lut[c][v] = (v / 255 - mean[c]) / std[c] (the ImageNet normalisation of a byte). */
void data_normalize_lut(float lut[3][256]);
/* One sample of a batch, as oclseg_dataset_batch assembles it: sample `index` of ds (checked),
 * augmented by a (may be NULL), normalised with lut into out_img (3, S, S) and out_msk (S, S,
 * may be NULL). scratch: S*S*4 bytes (used when a does more than flips). */
int data_sample_assemble(const struct oclseg_dataset *ds, int index,
                         const struct oclseg_augment *a, const float lut[3][256],
                         uint8_t *scratch, float *out_img, float *out_msk);

#endif
