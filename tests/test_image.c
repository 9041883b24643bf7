/* Tests for image decode/encode (all PNG/JPEG variants, bad inputs) and PIL-compatible resizing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>
#include <png.h>

#include "data_test_util.h"
#include "png_test_util.h"
#include "oclseg/data.h"

static char *tmp;
static void setup(void) { tmp = tu_mkdtemp(); }
static void teardown(void) {
    tu_rmtree(tmp);
    tmp = NULL;
}

/* A deterministic test pattern (also the input of the PIL reference values below). */
static uint8_t pattern(int x, int y, int c) { return (uint8_t)((x * 37 + y * 91 + c * 53 + x * y * 13) % 256); }

static oclseg_image make_pattern(int w, int h, int c) {
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_create(&img, w, h, c), OCLSEG_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) img.pixels[(y * w + x) * c + ch] = pattern(x, y, ch);
    return img;
}

/* Writes a 4-component JPEG (CMYK), with or without the Adobe marker, quality 100. */
static void write_cmyk_jpeg(const char *path, int w, int h, const uint8_t *cmyk, int adobe) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 4;
    cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, JCS_CMYK);
    cinfo.write_Adobe_marker = adobe ? TRUE : FALSE;
    jpeg_set_quality(&cinfo, 100, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(cmyk + (size_t)cinfo.next_scanline * w * 4);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(f);
}

static void assert_pixel(const oclseg_image *img, int x, int y, int r, int g, int b, int tol) {
    const uint8_t *p = img->pixels + ((size_t)y * img->width + x) * img->channels;
    ck_assert_msg(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol,
                  "pixel (%d,%d) = (%d,%d,%d), expected (%d,%d,%d) +-%d", x, y, p[0], p[1], p[2],
                  r, g, b, tol);
}

/* ---- decode/encode ------------------------------------------------------------------------- */

START_TEST(png_roundtrip_gray_and_rgb) {
    for (int c = 1; c <= 3; c += 2) {
        oclseg_image img = make_pattern(13, 7, c), back;
        const char *path = tu_path(tmp, c == 1 ? "g.png" : "rgb.png");
        ck_assert_int_eq(oclseg_image_save_png(path, &img), OCLSEG_OK);
        ck_assert_int_eq(oclseg_image_load(path, c, &back), OCLSEG_OK);
        ck_assert_int_eq(back.width, 13);
        ck_assert_int_eq(back.height, 7);
        ck_assert_int_eq(back.channels, c);
        ck_assert(memcmp(back.pixels, img.pixels, (size_t)13 * 7 * c) == 0);
        oclseg_image_free(&img);
        oclseg_image_free(&back);
    }
}
END_TEST

START_TEST(detects_format_by_content_not_name) {
    oclseg_image img = make_pattern(8, 8, 3), back;
    ck_assert_int_eq(oclseg_image_save_png(tu_path(tmp, "really_png.jpg"), &img), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "really_png.jpg"), 3, &back), OCLSEG_OK);
    ck_assert(memcmp(back.pixels, img.pixels, 8 * 8 * 3) == 0);
    oclseg_image_free(&back);
    ck_assert_int_eq(oclseg_image_save_jpeg(tu_path(tmp, "really_jpeg.png"), &img, 90), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "really_jpeg.png"), 3, &back), OCLSEG_OK);
    ck_assert_int_eq(back.width, 8);
    oclseg_image_free(&back);
    oclseg_image_free(&img);
}
END_TEST

