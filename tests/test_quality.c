/* Tests the model-quality pieces: the validation split (deterministic, disjoint, ordered), ISIC
 * 2018 thresholded Jaccard and the JA distribution, the validation-chosen threshold, mask
 * post-processing on constructed masks, augmentation (image and mask stay aligned on a
 * synthetic lesion of a known colour; deterministic from the seed; flips alone = the seed
 * recipe), and flip TTA against flipping by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"

/* A dataset of n S x S samples whose first pixel holds the sample index (to trace copies). */
static oclseg_dataset *fake_dataset(int n, int S) {
    oclseg_dataset *ds = calloc(1, sizeof *ds);
    ck_assert_ptr_nonnull(ds);
    ds->count = n;
    ds->size = S;
    ds->images = calloc((size_t)n * S * S * 3, 1);
    ds->masks = calloc((size_t)n * S * S, 1);
    ds->samples = calloc((size_t)n, sizeof *ds->samples);
    ck_assert(ds->images && ds->masks && ds->samples);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "ISIC_%04d", i);
        ds->samples[i].id = strdup(name);
        ds->samples[i].image_path = strdup(name);
        ds->samples[i].mask_path = strdup(name);
        ds->images[(size_t)i * S * S * 3] = (uint8_t)i;
        ds->masks[(size_t)i * S * S] = (uint8_t)(i & 1);
        ds->samples[i].mask.encoding = OCLSEG_MASK_BINARY;
        ds->samples[i].mask.foreground_value = 255;
        ds->samples[i].mask.foreground_fraction = 0.001 * (i + 1); /* none empty */
    }
    return ds;
}

START_TEST(val_split_deterministic_disjoint) {
    oclseg_dataset *all = fake_dataset(200, 4);
    oclseg_dataset *tr, *va, *tr2, *va2, *tr3, *va3;
    ck_assert_int_eq(oclseg_dataset_split(all, 0.1, 7, &tr, &va), OCLSEG_OK);
    ck_assert_int_eq(va->count, 20);
    ck_assert_int_eq(tr->count, 180);
    int seen[200] = {0}, prev = -1;
    for (int i = 0; i < va->count; i++) {
        int k = va->images[(size_t)i * 48];
        ck_assert_int_gt(k, prev); /* file order kept */
        prev = k;
        seen[k]++;
        ck_assert_str_eq(va->samples[i].id, all->samples[k].id);
        ck_assert_int_eq(va->masks[(size_t)i * 16], k & 1);
        ck_assert(va->samples[i].mask.encoding == OCLSEG_MASK_BINARY &&
                  va->samples[i].mask.foreground_fraction == all->samples[k].mask.foreground_fraction);
    }
    prev = -1;
    for (int i = 0; i < tr->count; i++) {
        int k = tr->images[(size_t)i * 48];
        ck_assert_int_gt(k, prev);
        prev = k;
        seen[k]++;
        /* the mask info goes with the sample: the data health of a split is that of its masks */
        ck_assert(tr->samples[i].mask.encoding == OCLSEG_MASK_BINARY &&
                  tr->samples[i].mask.foreground_fraction == all->samples[k].mask.foreground_fraction);
    }
    oclseg_data_health h;
    oclseg_data_health_compute(tr, &h);
    ck_assert_int_eq(h.empty, 0);
    for (int k = 0; k < 200; k++) ck_assert_int_eq(seen[k], 1); /* a partition */
    /* same seed: same split; another seed: another split */
    ck_assert_int_eq(oclseg_dataset_split(all, 0.1, 7, &tr2, &va2), OCLSEG_OK);
    ck_assert_int_eq(memcmp(va->images, va2->images, (size_t)20 * 48), 0);
    ck_assert_int_eq(oclseg_dataset_split(all, 0.1, 8, &tr3, &va3), OCLSEG_OK);
    ck_assert_int_ne(memcmp(va->images, va3->images, (size_t)20 * 48), 0);
    oclseg_dataset_free(tr);
    oclseg_dataset_free(va);
    oclseg_dataset_free(tr2);
    oclseg_dataset_free(va2);
    oclseg_dataset_free(tr3);
    oclseg_dataset_free(va3);
    /* fraction 0: no validation set; bad fractions are refused */
    ck_assert_int_eq(oclseg_dataset_split(all, 0.0, 7, &tr, &va), OCLSEG_OK);
    ck_assert_ptr_null(va);
    ck_assert_int_eq(tr->count, 200);
    oclseg_dataset_free(tr);
    ck_assert_int_eq(oclseg_dataset_split(all, 1.0, 7, &tr, &va), OCLSEG_ERR_INVALID_ARG);
    ck_assert_int_eq(oclseg_val_count(806, 0.1), 81);
    ck_assert_int_eq(oclseg_val_count(5, 0.01), 1);
    ck_assert_int_eq(oclseg_val_count(2, 0.9), 1);
    ck_assert_int_eq(oclseg_val_count(1, 0.5), 0);
    oclseg_dataset_free(all);
}
END_TEST

