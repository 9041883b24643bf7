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

#endif