START_TEST(jpeg_rgb_and_gray) {
    /* Flat colour blocks survive JPEG at quality 95 within a few levels. */
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_create(&img, 32, 16, 3), OCLSEG_OK);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 32; x++) {
            uint8_t *p = img.pixels + (y * 32 + x) * 3;
            p[0] = x < 16 ? 200 : 40;
            p[1] = x < 16 ? 120 : 90;
            p[2] = x < 16 ? 60 : 160;
        }
    const char *path = tu_path(tmp, "rgb.jpg");
    ck_assert_int_eq(oclseg_image_save_jpeg(path, &img, 95), OCLSEG_OK);
    oclseg_image back, gray;
    ck_assert_int_eq(oclseg_image_load(path, 3, &back), OCLSEG_OK);
    assert_pixel(&back, 4, 4, 200, 120, 60, 3);
    assert_pixel(&back, 27, 11, 40, 90, 160, 3);
    /* RGB -> gray: ITU-R 601 luma; 0.299*200 + 0.587*120 + 0.114*60 = 137.14 */
    ck_assert_int_eq(oclseg_image_load(path, 1, &gray), OCLSEG_OK);
    ck_assert_int_eq(gray.channels, 1);
    ck_assert_int_le(abs(gray.pixels[4 * 32 + 4] - 137), 3);
    oclseg_image_free(&back);

    /* A grayscale JPEG loads as RGB with three equal channels. */
    oclseg_image g1;
    ck_assert_int_eq(oclseg_image_create(&g1, 16, 16, 1), OCLSEG_OK);
    memset(g1.pixels, 77, 256);
    ck_assert_int_eq(oclseg_image_save_jpeg(tu_path(tmp, "gray.jpg"), &g1, 95), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "gray.jpg"), 3, &back), OCLSEG_OK);
    ck_assert_int_eq(back.channels, 3);
    assert_pixel(&back, 5, 5, 77, 77, 77, 1);
    oclseg_image_free(&back);
    oclseg_image_free(&g1);
    oclseg_image_free(&gray);
    oclseg_image_free(&img);
}
END_TEST

START_TEST(jpeg_cmyk_plain_and_adobe_inverted) {
    /* ink (C, M, Y, K) = (0, 128, 255, 51) -> R = 255*(1-0)*(1-0.2) = 204,
     * G = (255-128)*(255-51)/255 = 101.6, B = 0. */
    uint8_t plain[8 * 8 * 4], inverted[8 * 8 * 4];
    const uint8_t ink[4] = {0, 128, 255, 51};
    for (int i = 0; i < 64; i++)
        for (int k = 0; k < 4; k++) {
            plain[i * 4 + k] = ink[k];
            inverted[i * 4 + k] = (uint8_t)(255 - ink[k]); /* Photoshop stores 255 - ink */
        }
    write_cmyk_jpeg(tu_path(tmp, "cmyk.jpg"), 8, 8, plain, 0);
    write_cmyk_jpeg(tu_path(tmp, "adobe.jpg"), 8, 8, inverted, 1);
    oclseg_image a, b;
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "cmyk.jpg"), 3, &a), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "adobe.jpg"), 3, &b), OCLSEG_OK);
    assert_pixel(&a, 3, 3, 204, 102, 0, 2);
    assert_pixel(&b, 3, 3, 204, 102, 0, 2);
    oclseg_image_free(&a);
    oclseg_image_free(&b);
}
END_TEST