/* Confusions with JA = tp / (tp + fp + fn) of exactly the given values (denominator 100). */
static void confusions(const double *ja, int n, oclseg_confusion *c) {
    for (int i = 0; i < n; i++) {
        c[i].tp = (uint64_t)llround(ja[i] * 100);
        c[i].fp = 100 - c[i].tp;
        c[i].fn = 0;
        c[i].tn = 50;
    }
}

START_TEST(thresholded_jaccard_and_distribution) {
    const double ja[7] = {0.9, 0.3, 0.65, 0.64, 1.0, 0.0, 0.8};
    oclseg_confusion c[7];
    confusions(ja, 7, c);
    oclseg_jaccard_summary s;
    ck_assert_int_eq(oclseg_jaccard_summary_compute(c, 7, &s), OCLSEG_OK);
    /* ISIC 2018: 0.3, 0.64 and 0.0 count as 0; 0.65 stays */
    ck_assert(fabs(s.thresholded - (0.9 + 0.65 + 1.0 + 0.8) / 7) < 1e-12);
    ck_assert_int_eq(s.below_floor, 3);
    /* numpy.quantile([0, .3, .64, .65, .8, .9, 1], q): positions q * 6 */
    ck_assert(fabs(s.min - 0.0) < 1e-12 && fabs(s.max - 1.0) < 1e-12);
    ck_assert(fabs(s.median - 0.65) < 1e-12);
    ck_assert(fabs(s.p10 - 0.18) < 1e-12);             /* 0.6: 0 + 0.6 * 0.3 */
    ck_assert(fabs(s.p25 - (0.3 + 0.5 * 0.34)) < 1e-12); /* 1.5 */
    ck_assert(fabs(s.p75 - (0.8 + 0.5 * 0.1)) < 1e-12);  /* 4.5 */
    ck_assert(fabs(s.p90 - (0.9 + 0.4 * 0.1)) < 1e-12);  /* 5.4 */
    const int hist[10] = {1, 0, 0, 1, 0, 0, 2, 0, 1, 2}; /* 1.0 falls in the last bin */
    for (int k = 0; k < 10; k++) ck_assert_int_eq(s.histogram[k], hist[k]);
    ck_assert_int_eq(oclseg_jaccard_summary_compute(c, 0, &s), OCLSEG_ERR_INVALID_ARG);
}
END_TEST

/* Two images of 10 pixels: foreground probabilities 0.42 and background 0.38 make 0.40 the
 * only grid threshold with JA 1 on both; ties (all thresholds perfect) go to 0.5. */
START_TEST(threshold_selected_on_validation) {
    float probs[20];
    uint8_t masks[20];
    for (int i = 0; i < 20; i++) {
        masks[i] = (uint8_t)(i % 3 == 0);
        probs[i] = masks[i] ? 0.42f : 0.38f;
    }
    float t = 0;
    double ja = 0;
    ck_assert_int_eq(oclseg_select_threshold(probs, masks, 2, 10, &t, &ja), OCLSEG_OK);
    ck_assert(fabsf(t - 0.40f) < 1e-6f);
    ck_assert(fabs(ja - 1.0) < 1e-12);
    for (int i = 0; i < 20; i++) probs[i] = masks[i] ? 0.99f : 0.01f;
    ck_assert_int_eq(oclseg_select_threshold(probs, masks, 2, 10, &t, &ja), OCLSEG_OK);
    ck_assert(t == 0.5f);
}
END_TEST

/* Parses a picture ('#' foreground, '.' background) into a mask. */
static void picture(const char *rows[], int h, int w, uint8_t *m) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) m[y * w + x] = rows[y][x] == '#';
}

