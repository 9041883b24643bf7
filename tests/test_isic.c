/* Tests for folder scanning (ISIC and generic layouts, every mismatch case), dataset loading,
 * batch assembly with flips, and the deterministic shuffle/augmentation draws. */
#include <math.h>
#include <stdint.h>

#include "data_test_util.h"
#include "oclseg/data.h"

static char *tmp;
static void setup(void) { tmp = tu_mkdtemp(); }
static void teardown(void) {
    tu_rmtree(tmp);
    tmp = NULL;
}

#define TRAIN_DATA "ISBI2016_ISIC_Part1_Training_Data"
#define TRAIN_TRUTH "ISBI2016_ISIC_Part1_Training_GroundTruth"
#define TEST_DATA "ISBI2016_ISIC_Part1_Test_Data"
#define TEST_TRUTH "ISBI2016_ISIC_Part1_Test_GroundTruth"

/* A w x h JPEG of one colour. */
static void write_image(const char *path, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_create(&img, w, h, 3), OCLSEG_OK);
    for (int i = 0; i < w * h; i++) {
        img.pixels[3 * i] = r;
        img.pixels[3 * i + 1] = g;
        img.pixels[3 * i + 2] = b;
    }
    ck_assert_int_eq(oclseg_image_save_jpeg(path, &img, 95), OCLSEG_OK);
    oclseg_image_free(&img);
}

/* A w x h 0/255 mask whose left `fraction` of columns is lesion. */
static void write_mask(const char *path, int w, int h, double fraction) {
    oclseg_image m;
    ck_assert_int_eq(oclseg_image_create(&m, w, h, 1), OCLSEG_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) m.pixels[y * w + x] = x < (int)(fraction * w) ? 255 : 0;
    ck_assert_int_eq(oclseg_image_save_png(path, &m), OCLSEG_OK);
    oclseg_image_free(&m);
}

/* The ISIC layout under tmp with the given ids in each folder (image i is colour 10*i). */
static void make_isic(const char *data, const char *truth, const int *image_ids, int n_images,
                      const int *mask_ids, int n_masks) {
    char dir[4096], name[256];
    snprintf(dir, sizeof dir, "%s/%s", tmp, data);
    mkdir(dir, 0755);
    for (int i = 0; i < n_images; i++) {
        snprintf(name, sizeof name, "ISIC_%07d.jpg", image_ids[i]);
        write_image(tu_path(dir, name), 24, 18, (uint8_t)(10 * image_ids[i]), 100, 50);
    }
    snprintf(dir, sizeof dir, "%s/%s", tmp, truth);
    mkdir(dir, 0755);
    for (int i = 0; i < n_masks; i++) {
        /* one of them with ISIC 2017's lower-case suffix */
        snprintf(name, sizeof name, mask_ids[i] == 1 ? "ISIC_%07d_segmentation.png"
                                                     : "ISIC_%07d_Segmentation.png", mask_ids[i]);
        write_mask(tu_path(dir, name), 24, 18, 0.5);
    }
}

/* ---- scanning -------------------------------------------------------------------------------- */

START_TEST(isic_layout_pairs_sorted_by_name) {
    const int ids[] = {2, 0, 1};
    make_isic(TRAIN_DATA, TRAIN_TRUTH, ids, 3, ids, 3);
    tu_write(tu_path(tmp, TRAIN_DATA "/README.txt"), "x", 1); /* not an image: ignored */
    tu_write(tu_path(tmp, TRAIN_DATA "/.hidden.jpg"), "x", 1);
    oclseg_pair_list pairs;
    ck_assert_int_eq(oclseg_isic_scan(tmp, OCLSEG_SPLIT_TRAIN, 0, &pairs), OCLSEG_OK);
    ck_assert_int_eq(pairs.count, 3);
    ck_assert_int_eq(pairs.skipped, 0);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "ISIC_%07d", i);
        ck_assert_str_eq(pairs.items[i].id, id);
        ck_assert_ptr_nonnull(strstr(pairs.items[i].image_path, TRAIN_DATA "/"));
        ck_assert_ptr_nonnull(strstr(pairs.items[i].image_path, id));
        ck_assert_ptr_nonnull(strstr(pairs.items[i].mask_path, TRAIN_TRUTH "/"));
        ck_assert_ptr_nonnull(strstr(pairs.items[i].mask_path, id));
    }
    ck_assert_ptr_nonnull(strstr(pairs.items[1].mask_path, "_segmentation.png"));
    oclseg_pair_list_free(&pairs);
}
END_TEST

