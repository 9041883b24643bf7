/* Tests for the segmentation metrics (hand-computed cases, empty-case rule), confusion counting
 * and the align_corners=False bilinear upsampling of probability maps. */
#include <math.h>

#include "data_test_util.h"
#include "oclseg/metrics.h"

#define EPS 1e-12

static void assert_scores(oclseg_scores s, double ac, double di, double ja, double se, double sp) {
    ck_assert_double_eq_tol(s.accuracy, ac, EPS);
    ck_assert_double_eq_tol(s.dice, di, EPS);
    ck_assert_double_eq_tol(s.jaccard, ja, EPS);
    ck_assert_double_eq_tol(s.sensitivity, se, EPS);
    ck_assert_double_eq_tol(s.specificity, sp, EPS);
}

START_TEST(isic_worked_example) {
    /* 10x10 image: truth is the 4x4 square at (2..5, 2..5), the prediction the same square moved
     * one pixel right and down (3..6, 3..6). Overlap 3x3: tp 9, fp 7, fn 7, tn 100 - 23 = 77.
     * AC = 86/100, DI = 18/32, JA = 9/23, SE = 9/16, SP = 77/84. */
    float prob[100];
    uint8_t mask[100];
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 10; x++) {
            mask[y * 10 + x] = (x >= 2 && x <= 5 && y >= 2 && y <= 5) ? 1 : 0;
            prob[y * 10 + x] = (x >= 3 && x <= 6 && y >= 3 && y <= 6) ? 0.9f : 0.2f;
        }
    oclseg_confusion c;
    ck_assert_int_eq(oclseg_confusion_count(prob, mask, 100, 0.5f, &c), OCLSEG_OK);
    ck_assert_uint_eq(c.tp, 9);
    ck_assert_uint_eq(c.fp, 7);
    ck_assert_uint_eq(c.fn, 7);
    ck_assert_uint_eq(c.tn, 77);
    assert_scores(oclseg_scores_from_confusion(&c), 0.86, 18.0 / 32, 9.0 / 23, 9.0 / 16, 77.0 / 84);
}
END_TEST

START_TEST(threshold_is_strict) {
    /* pred = p > t: exactly 0.5 is negative; mask values other than 0 are positive */
    const float prob[4] = {0.5f, 0.50001f, 0.0f, 1.0f};
    const uint8_t mask[4] = {1, 0, 255, 0};
    oclseg_confusion c;
    ck_assert_int_eq(oclseg_confusion_count(prob, mask, 4, 0.5f, &c), OCLSEG_OK);
    ck_assert_uint_eq(c.tp, 0);
    ck_assert_uint_eq(c.fp, 2);
    ck_assert_uint_eq(c.fn, 2);
    ck_assert_uint_eq(c.tn, 0);
}
END_TEST

START_TEST(empty_and_full_cases) {
    /* both empty: DI = JA = SE = 1 (nothing to find, nothing wrongly found), SP = 1, AC = 1 */
    oclseg_confusion both_empty = {.tp = 0, .fp = 0, .fn = 0, .tn = 50};
    assert_scores(oclseg_scores_from_confusion(&both_empty), 1, 1, 1, 1, 1);
    /* truth empty, prediction not: DI = JA = 0 (2tp / fp), SE = 1 (no positives), SP = 40/50 */
    oclseg_confusion false_alarm = {.tp = 0, .fp = 10, .fn = 0, .tn = 40};
    assert_scores(oclseg_scores_from_confusion(&false_alarm), 0.8, 0, 0, 1, 0.8);
    /* prediction empty, truth not: DI = JA = SE = 0, SP = 1 */
    oclseg_confusion missed = {.tp = 0, .fp = 0, .fn = 5, .tn = 45};
    assert_scores(oclseg_scores_from_confusion(&missed), 0.9, 0, 0, 0, 1);
    /* everything positive and predicted positive: no negatives -> SP = 1 */
    oclseg_confusion all_positive = {.tp = 64, .fp = 0, .fn = 0, .tn = 0};
    assert_scores(oclseg_scores_from_confusion(&all_positive), 1, 1, 1, 1, 1);
    /* all predicted positive over half-positive truth: DI = 2*8/(16+8) = 2/3, JA = 1/2 */
    oclseg_confusion predict_all = {.tp = 8, .fp = 8, .fn = 0, .tn = 0};
    assert_scores(oclseg_scores_from_confusion(&predict_all), 0.5, 2.0 / 3, 0.5, 1, 0);
    /* an image of no pixels */
    oclseg_confusion nothing = {0};
    assert_scores(oclseg_scores_from_confusion(&nothing), 1, 1, 1, 1, 1);
}
END_TEST