START_TEST(png_palette_alpha_16bit_1bit) {
    /* palette, 8-bit indices */
    const png_color pal[3] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}};
    const uint8_t idx[2 * 3] = {0, 1, 2, 2, 1, 0};
    tu_write_png(tu_path(tmp, "pal.png"), 3, 2, 8, PNG_COLOR_TYPE_PALETTE, idx, 3, pal, 3);
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "pal.png"), 3, &img), OCLSEG_OK);
    assert_pixel(&img, 1, 0, 200, 100, 50, 0);
    assert_pixel(&img, 0, 1, 0, 255, 0, 0);
    oclseg_image_free(&img);

    /* RGBA: alpha is dropped, not composited (a transparent pixel keeps its colour). */
    const uint8_t rgba[2 * 4] = {250, 10, 20, 0, 30, 40, 50, 255};
    tu_write_png(tu_path(tmp, "rgba.png"), 2, 1, 8, PNG_COLOR_TYPE_RGBA, rgba, 8, NULL, 0);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "rgba.png"), 3, &img), OCLSEG_OK);
    assert_pixel(&img, 0, 0, 250, 10, 20, 0);
    assert_pixel(&img, 1, 0, 30, 40, 50, 0);
    oclseg_image_free(&img);

    /* gray + alpha read as gray (a mask saved by an editor) */
    const uint8_t ga[2 * 2] = {255, 0, 0, 255};
    tu_write_png(tu_path(tmp, "ga.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, 4, NULL, 0);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "ga.png"), 1, &img), OCLSEG_OK);
    ck_assert_int_eq(img.pixels[0], 255);
    ck_assert_int_eq(img.pixels[1], 0);
    oclseg_image_free(&img);

    /* 16-bit RGB keeps the high byte (big-endian samples). */
    const uint8_t rgb16[6] = {0x12, 0x34, 0xff, 0xff, 0x80, 0x01};
    tu_write_png(tu_path(tmp, "rgb16.png"), 1, 1, 16, PNG_COLOR_TYPE_RGB, rgb16, 6, NULL, 0);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "rgb16.png"), 3, &img), OCLSEG_OK);
    assert_pixel(&img, 0, 0, 0x12, 0xff, 0x80, 0);
    oclseg_image_free(&img);

    /* 1-bit gray mask: bits 1,0,1 -> 255, 0, 255 */
    const uint8_t bits[1] = {0xa0};
    tu_write_png(tu_path(tmp, "bw.png"), 3, 1, 1, PNG_COLOR_TYPE_GRAY, bits, 1, NULL, 0);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "bw.png"), 1, &img), OCLSEG_OK);
    ck_assert_int_eq(img.pixels[0], 255);
    ck_assert_int_eq(img.pixels[1], 0);
    ck_assert_int_eq(img.pixels[2], 255);
    oclseg_image_free(&img);

    /* RGB -> gray as PIL: pure red is L = 76 */
    const uint8_t red[3] = {255, 0, 0};
    tu_write_png(tu_path(tmp, "red.png"), 1, 1, 8, PNG_COLOR_TYPE_RGB, red, 3, NULL, 0);
    ck_assert_int_eq(oclseg_image_load(tu_path(tmp, "red.png"), 1, &img), OCLSEG_OK);
    ck_assert_int_eq(img.pixels[0], 76);
    oclseg_image_free(&img);
}
END_TEST

/* A palette PNG with a tRNS chunk (per-entry transparency): libpng expands it to RGBA; the alpha
 * is dropped as for RGBA files. Found with tests/fuzz/fuzz_image.c (was "unexpected layout"). */
START_TEST(png_palette_with_transparency) {
    const char *path = tu_path(tmp, "pal_trns.png");
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, 3, 1, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    const png_color pal[3] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}};
    const png_byte alpha[2] = {0, 128};
    png_set_PLTE(png, info, pal, 3);
    png_set_tRNS(png, info, alpha, 2, NULL);
    png_write_info(png, info);
    const uint8_t idx[3] = {2, 0, 1};
    png_write_row(png, idx);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_load(path, 3, &img), OCLSEG_OK);
    ck_assert_int_eq(img.channels, 3);
    assert_pixel(&img, 0, 0, 0, 255, 0, 0);
    assert_pixel(&img, 1, 0, 10, 20, 30, 0);
    assert_pixel(&img, 2, 0, 200, 100, 50, 0);
    oclseg_image_free(&img);
    ck_assert_int_eq(oclseg_image_load(path, 1, &img), OCLSEG_OK);
    ck_assert_int_eq(img.channels, 1);
    oclseg_image_free(&img);
}
END_TEST

/* ---- bad inputs ------------------------------------------------------------------------------ */

/* Loads a file expected to fail with `status`; the message must name the file and contain
 * `needle`. */
static void expect_load_error(const char *path, int status, const char *needle) {
    oclseg_image img;
    tu_capture_begin();
    int st = oclseg_image_load(path, 3, &img);
    const char *msg = tu_capture_end();
    ck_assert_msg(st == status, "%s: status %s, expected %s", path, oclseg_status_str(st),
                  oclseg_status_str(status));
    ck_assert(img.pixels == NULL);
    tu_assert_contains(msg, path);
    if (needle) tu_assert_contains(msg, needle);
}

START_TEST(unreadable_files) {
    expect_load_error(tu_path(tmp, "missing.png"), OCLSEG_ERR_IO, "cannot open");
    expect_load_error(tmp, OCLSEG_ERR_IO, NULL); /* a directory */
    tu_write(tu_path(tmp, "empty.jpg"), "", 0);
    expect_load_error(tu_path(tmp, "empty.jpg"), OCLSEG_ERR_FORMAT, "not a PNG or JPEG");
    tu_write(tu_path(tmp, "text.png"), "hello, not an image\n", 20);
    expect_load_error(tu_path(tmp, "text.png"), OCLSEG_ERR_FORMAT, "not a PNG or JPEG");
}
END_TEST