static void check_picture(const uint8_t *m, const char *rows[], int h, int w, const char *what) {
    uint8_t e[64];
    picture(rows, h, w, e);
    for (int i = 0; i < h * w; i++)
        ck_assert_msg((m[i] != 0) == (e[i] != 0), "%s: pixel (%d, %d) is %d", what, i % w, i / w, m[i]);
}

START_TEST(postprocess_constructed_masks) {
    /* a big ring with a hole, a diagonal 2-pixel blob (8-connected: one component) and a dot;
     * the background notch at the right border is not a hole */
    const char *in[7] = {"........", ".####...", ".#..#.#.", ".####..#",
                         "........", "#....###", "......#."};
    const char *largest[7] = {"........", ".####...", ".#..#...", ".####...",
                              "........", "........", "........"};
    const char *filled[7] = {"........", ".####...", ".####...", ".####...",
                             "........", "........", "........"};
    const char *holes_only[7] = {"........", ".####...", ".####.#.", ".####..#",
                                 "........", "#....###", "......#."};
    uint8_t m[56];
    picture(in, 7, 8, m);
    ck_assert_int_eq(oclseg_mask_postprocess(m, 8, 7, 1, 0), OCLSEG_OK);
    check_picture(m, largest, 7, 8, "largest component");
    ck_assert_int_eq(oclseg_mask_postprocess(m, 8, 7, 0, 1), OCLSEG_OK);
    check_picture(m, filled, 7, 8, "largest + holes");
    picture(in, 7, 8, m);
    ck_assert_int_eq(oclseg_mask_postprocess(m, 8, 7, 0, 1), OCLSEG_OK);
    check_picture(m, holes_only, 7, 8, "holes only");
    /* the 8-connected diagonal pair beats a 3-pixel line when it is larger: 4 vs 3 */
    const char *diag[4] = {"#.....", ".#..##", "..#..#", "...#.."};
    const char *diag_kept[4] = {"#.....", ".#....", "..#...", "...#.."};
    picture(diag, 4, 6, m);
    ck_assert_int_eq(oclseg_mask_postprocess(m, 6, 4, 1, 1), OCLSEG_OK);
    check_picture(m, diag_kept, 4, 6, "diagonal component");
    /* empty mask stays empty */
    memset(m, 0, sizeof m);
    ck_assert_int_eq(oclseg_mask_postprocess(m, 8, 7, 1, 1), OCLSEG_OK);
    for (int i = 0; i < 56; i++) ck_assert_int_eq(m[i], 0);
    ck_assert_int_eq(oclseg_mask_postprocess(NULL, 8, 7, 1, 1), OCLSEG_ERR_INVALID_ARG);
}
END_TEST

/* ---- augmentation ------------------------------------------------------------------------- */
enum { AS = 48 };
static const uint8_t SKIN[3] = {60, 120, 180}, LESION[3] = {220, 40, 20};

/* A skin-coloured image with an off-centre ellipse of lesion colour and its exact mask. */
static void synthetic_lesion(uint8_t *rgb, uint8_t *mask) {
    for (int y = 0; y < AS; y++)
        for (int x = 0; x < AS; x++) {
            const double dx = (x + 0.5 - 28) / 11.0, dy = (y + 0.5 - 20) / 7.0;
            const int in = dx * dx + dy * dy <= 1.0;
            mask[y * AS + x] = (uint8_t)in;
            memcpy(&rgb[(y * AS + x) * 3], in ? LESION : SKIN, 3);
        }
}

/* After a geometric augmentation, mask foreground == lesion-coloured pixels (nearer the lesion
 * colour than the skin colour), except on the interpolation border: pixels whose 3x3
 * neighbourhood in the output mask is not uniform. Returns the number of foreground pixels. */