START_TEST(means_and_pooled) {
    /* image A: tp 9 fp 7 fn 7 tn 77 (the worked example); image B: both empty, 100 px.
     * means: DI = (18/32 + 1)/2, JA = (9/23 + 1)/2; pooled: the empty image adds only tn, so
     * pooled DI = 18/32 and pooled IoU = 9/23. */
    const oclseg_confusion c[2] = {{9, 7, 7, 77}, {0, 0, 0, 100}};
    oclseg_metrics m;
    ck_assert_int_eq(oclseg_metrics_compute(c, 2, &m), OCLSEG_OK);
    ck_assert_int_eq(m.count, 2);
    ck_assert_double_eq_tol(m.mean.dice, (18.0 / 32 + 1) / 2, EPS);
    ck_assert_double_eq_tol(m.mean.jaccard, (9.0 / 23 + 1) / 2, EPS);
    ck_assert_double_eq_tol(m.mean.accuracy, (0.86 + 1) / 2, EPS);
    ck_assert_double_eq_tol(m.mean.sensitivity, (9.0 / 16 + 1) / 2, EPS);
    ck_assert_double_eq_tol(m.mean.specificity, (77.0 / 84 + 1) / 2, EPS);
    ck_assert_double_eq_tol(m.pooled_dice, 18.0 / 32, EPS);
    ck_assert_double_eq_tol(m.pooled_iou, 9.0 / 23, EPS);
    ck_assert_uint_eq(m.total.tn, 177);
    ck_assert_int_eq(oclseg_metrics_compute(NULL, 0, &m), OCLSEG_OK);
    ck_assert_int_eq(m.count, 0);
    tu_capture_begin();
    ck_assert_int_eq(oclseg_metrics_compute(NULL, 3, &m), OCLSEG_ERR_INVALID_ARG);
    tu_capture_end();
}
END_TEST

START_TEST(iou_is_dice_over_two_minus_dice) {
    /* Per image JA = DI / (2 - DI) <= DI, hence mean JA <= mean DI over any set of images. */
    uint64_t state = 12345;
    oclseg_confusion c[50];
    for (int i = 0; i < 50; i++) {
        uint64_t r[4];
        for (int k = 0; k < 4; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            r[k] = (state >> 40) % 1000;
        }
        c[i] = (oclseg_confusion){r[0], r[1], r[2], r[3]};
        oclseg_scores s = oclseg_scores_from_confusion(&c[i]);
        ck_assert_double_eq_tol(s.jaccard, s.dice / (2 - s.dice), 1e-12);
    }
    oclseg_metrics m;
    ck_assert_int_eq(oclseg_metrics_compute(c, 50, &m), OCLSEG_OK);
    ck_assert(m.mean.jaccard <= m.mean.dice);
    ck_assert(m.pooled_iou <= m.pooled_dice);
}
END_TEST

START_TEST(upsample_align_corners_false) {
    /* 1-D along x, 2 -> 4: source positions (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25,
     * 0.75, 1.25 (clamped to the last pixel): [a, 0.75a + 0.25b, 0.25a + 0.75b, b]. */
    const float src[2] = {1.0f, 5.0f};
    float dst[4];
    ck_assert_int_eq(oclseg_upsample_bilinear_f32(src, 2, 1, dst, 4, 1), OCLSEG_OK);
    const float want[4] = {1.0f, 2.0f, 4.0f, 5.0f};
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(dst[i], want[i], 1e-6f);
    /* 2-D 2x2 -> 3x3: centre is the mean of the four; positions (d + 0.5) * 2/3 - 0.5 = -1/6,
     * 0.5, 7/6 -> edge midpoints are means of two pixels. */
    const float sq[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    float out[9];
    ck_assert_int_eq(oclseg_upsample_bilinear_f32(sq, 2, 2, out, 3, 3), OCLSEG_OK);
    const float want9[9] = {0.0f, 0.5f, 1.0f, 1.0f, 1.5f, 2.0f, 2.0f, 2.5f, 3.0f};
    for (int i = 0; i < 9; i++) ck_assert_float_eq_tol(out[i], want9[i], 1e-6f);
    /* constant map stays constant under any resize (down too) */
    float cst[35], big[11 * 13];
    for (int i = 0; i < 35; i++) cst[i] = 0.375f;
    ck_assert_int_eq(oclseg_upsample_bilinear_f32(cst, 7, 5, big, 11, 13), OCLSEG_OK);
    for (int i = 0; i < 11 * 13; i++) ck_assert_float_eq_tol(big[i], 0.375f, 1e-7f);
    ck_assert_int_eq(oclseg_upsample_bilinear_f32(big, 11, 13, cst, 3, 2), OCLSEG_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(cst[i], 0.375f, 1e-7f);
    tu_capture_begin();
    ck_assert_int_eq(oclseg_upsample_bilinear_f32(src, 0, 1, dst, 4, 1), OCLSEG_ERR_INVALID_ARG);
    tu_capture_end();
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, isic_worked_example);
    tcase_add_test(tc, threshold_is_strict);
    tcase_add_test(tc, empty_and_full_cases);
    tcase_add_test(tc, means_and_pooled);
    tcase_add_test(tc, iou_is_dice_over_two_minus_dice);
    tcase_add_test(tc, upsample_align_corners_false);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