START_TEST(truncated_and_corrupt_files) {
    oclseg_image img = make_pattern(64, 48, 3);
    const char *jpg = tu_path(tmp, "full.jpg"), *png = tu_path(tmp, "full.png");
    ck_assert_int_eq(oclseg_image_save_jpeg(jpg, &img, 90), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_save_png(png, &img), OCLSEG_OK);
    oclseg_image_free(&img);
    size_t jn, pn;
    unsigned char *jbytes = tu_read(jpg, &jn), *pbytes = tu_read(png, &pn);

    /* truncated in the entropy-coded data, and inside the headers */
    tu_write(tu_path(tmp, "trunc.jpg"), jbytes, jn * 2 / 3);
    expect_load_error(tu_path(tmp, "trunc.jpg"), OCLSEG_ERR_FORMAT, "truncated");
    tu_write(tu_path(tmp, "trunc_head.jpg"), jbytes, 100);
    expect_load_error(tu_path(tmp, "trunc_head.jpg"), OCLSEG_ERR_FORMAT, "JPEG");
    tu_write(tu_path(tmp, "trunc.png"), pbytes, pn * 2 / 3);
    expect_load_error(tu_path(tmp, "trunc.png"), OCLSEG_ERR_FORMAT, "truncated");
    tu_write(tu_path(tmp, "trunc_head.png"), pbytes, 20);
    expect_load_error(tu_path(tmp, "trunc_head.png"), OCLSEG_ERR_FORMAT, "PNG");

    /* corrupt bytes: a flipped byte in the PNG's IDAT (CRC mismatch), garbage after the JPEG
     * SOI marker, garbage after the PNG signature */
    unsigned char *copy = malloc(pn);
    memcpy(copy, pbytes, pn);
    copy[pn / 2] ^= 0x5a;
    tu_write(tu_path(tmp, "flip.png"), copy, pn);
    expect_load_error(tu_path(tmp, "flip.png"), OCLSEG_ERR_FORMAT, "PNG");
    memset(copy + 8, 0xab, 40);
    tu_write(tu_path(tmp, "garbage.png"), copy, pn);
    expect_load_error(tu_path(tmp, "garbage.png"), OCLSEG_ERR_FORMAT, "PNG");
    free(copy);
    copy = malloc(jn);
    memcpy(copy, jbytes, jn);
    memset(copy + 4, 0x37, 60);
    tu_write(tu_path(tmp, "garbage.jpg"), copy, jn);
    expect_load_error(tu_path(tmp, "garbage.jpg"), OCLSEG_ERR_FORMAT, "JPEG");
    free(copy);
    free(jbytes);
    free(pbytes);
}
END_TEST

/* CRC-32 (PNG chunk checksums), bitwise: the test must re-sign an edited IHDR. */
static uint32_t crc32_png(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

START_TEST(absurd_dimensions_rejected_before_allocation) {
    /* A real small PNG whose IHDR is rewritten (with a valid CRC) to claim a huge size: the
     * rejection must come from the dimension guard ("exceed"), not from a failed decode or
     * allocation. 100000 x 100000 (one side too long) and 20000 x 20000 (400 megapixels). */
    oclseg_image img = make_pattern(16, 16, 3);
    ck_assert_int_eq(oclseg_image_save_png(tu_path(tmp, "small.png"), &img), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_save_jpeg(tu_path(tmp, "small.jpg"), &img, 90), OCLSEG_OK);
    oclseg_image_free(&img);
    size_t pn, jn;
    unsigned char *png = tu_read(tu_path(tmp, "small.png"), &pn);
    unsigned char *jpg = tu_read(tu_path(tmp, "small.jpg"), &jn);
    ck_assert(memcmp(png + 12, "IHDR", 4) == 0);
    const uint32_t sides[2] = {100000, 20000};
    for (int i = 0; i < 2; i++) {
        put_be32(png + 16, sides[i]);
        put_be32(png + 20, sides[i]);
        put_be32(png + 29, crc32_png(png + 12, 17));
        const char *path = tu_path(tmp, i == 0 ? "bomb1.png" : "bomb2.png");
        tu_write(path, png, pn);
        expect_load_error(path, OCLSEG_ERR_FORMAT, "exceed");
    }
    /* JPEG: the SOF0 frame header claims 65000 x 65000 (JPEG's 16-bit fields cannot say more). */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jn; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
            sof = i;
            break;
        }
    ck_assert_msg(sof > 0, "no SOF0 marker in the JPEG");
    jpg[sof + 5] = 0xfd; /* height 0xfde8 = 65000 */
    jpg[sof + 6] = 0xe8;
    jpg[sof + 7] = 0xfd; /* width */
    jpg[sof + 8] = 0xe8;
    tu_write(tu_path(tmp, "bomb.jpg"), jpg, jn);
    expect_load_error(tu_path(tmp, "bomb.jpg"), OCLSEG_ERR_FORMAT, "exceed");
    free(png);
    free(jpg);
}
END_TEST

