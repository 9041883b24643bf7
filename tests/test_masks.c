/* Tests for mask encodings (each recognised encoding decodes to the known lesion; the rest are
 * errors naming the file and values, unless a threshold is given) and the data health report. */
#include <stdint.h>
#include <stdio.h>

#include "data_test_util.h"
#include "png_test_util.h"
#include "oclseg/data.h"

enum { W = 13, H = 7 }; /* odd sizes: partial bytes in 1- and 4-bit rows */

static char *tmp;
static void setup(void) { tmp = tu_mkdtemp(); }
static void teardown(void) {
    tu_rmtree(tmp);
    tmp = NULL;
}

/* The known lesion: an ellipse (37 of the 91 pixels). */
static int lesion(int x, int y) { return (x - 6) * (x - 6) + 3 * (y - 3) * (y - 3) < 20; }

static int lesion_pixels(void) {
    int n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) n += lesion(x, y);
    return n;
}

/* Writes a W x H single-channel 8-bit PNG with value fg on the lesion and bg elsewhere. */
static const char *write_gray8(const char *name, uint8_t bg, uint8_t fg) {
    uint8_t px[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) px[y * W + x] = lesion(x, y) ? fg : bg;
    const char *path = tu_path(tmp, name);
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_GRAY, px, W, NULL, 0);
    return path;
}

/* Decodes path and asserts: OK, the expected description, every pixel equal to the lesion. */
static void expect_lesion(const char *path, double threshold, const char *description) {
    oclseg_image m;
    oclseg_mask_info info;
    ck_assert_int_eq(oclseg_mask_load(path, threshold, &m, &info), OCLSEG_OK);
    ck_assert_int_eq(m.width, W);
    ck_assert_int_eq(m.height, H);
    ck_assert_int_eq(m.channels, 1);
    char desc[64];
    oclseg_mask_describe(&info, desc, sizeof desc);
    ck_assert_str_eq(desc, description);
    int wrong = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) wrong += m.pixels[y * W + x] != lesion(x, y);
    ck_assert_msg(wrong == 0, "%s: %d pixels differ from the lesion", path, wrong);
    ck_assert_double_eq_tol(info.foreground_fraction, (double)lesion_pixels() / (W * H), 1e-12);
    oclseg_image_free(&m);
}

/* Decodes path and asserts OCLSEG_ERR_FORMAT with a message naming the file and `needle`. */
static void expect_refused(const char *path, double threshold, int status, const char *needle) {
    oclseg_image m;
    oclseg_mask_info info;
    tu_capture_begin();
    int st = oclseg_mask_load(path, threshold, &m, &info);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, status);
    ck_assert_ptr_null(m.pixels);
    tu_assert_contains(msg, path);
    tu_assert_contains(msg, needle);
}

START_TEST(gray_8bit_encodings) {
    ck_assert_int_eq(lesion_pixels(), 37);
    expect_lesion(write_gray8("isic.png", 0, 255), 0, "0/255");
    expect_lesion(write_gray8("labels.png", 0, 1), 0, "0/1 labels");
    expect_lesion(write_gray8("two.png", 0, 128), 0, "0/128"); /* 0 and one other value */
    expect_lesion(write_gray8("dim.png", 0, 50), 0, "0/50");    /* read as empty before */
    /* all background: a valid, empty mask */
    oclseg_image m;
    oclseg_mask_info info;
    ck_assert_int_eq(oclseg_mask_load(write_gray8("empty.png", 0, 0), 0, &m, &info), OCLSEG_OK);
    ck_assert_int_eq(info.encoding, OCLSEG_MASK_EMPTY);
    ck_assert_double_eq(info.foreground_fraction, 0);
    for (int i = 0; i < W * H; i++) ck_assert_int_eq(m.pixels[i], 0);
    oclseg_image_free(&m);
}
END_TEST

START_TEST(one_bit_png) {
    uint8_t rows[H][(W + 7) / 8] = {{0}};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (lesion(x, y)) rows[y][x / 8] |= (uint8_t)(0x80 >> (x % 8));
    const char *path = tu_path(tmp, "bool.png");
    tu_write_png(path, W, H, 1, PNG_COLOR_TYPE_GRAY, &rows[0][0], sizeof rows[0], NULL, 0);
    expect_lesion(path, 0, "1-bit");
}
END_TEST

static const char *write_gray16(const char *name, uint16_t fg) {
    uint8_t px[H][W * 2];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint16_t v = lesion(x, y) ? fg : 0;
            px[y][2 * x] = (uint8_t)(v >> 8); /* PNG: big-endian */
            px[y][2 * x + 1] = (uint8_t)(v & 0xff);
        }
    const char *path = tu_path(tmp, name);
    tu_write_png(path, W, H, 16, PNG_COLOR_TYPE_GRAY, &px[0][0], sizeof px[0], NULL, 0);
    return path;
}

