/* Tests of oclseg_augment_apply itself, against references written here in double precision on a
 * small odd-sized image whose every pixel differs: neutral parameters give the input back, the 8
 * flips/transposes and a 90-degree warp move each pixel where the index arithmetic says, a
 * general affine warp and the colour jitter equal their double references (rounded), the mask
 * moves with the image, and a seed's augmentation is reproduced byte for byte. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data_test_util.h"
#include "oclseg/data.h"

enum { S = 7, PIX = S * S };

/* Every pixel and channel distinct and no symmetry: a flip or transpose always shows. The mask
 * holds each pixel's label (1 + index), so where a mask value lands says which pixel went there. */
static void make_sample(uint8_t *rgb, uint8_t *mask) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t *p = &rgb[(y * S + x) * 3];
            p[0] = (uint8_t)(3 + 35 * x + 5 * y);
            p[1] = (uint8_t)(7 + 36 * y + 2 * x);
            p[2] = (uint8_t)(11 + 5 * x * y + x);
            mask[y * S + x] = (uint8_t)(1 + y * S + x);
        }
}

/* The flips and transpose by index: output (x, y) shows source pixel (*sx, *sy). */
static void dihedral_source(const oclseg_augment *a, int x, int y, int *sx, int *sy) {
    if (a->flip_h) x = S - 1 - x;
    if (a->flip_v) y = S - 1 - y;
    *sx = a->transpose ? y : x;
    *sy = a->transpose ? x : y;
}

/* Source position in pixel coordinates of output pixel (x, y): the flips/transpose by index,
 * then the affine m on the pixel centre in [-1, 1] coordinates, clamped to the image. */
static void warp_source(const oclseg_augment *a, int x, int y, double *fx, double *fy) {
    int dx, dy;
    dihedral_source(a, x, y, &dx, &dy);
    const double u = (2.0 * dx + 1.0) / S - 1.0, v = (2.0 * dy + 1.0) / S - 1.0;
    double su = u, sv = v;
    if (a->warp) {
        su = (double)a->m[0] * u + (double)a->m[1] * v + (double)a->m[2];
        sv = (double)a->m[3] * u + (double)a->m[4] * v + (double)a->m[5];
    }
    *fx = fmin(fmax((su + 1.0) * S / 2.0 - 0.5, 0.0), S - 1.0);
    *fy = fmin(fmax((sv + 1.0) * S / 2.0 - 0.5, 0.0), S - 1.0);
}

/* Bilinear sample of channel c at (fx, fy) inside the image: the four neighbours weighted by
 * their overlap (a neighbour past the edge is the edge pixel). */
static double bilinear(const uint8_t *rgb, double fx, double fy, int c) {
    const int x0 = (int)floor(fx), y0 = (int)floor(fy);
    double sum = 0.0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            const double w = (i ? fx - x0 : 1.0 - (fx - x0)) * (j ? fy - y0 : 1.0 - (fy - y0));
            const int xx = x0 + i < S ? x0 + i : S - 1, yy = y0 + j < S ? y0 + j : S - 1;
            sum += w * rgb[(yy * S + xx) * 3 + c];
        }
    return sum;
}

/* The colour jitter of one pixel in double: brightness, contrast around the image's mean luma
 * (after brightness), saturation around the pixel's luma, hue as a rotation of YIQ's chroma. */
static void jitter_reference(const double in[3], double mean_luma, const oclseg_augment *a,
                             double out[3]) {
    double v[3];
    for (int c = 0; c < 3; c++) v[c] = in[c] * a->brightness;
    for (int c = 0; c < 3; c++) v[c] = mean_luma + (v[c] - mean_luma) * a->contrast;
    const double luma = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
    for (int c = 0; c < 3; c++) v[c] = luma + (v[c] - luma) * a->saturation;
    const double yy = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
    const double i = 0.596 * v[0] - 0.274 * v[1] - 0.322 * v[2];
    const double q = 0.211 * v[0] - 0.523 * v[1] + 0.312 * v[2];
    const double t = 2.0 * 3.14159265358979323846 * a->hue;
    const double i2 = i * cos(t) - q * sin(t), q2 = i * sin(t) + q * cos(t);
    out[0] = yy + 0.956 * i2 + 0.621 * q2;
    out[1] = yy - 0.272 * i2 - 0.647 * q2;
    out[2] = yy - 1.106 * i2 + 1.703 * q2;
}