static int check_aligned(const uint8_t *rgb, const uint8_t *mask, const char *what) {
    int fg = 0;
    for (int y = 0; y < AS; y++)
        for (int x = 0; x < AS; x++) {
            const uint8_t *p = &rgb[(y * AS + x) * 3];
            double dl = 0, ds = 0;
            for (int c = 0; c < 3; c++) {
                dl += (p[c] - LESION[c]) * (double)(p[c] - LESION[c]);
                ds += (p[c] - SKIN[c]) * (double)(p[c] - SKIN[c]);
            }
            fg += mask[y * AS + x] != 0;
            int border = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    const int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < AS && xx >= 0 && xx < AS &&
                        mask[yy * AS + xx] != mask[y * AS + x])
                        border = 1;
                }
            if (border) continue;
            ck_assert_msg((mask[y * AS + x] != 0) == (dl < ds),
                          "%s: pixel (%d, %d) mask %d but colour (%d, %d, %d)", what, x, y,
                          mask[y * AS + x], p[0], p[1], p[2]);
        }
    return fg;
}

START_TEST(augmentation_keeps_image_and_mask_aligned) {
    uint8_t rgb[AS * AS * 3], mask[AS * AS], out[AS * AS * 3], om[AS * AS];
    synthetic_lesion(rgb, mask);
    int fg0 = 0;
    for (int i = 0; i < AS * AS; i++) fg0 += mask[i];
    const oclseg_augment_config configs[3] = {
        {.flips = 1, .dihedral = 1},
        {.flips = 1, .dihedral = 1, .rotate_deg = 40, .scale = 0.3f, .translate = 0.2f},
        {.flips = 1, .rotate_deg = 25, .crop_min = 0.3f},
    };
    int changed = 0;
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 24; s++) {
            oclseg_augment a = oclseg_augment_draw_config(&configs[k], 5, 2, s);
            oclseg_augment_apply(rgb, mask, AS, &a, out, om);
            char what[64];
            snprintf(what, sizeof what, "config %d sample %d", k, s);
            const int fg = check_aligned(out, om, what);
            if (k == 0) ck_assert_int_eq(fg, fg0); /* 90-degree moves are exact permutations */
            changed += memcmp(om, mask, sizeof mask) != 0;
        }
    ck_assert_int_gt(changed, 60); /* the transforms really moved the lesion */
    /* colour jitter changes colours but never the mask, and keeps a geometry's mask as is */
    oclseg_augment_config jitter = configs[1];
    jitter.brightness = jitter.contrast = jitter.saturation = 0.3f;
    jitter.hue = 0.05f;
    for (int s = 0; s < 8; s++) {
        oclseg_augment g = oclseg_augment_draw_config(&configs[1], 5, 2, s);
        oclseg_augment j = oclseg_augment_draw_config(&jitter, 5, 2, s);
        ck_assert_int_eq(memcmp(g.m, j.m, sizeof g.m), 0);
        uint8_t om2[AS * AS], out2[AS * AS * 3];
        oclseg_augment_apply(rgb, mask, AS, &g, out, om);
        oclseg_augment_apply(rgb, mask, AS, &j, out2, om2);
        ck_assert_int_eq(memcmp(om, om2, sizeof om), 0);
        ck_assert_int_ne(memcmp(out, out2, sizeof out), 0);
    }
}
END_TEST

START_TEST(augmentation_deterministic_and_seed_compatible) {
    const oclseg_augment_config full = {1, 1, 30, 0.2f, 0.1f, 0.5f, 0.2f, 0.2f, 0.2f, 0.02f};
    const oclseg_augment_config flips = {.flips = 1};
    int differ_epoch = 0, differ_seed = 0;
    for (int i = 0; i < 50; i++) {
        oclseg_augment a = oclseg_augment_draw_config(&full, 11, 3, i);
        oclseg_augment b = oclseg_augment_draw_config(&full, 11, 3, i);
        ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
        oclseg_augment c = oclseg_augment_draw_config(&full, 11, 4, i);
        oclseg_augment d = oclseg_augment_draw_config(&full, 12, 3, i);
        differ_epoch += memcmp(a.m, c.m, sizeof a.m) != 0;
        differ_seed += memcmp(a.m, d.m, sizeof a.m) != 0;
        /* flips alone are exactly the seed recipe's draw, nothing else */
        oclseg_augment f = oclseg_augment_draw_config(&flips, 11, 3, i);
        oclseg_augment seed = oclseg_augment_draw(11, 3, i);
        ck_assert(f.flip_h == seed.flip_h && f.flip_v == seed.flip_v && !f.transpose && !f.warp &&
                  !f.colour);
        ck_assert(a.warp && a.colour);
        ck_assert(fabsf(a.brightness - 1.0f) <= 0.2f && fabsf(a.hue) <= 0.02f);
    }
    ck_assert_int_eq(differ_epoch, 50);
    ck_assert_int_eq(differ_seed, 50);
    /* the batch path: a flips-only augmentation gives the same floats as before (integer path) */
    oclseg_dataset *ds = fake_dataset(3, 8);
    for (size_t i = 0; i < (size_t)3 * 64 * 3; i++) ds->images[i] = (uint8_t)(i * 7);
    float img1[3 * 64], img2[3 * 64], m1[64], m2[64];
    int idx[1] = {1};
    oclseg_augment only_flip = {.flip_h = 1};
    oclseg_augment same_by_warp = {.flip_h = 1, .warp = 1, .m = {1, 0, 0, 0, 1, 0}};
    ck_assert_int_eq(oclseg_dataset_batch(ds, idx, 1, &only_flip, img1, m1), OCLSEG_OK);
    ck_assert_int_eq(oclseg_dataset_batch(ds, idx, 1, &same_by_warp, img2, m2), OCLSEG_OK);
    ck_assert_int_eq(memcmp(img1, img2, sizeof img1), 0); /* identity warp = exact resampling */
    ck_assert_int_eq(memcmp(m1, m2, sizeof m1), 0);
    oclseg_dataset_free(ds);
}
END_TEST