START_TEST(isic_missing_split_folder) {
    const int ids[] = {0, 1};
    make_isic(TRAIN_DATA, TRAIN_TRUTH, ids, 2, ids, 2);
    oclseg_pair_list pairs;
    tu_capture_begin();
    int st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 0, &pairs);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_NOT_FOUND);
    tu_assert_contains(msg, "Test_Data");
    tu_assert_contains(msg, tmp);
    /* data folder present, ground truth missing */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tmp, TEST_DATA);
    mkdir(dir, 0755);
    tu_capture_begin();
    st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 0, &pairs);
    msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_NOT_FOUND);
    tu_assert_contains(msg, "Test_GroundTruth");
    /* a data dir that does not exist */
    tu_capture_begin();
    st = oclseg_isic_scan(tu_path(tmp, "nope"), OCLSEG_SPLIT_TRAIN, 0, &pairs);
    msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_NOT_FOUND);
    tu_assert_contains(msg, "nope");
}
END_TEST

START_TEST(empty_folder) {
    mkdir(tu_path(tmp, TEST_DATA), 0755);
    mkdir(tu_path(tmp, TEST_TRUTH), 0755);
    oclseg_pair_list pairs;
    tu_capture_begin();
    int st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 0, &pairs);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_NOT_FOUND);
    tu_assert_contains(msg, "no images");
    tu_assert_contains(msg, TEST_DATA);
    /* images present, masks folder empty */
    write_image(tu_path(tmp, TEST_DATA "/ISIC_0000009.jpg"), 8, 8, 1, 2, 3);
    tu_capture_begin();
    st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 1, &pairs);
    msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_NOT_FOUND);
    tu_assert_contains(msg, "no masks");
}
END_TEST

START_TEST(image_without_mask_and_mask_without_image) {
    /* images 0..8, masks 0, 1, 2 and 20, 21: six images lack masks, two masks lack images */
    const int image_ids[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    const int mask_ids[] = {0, 1, 2, 20, 21};
    make_isic(TEST_DATA, TEST_TRUTH, image_ids, 9, mask_ids, 5);
    oclseg_pair_list pairs;
    tu_capture_begin();
    int st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 0, &pairs);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_FORMAT);
    ck_assert_int_eq(pairs.count, 0);
    tu_assert_contains(msg, "6 images in");
    tu_assert_contains(msg, "ISIC_0000003.jpg, ISIC_0000004.jpg, ISIC_0000005.jpg, "
                            "ISIC_0000006.jpg, ISIC_0000007.jpg and 1 more");
    tu_assert_contains(msg, "2 masks in");
    tu_assert_contains(msg, "ISIC_0000020_Segmentation.png, ISIC_0000021_Segmentation.png");
    tu_assert_contains(msg, "--skip-bad");

    /* skip_bad: the 3 matched pairs, 8 files skipped with one warning each kind */
    tu_capture_begin();
    st = oclseg_isic_scan(tmp, OCLSEG_SPLIT_TEST, 1, &pairs);
    msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_OK);
    ck_assert_int_eq(pairs.count, 3);
    ck_assert_int_eq(pairs.skipped, 8);
    tu_assert_contains(msg, "warning: skipping 6 images");
    tu_assert_contains(msg, "warning: skipping 2 masks");
    oclseg_pair_list_free(&pairs);
}
END_TEST