static uint8_t round_clamp(double v) {
    const double r = floor(v + 0.5);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

START_TEST(neutral_parameters_give_the_input_back) {
    uint8_t rgb[PIX * 3], mask[PIX], out[PIX * 3], om[PIX];
    make_sample(rgb, mask);
    const oclseg_augment none = {0};
    oclseg_augment_apply(rgb, mask, S, &none, out, om);
    ck_assert_int_eq(memcmp(out, rgb, sizeof rgb), 0);
    ck_assert_int_eq(memcmp(om, mask, sizeof mask), 0);
    /* switched on, but each at its neutral value: identity matrix, factors 1, hue 0 */
    const oclseg_augment neutral = {.warp = 1, .colour = 1, .m = {1, 0, 0, 0, 1, 0},
                                    .brightness = 1, .contrast = 1, .saturation = 1, .hue = 0};
    memset(out, 0, sizeof out);
    memset(om, 0, sizeof om);
    oclseg_augment_apply(rgb, mask, S, &neutral, out, om);
    ck_assert_int_eq(memcmp(out, rgb, sizeof rgb), 0);
    ck_assert_int_eq(memcmp(om, mask, sizeof mask), 0);
    /* a NULL mask is allowed and changes nothing of the image */
    oclseg_augment_apply(rgb, NULL, S, &neutral, out, NULL);
    ck_assert_int_eq(memcmp(out, rgb, sizeof rgb), 0);
}
END_TEST

/* Output pixel (x, y) holds source pixel (sx, sy) exactly, in the image and in the mask. */
static void assert_moved(const uint8_t *rgb, const uint8_t *out, const uint8_t *om, int x, int y,
                         int sx, int sy, const char *what) {
    const int o = y * S + x, s = sy * S + sx;
    ck_assert_msg(memcmp(&out[o * 3], &rgb[s * 3], 3) == 0 && om[o] == 1 + s,
                  "%s: output (%d, %d) should show source (%d, %d): image (%d, %d, %d) mask %d",
                  what, x, y, sx, sy, out[o * 3], out[o * 3 + 1], out[o * 3 + 2], om[o]);
}

START_TEST(flips_and_transposes_move_every_pixel_by_index) {
    uint8_t rgb[PIX * 3], mask[PIX], out[PIX * 3], om[PIX];
    make_sample(rgb, mask);
    for (int k = 0; k < 8; k++) {
        const oclseg_augment a = {.flip_h = k & 1, .flip_v = (k >> 1) & 1, .transpose = k >> 2};
        oclseg_augment_apply(rgb, mask, S, &a, out, om);
        char what[64];
        snprintf(what, sizeof what, "flip_h %d flip_v %d transpose %d", k & 1, (k >> 1) & 1,
                 k >> 2);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int sx, sy;
                dihedral_source(&a, x, y, &sx, &sy);
                assert_moved(rgb, out, om, x, y, sx, sy, what);
            }
    }
    /* a warp by +90 degrees (source = (-v, u)) is the same exact permutation: output (x, y)
     * shows source (S-1-y, x), and equals flip_v + transpose */
    const oclseg_augment rot = {.warp = 1, .m = {0, -1, 0, 1, 0, 0}};
    oclseg_augment_apply(rgb, mask, S, &rot, out, om);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) assert_moved(rgb, out, om, x, y, S - 1 - y, x, "rotation");
    uint8_t out2[PIX * 3], om2[PIX];
    const oclseg_augment dihedral = {.flip_v = 1, .transpose = 1};
    oclseg_augment_apply(rgb, mask, S, &dihedral, out2, om2);
    ck_assert_int_eq(memcmp(out, out2, sizeof out), 0);
    ck_assert_int_eq(memcmp(om, om2, sizeof om), 0);
}
END_TEST

START_TEST(affine_warps_equal_the_double_reference) {
    uint8_t rgb[PIX * 3], mask[PIX], out[PIX * 3], om[PIX];
    make_sample(rgb, mask);
    const oclseg_augment_config c = {.flips = 1, .dihedral = 1, .rotate_deg = 35, .scale = 0.3f,
                                     .translate = 0.2f, .crop_min = 0.4f};
    int checked_masks = 0, fractional = 0;
    for (int s = 0; s < 16; s++) {
        const oclseg_augment a = oclseg_augment_draw_config(&c, 9, 1, s);
        ck_assert(a.warp);
        oclseg_augment_apply(rgb, mask, S, &a, out, om);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double fx, fy;
                warp_source(&a, x, y, &fx, &fy);
                fractional += fx != floor(fx) || fy != floor(fy);
                for (int ch = 0; ch < 3; ch++) {
                    const double ref = bilinear(rgb, fx, fy, ch);
                    /* the rounding of the reference (a tie may round either way) */
                    ck_assert_msg(fabs(out[(y * S + x) * 3 + ch] - ref) <= 0.5 + 1e-6,
                                  "sample %d: output (%d, %d) channel %d is %d, reference %.4f",
                                  s, x, y, ch, out[(y * S + x) * 3 + ch], ref);
                }
                /* the mask: the nearest source pixel of the same position (ties skipped) */
                if (fabs(fx - floor(fx) - 0.5) < 1e-6 || fabs(fy - floor(fy) - 0.5) < 1e-6)
                    continue;
                const int nx = (int)floor(fx + 0.5), ny = (int)floor(fy + 0.5);
                ck_assert_msg(om[y * S + x] == 1 + ny * S + nx,
                              "sample %d: mask at (%d, %d) is label %d, nearest source (%d, %d)",
                              s, x, y, om[y * S + x], nx, ny);
                checked_masks++;
            }
    }
    ck_assert_int_gt(checked_masks, 16 * PIX / 2);
    ck_assert_int_gt(fractional, 16 * PIX / 2); /* the warps really interpolated */
}
END_TEST