START_TEST(more_pixels_than_the_file_can_code_rejected_before_allocation) {
    /* Within the side and pixel limits (10000 x 10000) but a file of a few hundred bytes cannot
     * code that many pixels (deflate expands at most 1032:1; JPEG needs one bit per block): the
     * guard on the file size rejects them before the 300 MB allocation. Found by
     * tests/fuzz/fuzz_image.c (a 266-byte arithmetic-coded JPEG decoded to 10760x10776). */
    oclseg_image img = make_pattern(16, 16, 3);
    ck_assert_int_eq(oclseg_image_save_png(tu_path(tmp, "small.png"), &img), OCLSEG_OK);
    ck_assert_int_eq(oclseg_image_save_jpeg(tu_path(tmp, "small.jpg"), &img, 90), OCLSEG_OK);
    oclseg_image_free(&img);
    size_t pn, jn;
    unsigned char *png = tu_read(tu_path(tmp, "small.png"), &pn);
    unsigned char *jpg = tu_read(tu_path(tmp, "small.jpg"), &jn);
    put_be32(png + 16, 10000);
    put_be32(png + 20, 10000);
    put_be32(png + 29, crc32_png(png + 12, 17));
    tu_write(tu_path(tmp, "claims.png"), png, pn);
    expect_load_error(tu_path(tmp, "claims.png"), OCLSEG_ERR_FORMAT, "decompression bomb");
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jn && !sof; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) sof = i;
    ck_assert_msg(sof > 0, "no SOF0 marker in the JPEG");
    jpg[sof + 5] = 0x27; /* height 0x2710 = 10000 */
    jpg[sof + 6] = 0x10;
    jpg[sof + 7] = 0x27; /* width */
    jpg[sof + 8] = 0x10;
    tu_write(tu_path(tmp, "claims.jpg"), jpg, jn);
    expect_load_error(tu_path(tmp, "claims.jpg"), OCLSEG_ERR_FORMAT, "decompression bomb");
    free(png);
    free(jpg);
}
END_TEST

/* ---- resize ---------------------------------------------------------------------------------- */

/* Expected values produced by Pillow 9.4 (Image.resize) from the pattern() image. Our
 * implementation follows PIL's algorithm, so they match exactly; the stated tolerance is +-1
 * (rounding of the 8-bit intermediate) so an equivalent float implementation would pass too. */
static void expect_resize(int w, int h, int c, int ow, int oh, int bilinear, const uint8_t *ref) {
    oclseg_image src = make_pattern(w, h, c), dst;
    int st = bilinear ? oclseg_resize_bilinear(&src, ow, oh, &dst)
                      : oclseg_resize_nearest(&src, ow, oh, &dst);
    ck_assert_int_eq(st, OCLSEG_OK);
    ck_assert_int_eq(dst.width, ow);
    ck_assert_int_eq(dst.height, oh);
    for (int i = 0; i < ow * oh * c; i++)
        ck_assert_msg(abs(dst.pixels[i] - ref[i]) <= 1, "%dx%dx%d -> %dx%d %s: element %d = %d, PIL %d",
                      w, h, c, ow, oh, bilinear ? "bilinear" : "nearest", i, dst.pixels[i], ref[i]);
    oclseg_image_free(&src);
    oclseg_image_free(&dst);
}

