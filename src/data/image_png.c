/* PNG decoding (image and raw modes, libpng with guards against bombs and truncation) and
 * PNG writing. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#include "data/data_internal.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

/* ---- PNG decode ---------------------------------------------------------------------------- */

typedef struct png_reader {
    const uint8_t *data;
    size_t size, pos;
    const char *name;
    char message[256]; /* libpng's error text */
} png_reader;

static void png_read_from_memory(png_structp png, png_bytep dst, png_size_t len) {
    png_reader *r = png_get_io_ptr(png);
    if (len > r->size - r->pos) png_error(png, "unexpected end of file (truncated)");
    memcpy(dst, r->data + r->pos, len);
    r->pos += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk problems (bad iCCP, CRC of a text chunk): harmless */
}

/* Decodes a PNG. Image mode (raw == NULL): 8-bit gray or RGB into out, palettes expanded, 16-bit
 * reduced to its high byte, 1/2/4-bit gray scaled to 0..255. Raw mode (raw != NULL, out unused):
 * the stored values as they are (palette indices with the palette, 1..16-bit values unscaled, 16-bit
 * as native uint16); alpha is dropped in both modes. */
/* Long (~120 lines): setjmp/longjmp error handling keeps the decoder state in one frame. */
int image_decode_png(const uint8_t *data, size_t size, const char *name, oclseg_image *out,
                      image_raw *raw) {
    png_reader reader = {.data = data, .size = size, .pos = 0, .name = name, .message = ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_on_error,
                                             png_on_warning);
    if (!png) return OCLSEG_ERR_OUT_OF_MEMORY;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    /* Written after setjmp and read after a longjmp: must be volatile. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = OCLSEG_ERR_FORMAT;

    if (setjmp(png_jmpbuf(png))) {
        OCLSEG_ERROR("%s: corrupt or truncated PNG: %s", name, reader.message);
        goto done;
    }
    png_set_read_fn(png, &reader, png_read_from_memory);
    png_read_info(png, info);
    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if ((status = image_check_dimensions(name, width, height)) != OCLSEG_OK) goto done;
    unsigned long long raw_row = ((unsigned long long)width * png_get_channels(png, info) *
                                  (unsigned)bit_depth + 7) / 8 + 1;
    if ((status = image_check_data_size(name, "PNG", width, height,
                                  raw_row * height / PNG_MAX_EXPANSION, size)) != OCLSEG_OK)
        goto done;
    status = OCLSEG_ERR_FORMAT;

    int sample_bytes = 1;
    if (!raw) {
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
            png_set_expand_gray_1_2_4_to_8(png);
        if (bit_depth == 16) png_set_strip_16(png);
        /* a palette with a tRNS chunk expands to RGBA: its alpha is dropped like an alpha channel */
        if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
            png_set_strip_alpha(png);
    } else {
        if (bit_depth < 8) png_set_packing(png); /* one byte per value, not scaled */
        if (bit_depth == 16) {
            sample_bytes = 2;
            const uint16_t probe = 1;
            if (*(const uint8_t *)&probe == 1) png_set_swap(png); /* PNG stores big-endian */
        }
        if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            png_colorp palette = NULL;
            int entries = 0;
            if (png_get_PLTE(png, info, &palette, &entries) != PNG_INFO_PLTE || entries < 1) {
                snprintf(reader.message, sizeof reader.message, "palette image without PLTE");
                OCLSEG_ERROR("%s: corrupt PNG: %s", name, reader.message);
                goto done;
            }
            raw->palette_size = entries > 256 ? 256 : entries;
            for (int i = 0; i < raw->palette_size; i++) {
                raw->palette[i][0] = palette[i].red;
                raw->palette[i][1] = palette[i].green;
                raw->palette[i][2] = palette[i].blue;
            }
        }
        raw->bit_depth = bit_depth;
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((channels != 1 && channels != 3) ||
        rowbytes != (size_t)width * (size_t)channels * (size_t)sample_bytes) {
        snprintf(reader.message, sizeof reader.message, "unexpected layout (%d channels)",
                 channels);
        OCLSEG_ERROR("%s: unsupported PNG: %s", name, reader.message);
        goto done;
    }
    pixels = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) {
        OCLSEG_ERROR("%s: out of memory for a %ux%u image", name, (unsigned)width,
                     (unsigned)height);
        status = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    if (raw) {
        raw->width = (int)width;
        raw->height = (int)height;
        raw->channels = channels;
        raw->values = malloc((size_t)width * height * (size_t)channels * sizeof *raw->values);
        if (!raw->values) {
            OCLSEG_ERROR("%s: out of memory for a %ux%u image", name, (unsigned)width,
                         (unsigned)height);
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
        size_t n = (size_t)width * height * (size_t)channels;
        if (sample_bytes == 2) memcpy(raw->values, pixels, n * 2);
        else for (size_t i = 0; i < n; i++) raw->values[i] = pixels[i];
    } else {
        image_set(out, (int)width, (int)height, channels, pixels);
        pixels = NULL; /* now out's */
    }
    status = OCLSEG_OK;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels);
    free(rows);
    return status;
}