/* ---- TTA ----------------------------------------------------------------------------------- */
static void flip_plane(const float *src, float *dst, int s, int fh, int fv) {
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++)
            dst[y * s + x] = src[(fv ? s - 1 - y : y) * s + (fh ? s - 1 - x : x)];
}

START_TEST(tta_flips_average) {
    enum { S = 32, N = 2 };
    oclseg_model_config cfg = {0.25f, 32, {16, 8, 8}, S, N, 0.5f, OCLSEG_DECODER_SEED};
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(harness_ctx(0), &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 3), OCLSEG_OK);
    oclseg_infer *inf;
    ck_assert_int_eq(oclseg_infer_wrap(m, &inf), OCLSEG_OK);
    static float images[N * 3 * S * S], flipped[N * 3 * S * S], tta[N * S * S], plain[N * S * S];
    static float one[N * S * S], back[S * S], expect[N * S * S];
    harness_fill_uniform(images, N * 3 * S * S, -2.0f, 2.0f, 9);
    ck_assert_int_eq(oclseg_infer_batch_tta(inf, images, N, 1, tta), OCLSEG_OK);
    ck_assert_int_eq(oclseg_infer_batch_tta(inf, images, N, 0, plain), OCLSEG_OK);
    memset(expect, 0, sizeof expect);
    for (int f = 0; f < 4; f++) {
        for (int p = 0; p < N * 3; p++)
            flip_plane(images + p * S * S, flipped + p * S * S, S, f & 1, f >> 1);
        ck_assert_int_eq(oclseg_infer_batch(inf, flipped, N, one), OCLSEG_OK);
        for (int i = 0; i < N; i++) {
            flip_plane(one + i * S * S, back, S, f & 1, f >> 1);
            for (int k = 0; k < S * S; k++) expect[i * S * S + k] += back[k] / 4;
        }
    }
    double *ref = malloc(sizeof expect / sizeof(float) * sizeof(double));
    ck_assert_ptr_nonnull(ref);
    for (int k = 0; k < N * S * S; k++) ref[k] = expect[k];
    /* the same four forwards, summed in the same order: a few float roundings */
    harness_compare("tta", tta, ref, N * S * S, 1e-6, 0.0);
    int differs = 0;
    for (int k = 0; k < N * S * S; k++) differs += fabsf(tta[k] - plain[k]) > 1e-4f;
    ck_assert_int_gt(differs, 0); /* a random model is not flip-invariant */
    free(ref);
    oclseg_infer_free(inf);
    oclseg_model_free(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quality");
    TCase *tc = tcase_create("quality");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, val_split_deterministic_disjoint);
    tcase_add_test(tc, thresholded_jaccard_and_distribution);
    tcase_add_test(tc, threshold_selected_on_validation);
    tcase_add_test(tc, postprocess_constructed_masks);
    tcase_add_test(tc, augmentation_keeps_image_and_mask_aligned);
    tcase_add_test(tc, augmentation_deterministic_and_seed_compatible);
    tcase_add_test(tc, tta_flips_average);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