START_TEST(resize_matches_pil) {
    static const uint8_t gray_3x2[] = {110, 141, 141, 122, 145, 137};
    static const uint8_t gray_10x8[] = {
        0,   20,  46,  72,  98,  124, 150, 176, 202, 222, 40,  63,  93,  123, 153, 144,
        101, 131, 161, 184, 97,  124, 157, 181, 216, 167, 46,  83,  111, 130, 154, 186,
        184, 102, 134, 147, 136, 178, 140, 75,  130, 168, 170, 94,  132, 151, 146, 193,
        161, 101, 27,  69,  117, 159, 210, 179, 76,  128, 174, 206, 68,  114, 136, 94,
        145, 164, 143, 100, 122, 168, 108, 157, 155, 38,  88,  150, 200, 83,  81,  130};
    static const uint8_t gray_nearest_4x3[] = {0, 74, 148, 222, 182, 52, 178, 48, 108, 30, 208, 130};
    static const uint8_t gray_nearest_9x7[] = {
        0,   37,  37,  74,  111, 148, 185, 185, 222, 91,  141, 141, 191, 241, 35,  85,
        85,  135, 91,  141, 141, 191, 241, 35,  85,  85,  135, 182, 245, 245, 52,  115,
        178, 241, 241, 48,  17,  93,  93,  169, 245, 65,  141, 141, 217, 17,  93,  93,
        169, 245, 65,  141, 141, 217, 108, 197, 197, 30,  119, 208, 41,  41,  130};
    static const uint8_t rgb_4x3[] = {96,  133, 151, 137, 141, 153, 139, 145, 136, 127, 116, 109,
                                      132, 143, 121, 147, 131, 126, 141, 116, 145, 125, 133, 137,
                                      120, 173, 131, 149, 117, 150, 126, 134, 141, 143, 101, 154};
    expect_resize(7, 5, 1, 3, 2, 1, gray_3x2);
    expect_resize(7, 5, 1, 10, 8, 1, gray_10x8);
    expect_resize(7, 5, 1, 4, 3, 0, gray_nearest_4x3);
    expect_resize(7, 5, 1, 9, 7, 0, gray_nearest_9x7);
    expect_resize(9, 6, 3, 4, 3, 1, rgb_4x3);
}
END_TEST

START_TEST(resize_constant_stays_constant) {
    const int sizes[][4] = {{37, 23, 128, 128}, {300, 211, 128, 128}, {5, 3, 17, 29}, {128, 128, 128, 128}};
    for (int s = 0; s < 4; s++)
        for (int c = 1; c <= 3; c += 2) {
            oclseg_image src, dst;
            ck_assert_int_eq(oclseg_image_create(&src, sizes[s][0], sizes[s][1], c), OCLSEG_OK);
            memset(src.pixels, 173, (size_t)sizes[s][0] * sizes[s][1] * c);
            ck_assert_int_eq(oclseg_resize_bilinear(&src, sizes[s][2], sizes[s][3], &dst), OCLSEG_OK);
            for (int i = 0; i < sizes[s][2] * sizes[s][3] * c; i++) ck_assert_int_eq(dst.pixels[i], 173);
            oclseg_image_free(&dst);
            ck_assert_int_eq(oclseg_resize_nearest(&src, sizes[s][2], sizes[s][3], &dst), OCLSEG_OK);
            for (int i = 0; i < sizes[s][2] * sizes[s][3] * c; i++) ck_assert_int_eq(dst.pixels[i], 173);
            oclseg_image_free(&dst);
            oclseg_image_free(&src);
        }
}
END_TEST

