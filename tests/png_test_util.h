/* PNG writer for tests: any libpng colour type and bit depth, rows packed as libpng expects. */
#ifndef OCLSEG_PNG_TEST_UTIL_H
#define OCLSEG_PNG_TEST_UTIL_H

#include <check.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>

static inline void tu_write_png(const char *path, int w, int h, int bit_depth, int color_type,
                                const uint8_t *data, size_t row_bytes, const png_color *palette,
                                int palette_size) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bit_depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, palette_size);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * row_bytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

#endif