START_TEST(generic_layout_and_suffixes) {
    mkdir(tu_path(tmp, "img"), 0755);
    mkdir(tu_path(tmp, "msk"), 0755);
    write_image(tu_path(tmp, "img/b.jpg"), 8, 8, 1, 2, 3);
    write_image(tu_path(tmp, "img/a.png"), 8, 8, 1, 2, 3);
    write_mask(tu_path(tmp, "msk/a_segmentation.png"), 8, 8, 0.5);
    write_mask(tu_path(tmp, "msk/b_Segmentation.png"), 8, 8, 0.5);
    oclseg_pair_list pairs;
    ck_assert_int_eq(oclseg_pairs_scan(tu_path(tmp, "img"), tu_path(tmp, "msk"), NULL, 0, &pairs),
                     OCLSEG_OK);
    ck_assert_int_eq(pairs.count, 2);
    ck_assert_str_eq(pairs.items[0].id, "a");
    ck_assert_str_eq(pairs.items[1].id, "b");
    oclseg_pair_list_free(&pairs);
    /* custom suffix: masks named like the images, in their own folder */
    mkdir(tu_path(tmp, "m2"), 0755);
    write_mask(tu_path(tmp, "m2/a_mask.png"), 8, 8, 0.5);
    write_mask(tu_path(tmp, "m2/b_mask.png"), 8, 8, 0.5);
    ck_assert_int_eq(oclseg_pairs_scan(tu_path(tmp, "img"), tu_path(tmp, "m2"), "_mask.png", 0,
                                       &pairs), OCLSEG_OK);
    ck_assert_int_eq(pairs.count, 2);
    ck_assert_ptr_nonnull(strstr(pairs.items[1].mask_path, "m2/b_mask.png"));
    oclseg_pair_list_free(&pairs);
    /* two images with one id */
    write_image(tu_path(tmp, "img/a.jpg"), 8, 8, 1, 2, 3);
    tu_capture_begin();
    int st = oclseg_pairs_scan(tu_path(tmp, "img"), tu_path(tmp, "msk"), NULL, 0, &pairs);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_FORMAT);
    tu_assert_contains(msg, "two files for id a");
}
END_TEST

/* ---- dataset ------------------------------------------------------------------------------------ */

START_TEST(dataset_load_resizes_and_is_thread_independent) {
    const int ids[] = {0, 1, 2, 3, 4};
    make_isic(TRAIN_DATA, TRAIN_TRUTH, ids, 5, ids, 5);
    oclseg_pair_list pairs;
    ck_assert_int_eq(oclseg_isic_scan(tmp, OCLSEG_SPLIT_TRAIN, 0, &pairs), OCLSEG_OK);
    oclseg_dataset *one, *three;
    oclseg_dataset_options o1 = {.size = 12, .threads = 1}, o3 = {.size = 12, .threads = 3};
    ck_assert_int_eq(oclseg_dataset_load(&pairs, &o1, &one), OCLSEG_OK);
    ck_assert_int_eq(oclseg_dataset_load(&pairs, &o3, &three), OCLSEG_OK);
    ck_assert_int_eq(one->count, 5);
    ck_assert_int_eq(one->size, 12);
    ck_assert(memcmp(one->images, three->images, 5 * 12 * 12 * 3) == 0);
    ck_assert(memcmp(one->masks, three->masks, 5 * 12 * 12) == 0);
    for (int i = 0; i < 5; i++) {
        const oclseg_sample *s = &one->samples[i];
        ck_assert_str_eq(s->id, pairs.items[i].id);
        ck_assert_str_eq(three->samples[i].id, pairs.items[i].id);
        ck_assert_int_eq(s->orig_width, 24);
        ck_assert_int_eq(s->orig_height, 18);
        /* flat colour (10*i, 100, 50) after JPEG: within a few levels */
        const uint8_t *px = one->images + ((size_t)i * 144 + 5 * 12 + 5) * 3;
        ck_assert_int_le(abs(px[0] - 10 * i), 4);
        ck_assert_int_le(abs(px[1] - 100), 4);
        /* left half lesion: 12 columns -> 0..5 are 1, 6..11 are 0 */
        const uint8_t *m = one->masks + (size_t)i * 144;
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++) ck_assert_int_eq(m[y * 12 + x], x < 6 ? 1 : 0);
    }
    oclseg_dataset_free(one);
    oclseg_dataset_free(three);
    oclseg_pair_list_free(&pairs);
}
END_TEST