START_TEST(sixteen_bit_encodings) {
    expect_lesion(write_gray16("m65535.png", 65535), 0, "0/65535 16-bit");
    expect_lesion(write_gray16("m1.png", 1), 0, "0/1 labels 16-bit");
    /* 0/255 stored in 16 bits: its high byte is 0, which the 8-bit path used to read as empty */
    expect_lesion(write_gray16("m255.png", 255), 0, "0/255 16-bit");
    expect_lesion(write_gray16("m256.png", 256), 0, "0/256 16-bit");
}
END_TEST

START_TEST(palette_png) {
    /* indices 0/1 are the labels whatever their colours (here black and red) */
    uint8_t idx[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) idx[y * W + x] = (uint8_t)lesion(x, y);
    const png_color black_red[2] = {{0, 0, 0}, {255, 0, 0}};
    const char *path = tu_path(tmp, "pal01.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_PALETTE, idx, W, black_red, 2);
    expect_lesion(path, 0, "palette indices 0/1");
    expect_lesion(path, 128, "palette >= 128"); /* with a threshold: by colour (red >= 128) */
    /* 4-bit palette, indices 2/5 with grey colours 0/255: taken by colour */
    png_color greys[6] = {{9, 9, 9}, {7, 7, 7}, {0, 0, 0}, {1, 2, 3}, {4, 4, 4}, {255, 255, 255}};
    uint8_t packed[H][(W + 1) / 2] = {{0}};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            packed[y][x / 2] |= (uint8_t)((lesion(x, y) ? 5 : 2) << (x % 2 ? 0 : 4));
    path = tu_path(tmp, "pal4.png");
    tu_write_png(path, W, H, 4, PNG_COLOR_TYPE_PALETTE, &packed[0][0], sizeof packed[0], greys, 6);
    expect_lesion(path, 0, "palette 0/255");
}
END_TEST

START_TEST(rgb_and_alpha_masks) {
    uint8_t rgb[W * H * 3], ga[W * H * 2];
    for (int i = 0; i < W * H; i++) {
        uint8_t v = lesion(i % W, i / W) ? 255 : 0;
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
        ga[2 * i] = v;
        ga[2 * i + 1] = (uint8_t)(i * 7); /* alpha is ignored */
    }
    const char *path = tu_path(tmp, "rgb.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_RGB, rgb, W * 3, NULL, 0);
    expect_lesion(path, 0, "RGB 0/255");
    path = tu_path(tmp, "ga.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, W * 2, NULL, 0);
    expect_lesion(path, 0, "0/255");
    /* a colour mask (red lesion on black) is refused, and accepted with a threshold */
    for (int i = 0; i < W * H; i++) rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
    path = tu_path(tmp, "red.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_RGB, rgb, W * 3, NULL, 0);
    expect_refused(path, 0, OCLSEG_ERR_FORMAT, "colour mask");
    expect_lesion(path, 128, "RGB >= 128"); /* any channel >= T */
}
END_TEST

/* A JPEG of a 0/255 mask: compression noise around the border, binarised at 128. */
START_TEST(jpeg_mask) {
    enum { JW = 64, JH = 48 };
    oclseg_image src;
    ck_assert_int_eq(oclseg_image_create(&src, JW, JH, 1), OCLSEG_OK);
    int fg = 0;
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++) {
            int in = (x - 30) * (x - 30) + 2 * (y - 22) * (y - 22) < 300;
            src.pixels[y * JW + x] = in ? 255 : 0;
            fg += in;
        }
    const char *path = tu_path(tmp, "mask.jpg");
    ck_assert_int_eq(oclseg_image_save_jpeg(path, &src, 75), OCLSEG_OK);
    oclseg_image m;
    oclseg_mask_info info;
    ck_assert_int_eq(oclseg_mask_load(path, 0, &m, &info), OCLSEG_OK);
    ck_assert_int_eq(info.encoding, OCLSEG_MASK_LOSSY);
    /* quality 75 moves no pixel across 128 on this shape (measured: 0 of 3072); allow 0.5% */
    int wrong = 0;
    for (int i = 0; i < JW * JH; i++) wrong += m.pixels[i] != (src.pixels[i] ? 1 : 0);
    ck_assert_msg(wrong <= JW * JH / 200, "%d of %d pixels differ", wrong, JW * JH);
    ck_assert_double_eq_tol(info.foreground_fraction, (double)fg / (JW * JH), 0.005);
    oclseg_image_free(&m);
    /* a JPEG photograph-like ramp is not a mask */
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++) src.pixels[y * JW + x] = (uint8_t)(x * 4);
    path = tu_path(tmp, "ramp.jpg");
    ck_assert_int_eq(oclseg_image_save_jpeg(path, &src, 90), OCLSEG_OK);
    expect_refused(path, 0, OCLSEG_ERR_FORMAT, "grey levels between 64 and 191");
    oclseg_image_free(&src);
}
END_TEST

START_TEST(non_binary_masks_are_refused_unless_thresholded) {
    /* three labels */
    uint8_t px[W * H];
    for (int i = 0; i < W * H; i++) px[i] = lesion(i % W, i / W) ? (uint8_t)(1 + (i % 2)) : 0;
    const char *path = tu_path(tmp, "labels3.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_GRAY, px, W, NULL, 0);
    expect_refused(path, 0, OCLSEG_ERR_FORMAT, "3 distinct values");
    expect_refused(path, 0, OCLSEG_ERR_FORMAT, "--mask-threshold");
    expect_lesion(path, 1, ">= 1"); /* every non-zero label is lesion */
    expect_refused(path, 300, OCLSEG_ERR_INVALID_ARG, "exceeds the largest value");
    /* grey levels across the range */
    for (int i = 0; i < W * H; i++) px[i] = (uint8_t)(i * 255 / (W * H - 1));
    path = tu_path(tmp, "ramp.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_GRAY, px, W, NULL, 0);
    expect_refused(path, 0, OCLSEG_ERR_FORMAT, "grey levels across the range");
    /* two values without 0 (which one is lesion?) */
    expect_refused(write_gray8("inv.png", 10, 20), 0, OCLSEG_ERR_FORMAT, "2 distinct values");
    /* the same rules from memory */
    size_t size;
    unsigned char *bytes = tu_read(path, &size);
    oclseg_image m;
    oclseg_mask_info info;
    tu_capture_begin();
    ck_assert_int_eq(oclseg_mask_decode(bytes, size, "mem.png", 0, &m, &info), OCLSEG_ERR_FORMAT);
    tu_assert_contains(tu_capture_end(), "mem.png");
    ck_assert_int_eq(oclseg_mask_decode(bytes, size, "mem.png", 128, &m, &info), OCLSEG_OK);
    ck_assert_int_eq(info.encoding, OCLSEG_MASK_THRESHOLD);
    oclseg_image_free(&m);
    free(bytes);
}
END_TEST

/* ---- data sets and the health report ---- */

/* An ISIC-layout folder with n training pairs; mask i is written by write_mask(i). */
static void write_isic(const char *root, int n, const char *(*write_mask)(int i)) {
    const char *dirs[2] = {"ISBI2016_ISIC_Part1_Training_Data",
                           "ISBI2016_ISIC_Part1_Training_GroundTruth"};
    tu_mkdir(root);
    for (int k = 0; k < 2; k++) {
        char d[4200];
        snprintf(d, sizeof d, "%s/%s", root, dirs[k]);
        tu_mkdir(d);
    }
    oclseg_image img;
    ck_assert_int_eq(oclseg_image_create(&img, W, H, 3), OCLSEG_OK);
    for (int i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/ISIC_%07d.jpg", root, dirs[0], i);
        ck_assert_int_eq(oclseg_image_save_jpeg(path, &img, 90), OCLSEG_OK);
        const char *mask = write_mask(i);
        snprintf(path, sizeof path, "%s/%s/ISIC_%07d_Segmentation.png", root, dirs[1], i);
        ck_assert_int_eq(rename(mask, path), 0);
    }
    oclseg_image_free(&img);
}

static const char *labels01(int i) { (void)i; return write_gray8("m.png", 0, 1); }
static const char *two_empty(int i) { return write_gray8("m.png", 0, i < 2 ? 0 : 255); }
static const char *all_empty(int i) { (void)i; return write_gray8("m.png", 0, 0); }
static const char *inverted(int i) { (void)i; return write_gray8("m.png", 255, 255); }

static oclseg_dataset *load(const char *root, int size) {
    oclseg_pair_list pairs = {0};
    ck_assert_int_eq(oclseg_isic_scan(root, OCLSEG_SPLIT_TRAIN, 0, &pairs), OCLSEG_OK);
    oclseg_dataset_options o = {.size = size, .threads = 2};
    oclseg_dataset *ds = NULL;
    ck_assert_int_eq(oclseg_dataset_load(&pairs, &o, &ds), OCLSEG_OK);
    oclseg_pair_list_free(&pairs);
    return ds;
}

/* The reproduction: 0/1 masks train on non-empty targets. */
START_TEST(zero_one_masks_give_nonempty_targets) {
    const char *root = tu_path(tmp, "d01");
    write_isic(root, 5, labels01);
    oclseg_dataset *ds = load(root, 32);
    for (int i = 0; i < ds->count; i++)
        ck_assert_int_eq(ds->samples[i].mask.encoding, OCLSEG_MASK_LABELS_01);
    /* resized to 32x32 by nearest: about the file's 37/91 = 40.7% lesion remains (before the
     * fix every target was empty) */
    long fg = 0;
    for (size_t p = 0; p < (size_t)ds->count * 32 * 32; p++) fg += ds->masks[p];
    ck_assert_msg(fg > (long)(0.35 * ds->count * 32 * 32), "targets nearly empty: %ld", fg);
    char line[512];
    ck_assert_int_eq(oclseg_data_health_report(ds, "train", line, sizeof line), OCLSEG_OK);
    ck_assert_str_eq(line, "train 5 pairs (0/1 labels: 5), 0.0% empty, mean foreground 40.7%");
    oclseg_dataset_free(ds);
}
END_TEST

/* Writes an n-pair set with write_mask, loads it and runs the health report: returns the status,
 * the line in `line` and what was printed to stderr in *msg. */
static int health_of(const char *name, int n, const char *(*write_mask)(int), char *line,
                     size_t size, const char **msg) {
    const char *root = tu_path(tmp, name);
    write_isic(root, n, write_mask);
    oclseg_dataset *ds = load(root, 32);
    tu_capture_begin();
    int st = oclseg_data_health_report(ds, "train", line, size);
    *msg = tu_capture_end();
    oclseg_dataset_free(ds);
    return st;
}

START_TEST(health_warns_and_refuses) {
    char line[512];
    const char *msg;
    ck_assert_int_eq(health_of("d2", 5, two_empty, line, sizeof line, &msg), OCLSEG_OK);
    ck_assert_str_eq(line, "train 5 pairs (empty (all 0): 2, 0/255: 3), 40.0% empty, "
                           "mean foreground 24.4%");
    tu_assert_contains(msg, "2 of 5 masks (40.0%) are empty");
    tu_assert_contains(msg, "ISIC_0000000_Segmentation.png (0.0%)");

    ck_assert_int_eq(health_of("d3", 4, all_empty, line, sizeof line, &msg), OCLSEG_ERR_FORMAT);
    tu_assert_contains(msg, "train: every one of the 4 masks is empty");

    ck_assert_int_eq(health_of("d4", 3, inverted, line, sizeof line, &msg), OCLSEG_OK);
    tu_assert_contains(msg, "above 95% (inverted masks?)");
    ck_assert_ptr_null(strstr(line, "empty ("));
}
END_TEST

/* A bad mask in a data set fails the load with the file's name (or is skipped with --skip-bad). */
static const char *one_label_map(int i) {
    if (i != 1) return write_gray8("m.png", 0, 255);
    uint8_t px[W * H];
    for (int p = 0; p < W * H; p++) px[p] = (uint8_t)(p % 3);
    const char *path = tu_path(tmp, "m.png");
    tu_write_png(path, W, H, 8, PNG_COLOR_TYPE_GRAY, px, W, NULL, 0);
    return path;
}

START_TEST(bad_mask_in_a_dataset) {
    const char *root = tu_path(tmp, "d5");
    write_isic(root, 3, one_label_map);
    oclseg_pair_list pairs = {0};
    ck_assert_int_eq(oclseg_isic_scan(root, OCLSEG_SPLIT_TRAIN, 0, &pairs), OCLSEG_OK);
    oclseg_dataset *ds = NULL;
    oclseg_dataset_options o = {.size = 32, .threads = 1};
    tu_capture_begin();
    int st = oclseg_dataset_load(&pairs, &o, &ds);
    const char *msg = tu_capture_end();
    ck_assert_int_eq(st, OCLSEG_ERR_FORMAT);
    tu_assert_contains(msg, "ISIC_0000001_Segmentation.png: not a binary mask");
    o.mask_threshold = 1; /* the user says how to binarise */
    ck_assert_int_eq(oclseg_dataset_load(&pairs, &o, &ds), OCLSEG_OK);
    ck_assert_int_eq(ds->samples[1].mask.encoding, OCLSEG_MASK_THRESHOLD);
    oclseg_dataset_free(ds);
    oclseg_pair_list_free(&pairs);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("masks");
    TCase *tc = tcase_create("masks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, gray_8bit_encodings);
    tcase_add_test(tc, one_bit_png);
    tcase_add_test(tc, sixteen_bit_encodings);
    tcase_add_test(tc, palette_png);
    tcase_add_test(tc, rgb_and_alpha_masks);
    tcase_add_test(tc, jpeg_mask);
    tcase_add_test(tc, non_binary_masks_are_refused_unless_thresholded);
    tcase_add_test(tc, zero_one_masks_give_nonempty_targets);
    tcase_add_test(tc, health_warns_and_refuses);
    tcase_add_test(tc, bad_mask_in_a_dataset);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
