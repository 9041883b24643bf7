/* libFuzzer target: PNG/JPEG decoding from memory (oclseg_image_decode) to 1 and 3 channels,
 * including the decompression-bomb guard, then small bilinear and nearest resizes of the result
 * and mask binarisation, and mask decoding (encoding recognition) of the same bytes, with the
 * decoder's invariants checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/data.h"

#define RESIZE_MAX_PIXELS (1LL << 22)

#define REQUIRE(cond)                                                                         \
    do {                                                                                      \
        if (!(cond)) __builtin_trap();                                                        \
    } while (0)

/* Reads every byte of an image (ASan checks the buffer is as large as its shape says). */
static unsigned checksum(const oclseg_image *img) {
    size_t n = (size_t)img->width * (size_t)img->height * (size_t)img->channels;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->pixels[i];
    return sum;
}

static void check_image(const oclseg_image *img, int width, int height, int channels) {
    REQUIRE(img->pixels != NULL);
    REQUIRE(img->width == width && img->height == height && img->channels == channels);
    (void)checksum(img);
}

/* Resize targets between 1 and 40 pixels a side, derived from the input so that shrinking,
 * enlarging, one axis only and the identity are all reached. */
static int target_side(int side, uint32_t salt) {
    if (salt % 5 == 0) return side <= 40 ? side : 40;
    return (int)(1 + (salt / 5 + (uint32_t)side) % 40);
}

static void resize_all(const oclseg_image *img, uint32_t salt) {
    int w = target_side(img->width, salt), h = target_side(img->height, salt >> 8);
    oclseg_image out = {0};
    if (oclseg_resize_bilinear(img, w, h, &out) == OCLSEG_OK) {
        check_image(&out, w, h, img->channels);
        oclseg_image_free(&out);
    }
    int nw = target_side(img->width, salt >> 16), nh = target_side(img->height, salt >> 24);
    if (oclseg_resize_nearest(img, nw, nh, &out) == OCLSEG_OK) {
        check_image(&out, nw, nh, img->channels);
        oclseg_mask_binarize(&out);
        size_t n = (size_t)nw * (size_t)nh * (size_t)img->channels;
        for (size_t i = 0; i < n; i++) REQUIRE(out.pixels[i] <= 1);
        oclseg_image_free(&out);
    }
    /* invalid targets are refused, not crashed on */
    REQUIRE(oclseg_resize_bilinear(img, 0, h, &out) == OCLSEG_ERR_INVALID_ARG);
    REQUIRE(oclseg_resize_nearest(img, w, -1, &out) == OCLSEG_ERR_INVALID_ARG);
}

/* Mask decoding (raw values, encoding recognition) of the same bytes: refused with a status, or
 * a 0/1 mask of the image's size with a consistent lesion fraction. */
static void check_mask(const uint8_t *data, size_t size, const oclseg_image *decoded,
                       double threshold) {
    oclseg_image m;
    oclseg_mask_info info;
    if (oclseg_mask_decode(data, size, "fuzz-mask", threshold, &m, &info) != OCLSEG_OK) {
        REQUIRE(m.pixels == NULL);
        return;
    }
    check_image(&m, decoded->width, decoded->height, 1);
    size_t n = (size_t)m.width * (size_t)m.height, fg = 0;
    for (size_t i = 0; i < n; i++) {
        REQUIRE(m.pixels[i] <= 1);
        fg += m.pixels[i];
    }
    REQUIRE(info.foreground_fraction == (double)fg / (double)n);
    REQUIRE((info.encoding == OCLSEG_MASK_THRESHOLD) == (threshold > 0));
    char desc[64];
    oclseg_mask_describe(&info, desc, sizeof desc);
    oclseg_image_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint32_t salt = 2166136261u; /* FNV-1a of the last bytes: varies the resize targets */
    for (size_t i = size > 16 ? size - 16 : 0; i < size; i++) salt = (salt ^ data[i]) * 16777619u;
    oclseg_image rgb, gray;
    int st_rgb = oclseg_image_decode(data, size, "fuzz-image", 3, &rgb);
    int st_gray = oclseg_image_decode(data, size, "fuzz-image", 1, &gray);
    /* decoding does not depend on the requested channel count */
    REQUIRE(st_rgb == st_gray);
    if (st_rgb != OCLSEG_OK) {
        REQUIRE(rgb.pixels == NULL && gray.pixels == NULL);
        return 0;
    }
    REQUIRE(rgb.width > 0 && rgb.height > 0);
    REQUIRE(rgb.width <= OCLSEG_IMAGE_MAX_SIDE && rgb.height <= OCLSEG_IMAGE_MAX_SIDE);
    REQUIRE((long long)rgb.width * rgb.height <= OCLSEG_IMAGE_MAX_PIXELS);
    check_image(&rgb, rgb.width, rgb.height, 3);
    check_image(&gray, rgb.width, rgb.height, 1);
    /* resizing is linear in the source size; large decodes (a 1-bit PNG of 30 KB can hold
     * 200 megapixels) would only slow the fuzzer down without reaching new code */
    if ((long long)rgb.width * rgb.height <= RESIZE_MAX_PIXELS) {
        resize_all(&rgb, salt);
        resize_all(&gray, salt ^ 0x9e3779b9u);
        check_mask(data, size, &gray, 0);
        check_mask(data, size, &gray, 1 + salt % 300);
    }
    oclseg_image_free(&rgb);
    oclseg_image_free(&gray);
    return 0;
}