START_TEST(colour_jitter_equals_the_double_reference) {
    uint8_t rgb[PIX * 3], mask[PIX], out[PIX * 3], om[PIX];
    make_sample(rgb, mask);
    const oclseg_augment settings[3] = {
        {.colour = 1, .brightness = 1.3f, .contrast = 0.8f, .saturation = 1.2f, .hue = 0.1f},
        {.colour = 1, .brightness = 2.5f, .contrast = 1.0f, .saturation = 1.0f}, /* clamps */
        {.colour = 1, .flip_h = 1, .brightness = 0.7f, .contrast = 1.4f, .saturation = 0.5f,
         .hue = -0.2f},
    };
    for (int k = 0; k < 3; k++) {
        const oclseg_augment *a = &settings[k];
        oclseg_augment_apply(rgb, mask, S, a, out, om);
        /* the geometry first (here only flips), then the jitter on the moved pixels */
        double moved[PIX][3], mean = 0.0;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int sx, sy;
                dihedral_source(a, x, y, &sx, &sy);
                for (int c = 0; c < 3; c++) moved[y * S + x][c] = rgb[(sy * S + sx) * 3 + c];
                ck_assert_int_eq(om[y * S + x], 1 + sy * S + sx);
            }
        for (int i = 0; i < PIX; i++)
            mean += 0.299 * moved[i][0] + 0.587 * moved[i][1] + 0.114 * moved[i][2];
        mean = mean / PIX * a->brightness;
        int changed = 0;
        for (int i = 0; i < PIX; i++) {
            double ref[3];
            jitter_reference(moved[i], mean, a, ref);
            for (int c = 0; c < 3; c++) {
                /* float arithmetic inside: one step off where the reference is near a tie */
                ck_assert_msg(abs(out[i * 3 + c] - round_clamp(ref[c])) <= 1,
                              "setting %d pixel %d channel %d: %d, reference %.3f", k, i, c,
                              out[i * 3 + c], ref[c]);
                changed += out[i * 3 + c] != (uint8_t)moved[i][c];
            }
        }
        ck_assert_int_gt(changed, PIX); /* the jitter really changed colours */
    }
}
END_TEST

START_TEST(a_seed_reproduces_its_augmentation) {
    uint8_t rgb[PIX * 3], mask[PIX], out[2][PIX * 3], om[2][PIX];
    make_sample(rgb, mask);
    const oclseg_augment_config c = {1, 1, 30, 0.2f, 0.1f, 0.5f, 0.2f, 0.2f, 0.2f, 0.02f};
    int differ = 0;
    for (int s = 0; s < 8; s++) {
        for (int r = 0; r < 2; r++) {
            const oclseg_augment a = oclseg_augment_draw_config(&c, 77, 5, s);
            memset(out[r], 0, sizeof out[r]);
            oclseg_augment_apply(rgb, mask, S, &a, out[r], om[r]);
        }
        ck_assert_int_eq(memcmp(out[0], out[1], sizeof out[0]), 0);
        ck_assert_int_eq(memcmp(om[0], om[1], sizeof om[0]), 0);
        const oclseg_augment other = oclseg_augment_draw_config(&c, 78, 5, s);
        oclseg_augment_apply(rgb, mask, S, &other, out[1], om[1]);
        differ += memcmp(out[0], out[1], sizeof out[0]) != 0;
    }
    ck_assert_int_eq(differ, 8); /* another seed, another augmentation */
}
END_TEST

int main(void) {
    Suite *s = suite_create("augment");
    TCase *apply = tcase_create("apply");
    tcase_add_test(apply, neutral_parameters_give_the_input_back);
    tcase_add_test(apply, flips_and_transposes_move_every_pixel_by_index);
    tcase_add_test(apply, affine_warps_equal_the_double_reference);
    tcase_add_test(apply, colour_jitter_equals_the_double_reference);
    tcase_add_test(apply, a_seed_reproduces_its_augmentation);
    suite_add_tcase(s, apply);
    return tu_run(s);
}
