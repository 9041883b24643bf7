/* Image decode (PNG via libpng, JPEG via libjpeg-turbo; detected by magic bytes) and encode. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

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

/* The bomb guard, applied to header dimensions before the pixel buffer is allocated. */
static int check_dimensions(const char *name, long long width, long long height) {
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
#define PNG_MAX_EXPANSION 1032ULL
#define JPEG_MAX_PIXELS_PER_BYTE 2048ULL

static int check_data_size(const char *name, const char *format, long long width,
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
static int decode_png(const uint8_t *data, size_t size, const char *name, oclseg_image *out,
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
    if ((status = check_dimensions(name, width, height)) != OCLSEG_OK) goto done;
    unsigned long long raw_row = ((unsigned long long)width * png_get_channels(png, info) *
                                  (unsigned)bit_depth + 7) / 8 + 1;
    if ((status = check_data_size(name, "PNG", width, height,
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
        out->width = (int)width;
        out->height = (int)height;
        out->channels = channels;
        out->pixels = pixels;
        pixels = NULL;
    }
    status = OCLSEG_OK;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels);
    free(rows);
    return status;
}

/* ---- JPEG decode --------------------------------------------------------------------------- */

typedef struct jpeg_error_ctx {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int corrupt;       /* a warning that means damaged data (truncation, bad codes) */
    char message[JMSG_LENGTH_MAX];
} jpeg_error_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_error_ctx *err = (jpeg_error_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* libjpeg reports truncation and damaged entropy data only as warnings (and goes on with gray
 * fill); those make the file corrupt for us, and decoding stops at once (a truncated file that
 * claims 14000x14000 pixels would otherwise fill every remaining row first). Benign warnings
 * (extraneous bytes between markers, unknown JFIF revision, bad ICC marker) are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_error_ctx *err = (jpeg_error_ctx *)cinfo->err;
    if (level >= 0) return; /* trace messages */
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL) {
        if (!err->corrupt) cinfo->err->format_message(cinfo, err->message);
        err->corrupt = 1;
        longjmp(err->jump, 1);
    }
}

static int decode_jpeg(const uint8_t *data, size_t size, const char *name, oclseg_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_ctx err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = jpeg_on_error;
    err.base.emit_message = jpeg_on_message;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    volatile int status = OCLSEG_ERR_FORMAT;

    if (setjmp(err.jump)) {
        OCLSEG_ERROR("%s: corrupt or truncated JPEG: %s", name, err.message);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if ((status = check_dimensions(name, cinfo.image_width, cinfo.image_height)) != OCLSEG_OK)
        goto done;
    unsigned long long jpeg_pixels = (unsigned long long)cinfo.image_width * cinfo.image_height;
    if ((status = check_data_size(name, "JPEG", cinfo.image_width, cinfo.image_height,
                                  jpeg_pixels / JPEG_MAX_PIXELS_PER_BYTE, size)) != OCLSEG_OK)
        goto done;
    status = OCLSEG_ERR_FORMAT;

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    /* Photoshop writes CMYK inverted (255 = no ink) and marks it with an Adobe APP14 segment. */
    int adobe_inverted = cmyk && cinfo.saw_Adobe_marker;
    if (cmyk) cinfo.out_color_space = JCS_CMYK;
    else if (cinfo.jpeg_color_space == JCS_GRAYSCALE) cinfo.out_color_space = JCS_GRAYSCALE;
    else cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);

    int in_channels = cinfo.output_components;
    int channels = cmyk ? 3 : in_channels;
    if ((cmyk && in_channels != 4) || (!cmyk && in_channels != 1 && in_channels != 3)) {
        snprintf(err.message, sizeof err.message, "unsupported %d-component output",
                 in_channels);
        OCLSEG_ERROR("%s: unsupported JPEG: %s", name, err.message);
        goto done;
    }
    size_t width = cinfo.output_width, height = cinfo.output_height;
    row = malloc(width * (size_t)in_channels);
    if (!row) {
        OCLSEG_ERROR("%s: out of memory for a %zux%zu image", name, width, height);
        status = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW rowp = row;
        if (jpeg_read_scanlines(&cinfo, &rowp, 1) != 1) break;
        /* allocated once the first row has decoded: a file whose data is corrupt or missing
         * from the start fails without the full-size allocation */
        if (!pixels && !(pixels = malloc(width * height * (size_t)channels))) {
            OCLSEG_ERROR("%s: out of memory for a %zux%zu image", name, width, height);
            status = OCLSEG_ERR_OUT_OF_MEMORY;
            goto done;
        }
        uint8_t *dst = pixels + y * width * (size_t)channels;
        if (!cmyk) {
            memcpy(dst, row, width * (size_t)channels);
            continue;
        }
        for (size_t x = 0; x < width; x++) {
            unsigned c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
            if (!adobe_inverted) {
                c = 255 - c;
                m = 255 - m;
                yy = 255 - yy;
                k = 255 - k;
            }
            /* c, m, y, k are now "paper remaining" fractions: R = (1 - C)(1 - K) */
            dst[3 * x] = (uint8_t)((c * k + 127) / 255);
            dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
            dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
        }
    }
    if (cinfo.output_scanline < cinfo.output_height || err.corrupt) {
        OCLSEG_ERROR("%s: corrupt or truncated JPEG: %s", name,
                     err.corrupt ? err.message : "missing scanlines");
        goto done;
    }
    jpeg_finish_decompress(&cinfo);
    if (err.corrupt) {
        OCLSEG_ERROR("%s: corrupt or truncated JPEG: %s", name, err.message);
        goto done;
    }
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->pixels = pixels;
    pixels = NULL;
    status = OCLSEG_OK;
done:
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    free(row);
    return status;
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
        status = decode_png(bytes, size, name, out, NULL);
    } else if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
        status = decode_jpeg(bytes, size, name, out);
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
        int st = decode_png(bytes, size, name, NULL, out);
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

static int check_savable(const char *path, const oclseg_image *img) {
    if (!path || !img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        (img->channels != 1 && img->channels != 3)) {
        OCLSEG_ERROR("cannot save %s: invalid image", path ? path : "(null)");
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int oclseg_image_save_png(const char *path, const oclseg_image *img) {
    TRY(check_savable(path, img));
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)img->width;
    image.height = (png_uint_32)img->height;
    image.format = img->channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&image, path, 0, img->pixels, 0, NULL)) {
        OCLSEG_ERROR("%s: cannot write PNG: %s", path, image.message);
        png_image_free(&image);
        return OCLSEG_ERR_IO;
    }
    png_image_free(&image);
    return OCLSEG_OK;
}

int oclseg_image_save_jpeg(const char *path, const oclseg_image *img, int quality) {
    TRY(check_savable(path, img));
    if (quality < 1 || quality > 100) {
        OCLSEG_ERROR("cannot save %s: JPEG quality %d outside 1..100", path, quality);
        return OCLSEG_ERR_INVALID_ARG;
    }
    FILE *volatile f = fopen(path, "wb");
    if (!f) {
        OCLSEG_ERROR("%s: cannot create: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_error_ctx err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = jpeg_on_error;
    if (setjmp(err.jump)) {
        OCLSEG_ERROR("%s: JPEG encoding failed: %s", path, err.message);
        jpeg_destroy_compress(&cinfo);
        fclose(f);
        return OCLSEG_ERR_IO;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = img->channels;
    cinfo.in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rowp = img->pixels + (size_t)cinfo.next_scanline * stride;
        jpeg_write_scanlines(&cinfo, &rowp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(f) != 0) {
        OCLSEG_ERROR("%s: write error: %s", path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    return OCLSEG_OK;
}