int oclseg_image_save_png(const char *path, const oclseg_image *img) {
    TRY(image_check_savable(path, img));
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)img->width;
    image.height = (png_uint_32)img->height;
    image.format = img->channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    FILE *f = oclseg_output_fopen(path); /* not through a link, nor into a device */
    if (!f) return OCLSEG_ERR_IO;
    int ok = png_image_write_to_stdio(&image, f, 0, img->pixels, 0, NULL);
    int closed = fclose(f) == 0;
    if (!ok || !closed) {
        OCLSEG_ERROR("%s: cannot write PNG: %s", path, ok ? strerror(errno) : image.message);
        png_image_free(&image);
        remove(path);
        return OCLSEG_ERR_IO;
    }
    png_image_free(&image);
    return OCLSEG_OK;
}

/* ---- fast PNG encode into memory ------------------------------------------------------------ */

typedef struct png_buffer {
    uint8_t *data;
    size_t size, cap;
    int failed; /* out of memory */
} png_buffer;

static void png_write_to_buffer(png_structp png, png_bytep src, png_size_t len) {
    png_buffer *b = png_get_io_ptr(png);
    if (b->failed) return;
    if (len > b->cap - b->size) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->size < len) cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            png_error(png, "out of memory");
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->size, src, len);
    b->size += len;
}

static void png_flush_nothing(png_structp png) { (void)png; }

int oclseg_png_encode_fast(const oclseg_image *img, uint8_t **data, size_t *size) {
    *data = NULL;
    *size = 0;
    TRY(image_check_savable("(PNG in memory)", img));
    png_reader err = {.name = "(PNG in memory)", .message = ""}; /* only its message is used */
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    /* room for a photograph's compressed size at once (untouched pages cost nothing): the
     * buffer is not grown and copied while zlib writes */
    png_buffer buf = {0};
    buf.cap = (size_t)img->width * img->height * img->channels / 2 + 65536;
    if (!(buf.data = malloc(buf.cap))) buf.cap = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(buf.data);
        OCLSEG_ERROR("cannot encode a %dx%d PNG: %s", img->width, img->height, err.message);
        return buf.failed ? OCLSEG_ERR_OUT_OF_MEMORY : OCLSEG_ERR_INTERNAL;
    }
    png_set_write_fn(png, &buf, png_write_to_buffer, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    /* zlib's fastest level with run-length matching (as OpenCV's imwrite default); masks (runs
     * of 0 and 255) unfiltered, RGB with the Sub filter */
    png_set_compression_level(png, 1);
    png_set_compression_strategy(png, Z_RLE);
    png_set_filter(png, PNG_FILTER_TYPE_BASE,
                   img->channels == 1 ? PNG_FILTER_NONE : PNG_FILTER_SUB);
    png_write_info(png, info);
    const size_t stride = (size_t)img->width * img->channels;
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)(img->pixels + (size_t)y * stride));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *data = buf.data;
    *size = buf.size;
    return OCLSEG_OK;
}
