/* JPEG decoding (libjpeg, damaged data as errors, bomb guards) and JPEG writing. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "data/data_internal.h"
#include "oclseg/data.h"
#include "oclseg/util.h"

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

/* Decodes a JPEG (8-bit gray or RGB).
 * Long (~100 lines): setjmp/longjmp error handling keeps the decoder state in one frame. */
int image_decode_jpeg(const uint8_t *data, size_t size, const char *name, oclseg_image *out) {
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
    if ((status = image_check_dimensions(name, cinfo.image_width, cinfo.image_height)) != OCLSEG_OK)
        goto done;
    unsigned long long jpeg_pixels = (unsigned long long)cinfo.image_width * cinfo.image_height;
    if ((status = image_check_data_size(name, "JPEG", cinfo.image_width, cinfo.image_height,
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
    image_set(out, (int)width, (int)height, channels, pixels);
    pixels = NULL; /* now out's */
    status = OCLSEG_OK;
done:
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    free(row);
    return status;
}


int oclseg_image_save_jpeg(const char *path, const oclseg_image *img, int quality) {
    TRY(image_check_savable(path, img));
    if (quality < 1 || quality > 100) {
        OCLSEG_ERROR("cannot save %s: JPEG quality %d outside 1..100", path, quality);
        return OCLSEG_ERR_INVALID_ARG;
    }
    FILE *volatile f = oclseg_output_fopen(path); /* not through a link, nor into a device */
    if (!f) return OCLSEG_ERR_IO;
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