START_TEST(dataset_bad_files) {
    const int ids[] = {0, 1, 2, 3};
    make_isic(TRAIN_DATA, TRAIN_TRUTH, ids, 4, ids, 4);
    /* pair 1: mask of another size; pair 3: corrupt image */
    const char *bad_mask = tu_path(tmp, TRAIN_TRUTH "/ISIC_0000001_segmentation.png");
    write_mask(bad_mask, 20, 18, 0.5);
    const char *bad_image = tu_path(tmp, TRAIN_DATA "/ISIC_0000003.jpg");
    size_t n;
    unsigned char *bytes = tu_read(bad_image, &n);
    tu_write(bad_image, bytes, n / 2);
    free(bytes);
    oclseg_pair_list pairs;
    ck_assert_int_eq(oclseg_isic_scan(tmp, OCLSEG_SPLIT_TRAIN, 0, &pairs), OCLSEG_OK);

    oclseg_dataset *ds = NULL;
    oclseg_dataset_options opts = {.size = 8, .threads = 1};
    tu_capture_begin();
    int st = oclseg_dataset_load(&pairs, &opts, &ds);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_FORMAT);
    ck_assert_ptr_null(ds);
    tu_assert_contains(msg, "ISIC_0000001_segmentation.png is 20x18 but its image");
    tu_assert_contains(msg, "ISIC_0000001.jpg is 24x18");

    opts.threads = 2;
    opts.skip_bad = 1;
    tu_capture_begin();
    st = oclseg_dataset_load(&pairs, &opts, &ds);
    msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_OK);
    ck_assert_int_eq(ds->count, 2);
    ck_assert_int_eq(ds->skipped, 2);
    ck_assert_str_eq(ds->samples[0].id, "ISIC_0000000");
    ck_assert_str_eq(ds->samples[1].id, "ISIC_0000002");
    tu_assert_contains(msg, "ISIC_0000003.jpg");
    tu_assert_contains(msg, "skipped 2 of 4");
    /* sample 1 of the compacted set is pair 2: its colour is (20, 100, 50) */
    ck_assert_int_le(abs(ds->images[(64 + 3 * 8 + 3) * 3] - 20), 4);
    oclseg_dataset_free(ds);
    oclseg_pair_list_free(&pairs);
}
END_TEST

/* ---- batches, flips, shuffle ------------------------------------------------------------------- */

START_TEST(batch_normalizes_and_flips) {
    /* A hand-made 2-sample dataset with S = 3: pixel value encodes (sample, y, x, c). */
    enum { S = 3 };
    uint8_t images[2 * S * S * 3], masks[2 * S * S];
    for (int n = 0; n < 2; n++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                for (int c = 0; c < 3; c++)
                    images[((n * S + y) * S + x) * 3 + c] = (uint8_t)(n * 100 + y * 30 + x * 10 + c);
                masks[(n * S + y) * S + x] = (uint8_t)(x == 0 && y == 0); /* top-left corner */
            }
    oclseg_dataset ds = {.count = 2, .size = S, .images = images, .masks = masks};
    float img[2 * 3 * S * S], msk[2 * S * S];
    const int indices[2] = {1, 0};
    const oclseg_augment aug[2] = {{.flip_h = 1, .flip_v = 0}, {.flip_h = 1, .flip_v = 1}};
    ck_assert_int_eq(oclseg_dataset_batch(&ds, indices, 2, aug, img, msk), OCLSEG_OK);
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int n = indices[b];
                    int sx = aug[b].flip_h ? S - 1 - x : x, sy = aug[b].flip_v ? S - 1 - y : y;
                    double v = n * 100 + sy * 30 + sx * 10 + c;
                    double want = (v / 255.0 - oclseg_imagenet_mean[c]) / oclseg_imagenet_std[c];
                    float got = img[((b * 3 + c) * S + y) * S + x];
                    ck_assert_msg(fabs(got - want) < 1e-5, "b%d c%d (%d,%d): %f vs %f", b, c, x, y, got, want);
                }
    /* masks flip with their images: sample 1 flipped left-right has its lesion top-right,
     * sample 0 flipped both ways bottom-right */
    for (int i = 0; i < S * S; i++) {
        ck_assert_float_eq(msk[i], i == S - 1 ? 1.0f : 0.0f);
        ck_assert_float_eq(msk[S * S + i], i == S * S - 1 ? 1.0f : 0.0f);
    }
    /* no augmentation, no masks wanted */
    ck_assert_int_eq(oclseg_dataset_batch(&ds, indices, 1, NULL, img, NULL), OCLSEG_OK);
    ck_assert(fabs(img[0] - ((100 / 255.0 - 0.485) / 0.229)) < 1e-5);
    const int bad[1] = {2};
    tu_capture_begin();
    ck_assert_int_eq(oclseg_dataset_batch(&ds, bad, 1, NULL, img, msk), OCLSEG_ERR_INVALID_ARG);
    tu_capture_end();
}
END_TEST