START_TEST(resize_2x_downsample_independent_reference) {
    /* Shrinking by 2, the triangle filter spans 4 input pixels with weights 1/8, 3/8, 3/8, 1/8
     * (renormalized where the window leaves the image). Reference computed here in double,
     * separably: tolerance +-1 for the rounded 8-bit intermediate of the real implementation. */
    const int w = 20, h = 14;
    oclseg_image src = make_pattern(w, h, 1), dst;
    ck_assert_int_eq(oclseg_resize_bilinear(&src, w / 2, h / 2, &dst), OCLSEG_OK);
    const double k[4] = {1.0 / 8, 3.0 / 8, 3.0 / 8, 1.0 / 8};
    for (int oy = 0; oy < h / 2; oy++)
        for (int ox = 0; ox < w / 2; ox++) {
            double acc = 0, wsum = 0;
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i++) {
                    int x = 2 * ox - 1 + i, y = 2 * oy - 1 + j;
                    if (x < 0 || x >= w || y < 0 || y >= h) continue;
                    acc += k[i] * k[j] * src.pixels[y * w + x];
                    wsum += k[i] * k[j];
                }
            int ref = (int)floor(acc / wsum + 0.5);
            int got = dst.pixels[oy * (w / 2) + ox];
            ck_assert_msg(abs(got - ref) <= 1, "(%d,%d): %d vs reference %d", ox, oy, got, ref);
        }
    oclseg_image_free(&src);
    oclseg_image_free(&dst);
}
END_TEST

START_TEST(mask_nearest_and_binarize) {
    /* A 0/255 mask resized 3x down stays binary; >= 128 -> 1. */
    oclseg_image m, r;
    ck_assert_int_eq(oclseg_image_create(&m, 9, 9, 1), OCLSEG_OK);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++) m.pixels[y * 9 + x] = (x >= 3 && y >= 3) ? 255 : 0;
    m.pixels[1 * 9 + 1] = 128; /* sampled by output (0, 0): -> 1 */
    m.pixels[4 * 9 + 1] = 127; /* sampled by output (0, 1): -> 0 */
    ck_assert_int_eq(oclseg_resize_nearest(&m, 3, 3, &r), OCLSEG_OK);
    /* src index = floor((dst + 0.5) * 3) = 1, 4, 7 */
    oclseg_mask_binarize(&r);
    const uint8_t want[9] = {1, 0, 0, 0, 1, 1, 0, 1, 1};
    for (int i = 0; i < 9; i++) ck_assert_int_eq(r.pixels[i], want[i]);
    oclseg_image_free(&m);
    oclseg_image_free(&r);
}
END_TEST

START_TEST(invalid_arguments) {
    oclseg_image img, out;
    tu_capture_begin();
    ck_assert_int_eq(oclseg_image_create(&img, 0, 5, 3), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_image_create(&img, 5, 5, 2), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_image_create(&img, 5, 5, 3), OCLSEG_OK);
    ck_assert_int_eq(oclseg_resize_bilinear(&img, 0, 4, &out), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_image_save_jpeg(tu_path(tmp, "q.jpg"), &img, 0), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_image_save_png(tu_path(tmp, "no/such/dir.png"), &img), OCLSEG_ERR_IO);
    tu_capture_end();
    oclseg_image_free(&img);
}
END_TEST

int main(void) {
    Suite *s = suite_create("image");
    TCase *io = tcase_create("io");
    tcase_add_checked_fixture(io, setup, teardown);
    tcase_add_test(io, png_roundtrip_gray_and_rgb);
    tcase_add_test(io, detects_format_by_content_not_name);
    tcase_add_test(io, jpeg_rgb_and_gray);
    tcase_add_test(io, jpeg_cmyk_plain_and_adobe_inverted);
    tcase_add_test(io, png_palette_alpha_16bit_1bit);
    tcase_add_test(io, png_palette_with_transparency);
    tcase_add_test(io, unreadable_files);
    tcase_add_test(io, truncated_and_corrupt_files);
    tcase_add_test(io, absurd_dimensions_rejected_before_allocation);
    tcase_add_test(io, more_pixels_than_the_file_can_code_rejected_before_allocation);
    tcase_add_test(io, invalid_arguments);
    suite_add_tcase(s, io);
    TCase *rs = tcase_create("resize");
    tcase_add_test(rs, resize_matches_pil);
    tcase_add_test(rs, resize_constant_stays_constant);
    tcase_add_test(rs, resize_2x_downsample_independent_reference);
    tcase_add_test(rs, mask_nearest_and_binarize);
    suite_add_tcase(s, rs);
    return tu_run(s);
}