START_TEST(augment_draws_are_deterministic_and_fair) {
    int h = 0, v = 0, both = 0, changed = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        oclseg_augment a = oclseg_augment_draw(42, 3, i), b = oclseg_augment_draw(42, 3, i);
        ck_assert(a.flip_h == b.flip_h && a.flip_v == b.flip_v);
        h += a.flip_h;
        v += a.flip_v;
        both += a.flip_h && a.flip_v;
        oclseg_augment next_epoch = oclseg_augment_draw(42, 4, i);
        changed += next_epoch.flip_h != a.flip_h;
    }
    /* binomial(20000, 0.5): sd 71, so +-500 is 7 sd; both flips p 0.25: sd 61 */
    ck_assert_int_lt(abs(h - n / 2), 500);
    ck_assert_int_lt(abs(v - n / 2), 500);
    ck_assert_int_lt(abs(both - n / 4), 450);
    ck_assert_int_lt(abs(changed - n / 2), 500);
}
END_TEST

START_TEST(shuffle_is_a_deterministic_permutation) {
    enum { N = 1000 };
    int a[N], b[N], c[N], seen[N];
    ck_assert_int_eq(oclseg_shuffle(a, N, 7, 0), OCLSEG_OK);
    ck_assert_int_eq(oclseg_shuffle(b, N, 7, 0), OCLSEG_OK);
    ck_assert_int_eq(oclseg_shuffle(c, N, 7, 1), OCLSEG_OK);
    memset(seen, 0, sizeof seen);
    int fixed = 0, same_as_next_epoch = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(a[i] >= 0 && a[i] < N);
        seen[a[i]]++;
        ck_assert_int_eq(a[i], b[i]);
        fixed += a[i] == i;
        same_as_next_epoch += a[i] == c[i];
    }
    for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_lt(fixed, 10); /* a random permutation has ~1 fixed point */
    ck_assert_int_lt(same_as_next_epoch, 10);
    /* first elements are spread: position 0 over 4000 (seed, epoch) draws of n = 4 */
    int counts[4] = {0};
    for (int e = 0; e < 4000; e++) {
        int p[4];
        oclseg_shuffle(p, 4, 99, e);
        counts[p[0]]++;
    }
    for (int k = 0; k < 4; k++) ck_assert_int_lt(abs(counts[k] - 1000), 150);
    int one[1];
    ck_assert_int_eq(oclseg_shuffle(one, 1, 1, 1), OCLSEG_OK);
    ck_assert_int_eq(one[0], 0);
    ck_assert_int_eq(oclseg_shuffle(NULL, 0, 1, 1), OCLSEG_ERR_INVALID_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("isic");
    TCase *scan = tcase_create("scan");
    tcase_add_checked_fixture(scan, setup, teardown);
    tcase_add_test(scan, isic_layout_pairs_sorted_by_name);
    tcase_add_test(scan, isic_missing_split_folder);
    tcase_add_test(scan, empty_folder);
    tcase_add_test(scan, image_without_mask_and_mask_without_image);
    tcase_add_test(scan, generic_layout_and_suffixes);
    tcase_add_test(scan, dataset_load_resizes_and_is_thread_independent);
    tcase_add_test(scan, dataset_bad_files);
    suite_add_tcase(s, scan);
    TCase *batch = tcase_create("batch");
    tcase_add_test(batch, batch_normalizes_and_flips);
    tcase_add_test(batch, augment_draws_are_deterministic_and_fair);
    tcase_add_test(batch, shuffle_is_a_deterministic_permutation);
    suite_add_tcase(s, batch);
    return tu_run(s);
}
