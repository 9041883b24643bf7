/* Tests that outputs never collide and inputs never leak into each other (OCLSEG_BIN, set by
 * meson): predict refuses inputs with one output name, skips its own outputs in a folder, goes on
 * past unreadable images (with worker threads too), writes the same bytes whatever its thread
 * count, no overlay with --no-overlay, and its files atomically; synth refuses a non-empty
 * folder; train and eval refuse an image in both splits; eval's per-image CSV is RFC 4180 quoted
 * and never left partial; eval's results do not depend on its thread count; a run's
 * predictions/ are the masks its final.csv scores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/metrics.h"

static char root[64];
static const char *bin;

/* One synthetic set (6 training, 4 test images) and one 1-epoch run on it, for every test. */
static void setup_once(void) {
    if (root[0]) return;
    bin = harness_cli_dir(root, sizeof root, "outputs");
    ck_assert_int_eq(harness_sh("%s synth --out %s/data --train 6 --test 4 --seed 5 > /dev/null",
                                bin, root), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/run --epochs 1 --batch 2 "
                                "--size 32 --quiet", bin, root, root), 0);
}

#define TEST_DIR "ISBI2016_ISIC_Part1_Test_Data"

/* Runs `oclseg predict --weights run/weights.safetensors --size 32 ARGS` in root with its
 * stdout and stderr in root/out.txt and root/err.txt; returns the exit status. */
static int predict(const char *args) {
    return harness_sh("cd %s && %s predict --weights run/weights.safetensors --size 32 %s "
                      "> out.txt 2> err.txt", root, bin, args);
}

static int grep_file(const char *file, const char *pattern) {
    return harness_sh("grep -q -- '%s' %s/%s", pattern, root, file) == 0;
}

static int exists(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    return access(path, F_OK) == 0;
}

/* a/x.jpg and b/x.jpg would both write x_mask.png: refused before any work, naming both. */
START_TEST(predict_refuses_inputs_with_one_output_name) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p a b && cp data/" TEST_DIR "/ISIC_0000006.jpg "
                                "a/x.jpg && cp data/" TEST_DIR "/ISIC_0000007.jpg b/x.jpg", root), 0);
    ck_assert_int_eq(predict("--out clash a/x.jpg b/x.jpg"), 2);
    ck_assert(grep_file("err.txt", "a/x.jpg and b/x.jpg would both write clash/x_mask.png"));
    ck_assert(!exists("clash/x_mask.png"));
    /* one folder's x.jpg and x.png clash too; an input that is another's output is refused */
    ck_assert_int_eq(harness_sh("cd %s && cp a/x.jpg b/x.png", root), 0);
    ck_assert_int_eq(predict("--out clash2 b"), 2);
    ck_assert(grep_file("err.txt", "b/x.jpg and b/x.png"));
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p c && cp a/x.jpg c/x.jpg && cp a/x.jpg "
                                "c/x_mask.png", root), 0);
    ck_assert_int_eq(predict("--out c c/x.jpg c/x_mask.png"), 2);
    ck_assert(grep_file("err.txt", "c/x_mask.png, the output of c/x.jpg, is an input"));
}
END_TEST

/* predict --out P P twice: the second run predicts the images again, not the first's outputs. */
START_TEST(predict_skips_its_own_outputs) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p same && cp data/" TEST_DIR "/*.jpg same/", root),
                     0);
    ck_assert_int_eq(predict("--out same same"), 0);
    const int second = predict("--out same same");
    ck_assert(!exists("same/ISIC_0000006_mask_mask.png"));
    ck_assert(!exists("same/ISIC_0000006_overlay_mask.png"));
    ck_assert_int_eq(second, 0);
    ck_assert(grep_file("out.txt", "^4 images predicted into same, 0 failed"));
    ck_assert(grep_file("err.txt", "skipped 8 files in same named like predict.s outputs"));
}
END_TEST

/* A corrupt image sorted first and a missing one: every readable image is predicted, each
 * unreadable one named, the summary counts both, the exit status is 1 (0 with --skip-bad). */
START_TEST(predict_goes_on_past_unreadable_images) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p mixed && cp data/" TEST_DIR "/*.jpg mixed/ && "
                                "head -c 300 mixed/ISIC_0000006.jpg > mixed/0_corrupt.jpg", root), 0);
    const int status = predict("--out mixed_out mixed missing.jpg");
    for (int i = 6; i <= 9; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "mixed_out/ISIC_000000%d_mask.png", i);
        ck_assert_msg(exists(rel), "%s was not predicted", rel);
    }
    ck_assert_int_eq(status, 1);
    ck_assert(grep_file("out.txt", "^4 images predicted into mixed_out, 2 failed"));
    ck_assert(grep_file("err.txt", "could not predict 2 unreadable images: mixed/0_corrupt.jpg, "
                                   "missing.jpg"));
    ck_assert(!exists("mixed_out/0_corrupt_mask.png"));
    ck_assert_int_eq(predict("--out mixed_out2 --skip-bad mixed"), 0);
    ck_assert(grep_file("out.txt", "^4 images predicted into mixed_out2, 1 unreadable skipped"));
    ck_assert(grep_file("err.txt", "skipped 1 unreadable image: mixed/0_corrupt.jpg"));
    /* nothing readable at all is a failure even with --skip-bad */
    ck_assert_int_eq(predict("--out none_out --skip-bad mixed/0_corrupt.jpg"), 1);
    /* a fifo named like an image is not opened (reading it would wait forever) */
    ck_assert_int_eq(harness_sh("cd %s && mkfifo fifo.jpg", root), 0);
    ck_assert_int_eq(harness_sh("cd %s && timeout 120 %s predict --weights run/weights.safetensors "
                                "--size 32 --out fifo_out fifo.jpg mixed/ISIC_0000006.jpg "
                                "> out.txt 2> err.txt", root, bin), 1);
    ck_assert(grep_file("out.txt", "^1 image predicted into fifo_out, 1 failed"));
    ck_assert(grep_file("err.txt", "fifo.jpg: not a regular file"));
}
END_TEST

/* The number of entries of root/rel (ls -A | wc -l). */
static int count_files(const char *rel) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A %s/%s | wc -l", root, rel);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* The pipeline's outputs are the same bytes whatever the worker threads and device batch:
 * masks, overlays and probabilities of 1 thread, batch 1 and of 3 threads, batch 3. */
START_TEST(predict_outputs_do_not_depend_on_threads) {
    setup_once();
    ck_assert_int_eq(predict("--probs --threads 1 --batch 1 --out thr1 data/" TEST_DIR), 0);
    ck_assert_int_eq(predict("--probs --threads 3 --batch 3 --out thr3 data/" TEST_DIR), 0);
    ck_assert(grep_file("out.txt", "^4 images predicted into thr3, 0 failed"));
    ck_assert_int_eq(count_files("thr1"), 12);
    ck_assert_int_eq(harness_sh("cd %s && for f in thr1/*; do cmp -s \"$f\" thr3/${f#thr1/} || "
                                "{ echo \"$f differs\"; exit 1; }; done", root), 0);
    /* --threads takes a count (0: one per CPU) */
    ck_assert_int_eq(predict("--threads -1 --out thr_bad data/" TEST_DIR), 2);
    ck_assert(grep_file("err.txt", "--threads"));
}
END_TEST

/* One worker predicting a tall image and then a wider one with fewer pixels: its row buffers
 * follow the widest row, not only the largest image (a heap overflow before). */
START_TEST(predict_worker_buffers_follow_the_widest_row) {
    setup_once();
    static const int sizes[][2] = {{60, 200}, {150, 40}, {33, 33}};
    ck_assert_int_eq(harness_sh("mkdir -p %s/shapes", root), 0);
    for (int i = 0; i < 3; i++) {
        oclseg_image img;
        ck_assert_int_eq(oclseg_image_create(&img, sizes[i][0], sizes[i][1], 3), OCLSEG_OK);
        for (size_t k = 0; k < (size_t)sizes[i][0] * sizes[i][1] * 3; k++)
            img.pixels[k] = (uint8_t)(k * 7 % 251);
        char path[128];
        snprintf(path, sizeof path, "%s/shapes/%c.png", root, 'a' + i);
        ck_assert_int_eq(oclseg_image_save_png(path, &img), OCLSEG_OK);
        oclseg_image_free(&img);
    }
    ck_assert_int_eq(predict("--threads 1 --probs --out shapes_out shapes"), 0);
    for (int i = 0; i < 3; i++) {
        char path[128];
        oclseg_image mask;
        snprintf(path, sizeof path, "%s/shapes_out/%c_overlay.png", root, 'a' + i);
        ck_assert_int_eq(oclseg_image_load(path, 3, &mask), OCLSEG_OK);
        ck_assert(mask.width == sizes[i][0] && mask.height == sizes[i][1]);
        oclseg_image_free(&mask);
    }
}
END_TEST

/* --no-overlay writes the masks only. */
START_TEST(predict_no_overlay_writes_masks_only) {
    setup_once();
    ck_assert_int_eq(predict("--no-overlay --out no_over data/" TEST_DIR), 0);
    ck_assert_int_eq(count_files("no_over"), 4);
    ck_assert_int_eq(harness_sh("ls %s/no_over | grep -c '_mask.png$' | grep -qx 4", root), 0);
}
END_TEST

/* Unreadable images among many, with workers and batches: every readable one predicted, the
 * summary counts, exit status 1, the messages in input order, no hang (timeout). */
START_TEST(predict_workers_go_on_past_unreadable_images) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p many && cp data/" TEST_DIR "/*.jpg many/ && "
                                "for b in 0_bad ISIC_0000006z_bad ISIC_0000008z_bad zz_bad; do "
                                "head -c 300 many/ISIC_0000006.jpg > many/$b.jpg; done", root), 0);
    ck_assert_int_eq(harness_sh("cd %s && timeout 300 %s predict --weights run/weights.safetensors "
                                "--size 32 --threads 3 --batch 2 --out many_out many missing.jpg "
                                "> out.txt 2> err.txt", root, bin), 1);
    ck_assert(grep_file("out.txt", "^4 images predicted into many_out, 5 failed"));
    ck_assert_int_eq(count_files("many_out"), 8);
    ck_assert_int_eq(harness_sh("cd %s && grep '^oclseg: error: ' err.txt | grep -o "
                                "'many/[A-Za-z0-9_]*_bad\\|missing' | tr '\\n' ' ' | grep -qx "
                                "'many/0_bad many/ISIC_0000006z_bad many/ISIC_0000008z_bad "
                                "many/zz_bad missing '", root), 0);
}
END_TEST

/* predict's files are written whole or not at all: a write that fails halfway
 * (OCLSEG_FAULT_WRITE) leaves the previous mask as it was and no temporary behind. */
START_TEST(predict_outputs_are_atomic) {
    setup_once();
    ck_assert_int_eq(predict("--out atomic data/" TEST_DIR), 0);
    ck_assert_int_eq(harness_sh("cd %s && cp -r atomic atomic_before", root), 0);
    ck_assert_int_eq(harness_sh("cd %s && OCLSEG_FAULT_WRITE=1 %s predict --weights "
                                "run/weights.safetensors --size 32 --threshold 0.01 --out atomic "
                                "data/" TEST_DIR " > out.txt 2> err.txt", root, bin), 1);
    ck_assert(grep_file("err.txt", "the previous file, if any, is unchanged"));
    ck_assert(grep_file("err.txt", "stopped after"));
    ck_assert_int_eq(harness_sh("cd %s && diff -r atomic atomic_before", root), 0);
}
END_TEST

/* synth into a non-empty folder would mix two sets (ids in both splits): refused; --force
 * replaces a set synth wrote, whole, and refuses a folder holding anything else. */
START_TEST(synth_refuses_a_non_empty_folder) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && %s synth --out s --train 4 --test 2 > /dev/null", root,
                                bin), 0);
    ck_assert_int_eq(harness_sh("cd %s && %s synth --out s --train 2 --test 3 > out.txt "
                                "2> err.txt", root, bin), 1);
    ck_assert(grep_file("err.txt", "--out s is not empty"));
    ck_assert_int_eq(count_files("s/ISBI2016_ISIC_Part1_Test_Data"), 2);
    ck_assert_int_eq(harness_sh("cd %s && %s synth --out s --train 2 --test 3 --force > /dev/null",
                                root, bin), 0);
    ck_assert_int_eq(count_files("s/ISBI2016_ISIC_Part1_Training_Data"), 2);
    ck_assert_int_eq(count_files("s/ISBI2016_ISIC_Part1_Test_Data"), 3);
    ck_assert_int_eq(count_files("s/ISBI2016_ISIC_Part1_Test_GroundTruth"), 3);
    /* a file synth did not write stops --force, and stays */
    ck_assert_int_eq(harness_sh("cd %s && touch s/ISBI2016_ISIC_Part1_Test_Data/notes.txt && "
                                "%s synth --out s --train 2 --test 1 --force > /dev/null "
                                "2> err.txt", root, bin), 1);
    ck_assert(grep_file("err.txt", "s/ISBI2016_ISIC_Part1_Test_Data/notes.txt is not part of a "
                                   "synthetic set"));
    ck_assert(exists("s/ISBI2016_ISIC_Part1_Test_Data/notes.txt"));
    ck_assert_int_eq(count_files("s/ISBI2016_ISIC_Part1_Test_Data"), 4);
    /* a folder synth did not write (no marker) is not replaced */
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p mine && touch mine/a.txt && %s synth --out mine "
                                "--train 2 --test 1 --force > /dev/null 2> err.txt", root, bin), 1);
    ck_assert(grep_file("err.txt", "--force replaces only a set synth wrote"));
    ck_assert(exists("mine/a.txt"));
    /* a split folder that is a link: what it points to is not deleted */
    ck_assert_int_eq(harness_sh("cd %s && rm -r s/ISBI2016_ISIC_Part1_Test_Data && mkdir -p "
                                "elsewhere && touch elsewhere/ISIC_keep.jpg && ln -s ../elsewhere "
                                "s/ISBI2016_ISIC_Part1_Test_Data && %s synth --out s --train 2 "
                                "--test 1 --force > /dev/null 2> err.txt", root, bin), 1);
    ck_assert(grep_file("err.txt", "s/ISBI2016_ISIC_Part1_Test_Data is not part of a synthetic"));
    ck_assert(exists("elsewhere/ISIC_keep.jpg"));
}
END_TEST

/* An image id in both splits (a test image that is also a training image): train and eval
 * refuse it before any work, naming the id; --allow-overlap makes it a warning. */
START_TEST(train_and_eval_refuse_an_id_in_both_splits) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && %s synth --out ov --train 4 --test 2 > /dev/null && "
                                "cp ov/*Training_Data/ISIC_0000001.jpg ov/*Test_Data/ && "
                                "cp ov/*Training_GroundTruth/ISIC_0000001_Segmentation.png "
                                "ov/*Test_GroundTruth/", root, bin), 0);
    ck_assert_int_ne(harness_sh("cd %s && %s train --data ov --out ovrun --epochs 1 --batch 2 "
                                "--size 32 --quiet 2> err.txt", root, bin), 0);
    ck_assert(grep_file("err.txt", "1 image id is in both the training and the test split of "
                                   "ov: ISIC_0000001"));
    ck_assert(!exists("ovrun"));
    for (int split = 0; split < 2; split++) {
        ck_assert_int_ne(harness_sh("cd %s && %s eval --data ov --split %s --weights "
                                    "run/weights.safetensors --size 32 --out ov.csv > /dev/null "
                                    "2> err.txt", root, bin, split ? "train" : "test"), 0);
        ck_assert(grep_file("err.txt", "in both the training and the test split of ov: "
                                       "ISIC_0000001"));
        ck_assert(!exists("ov.csv"));
    }
    ck_assert_int_eq(harness_sh("cd %s && %s eval --data ov --weights run/weights.safetensors "
                                "--size 32 --out ov.csv --allow-overlap > /dev/null 2> err.txt",
                                root, bin), 0);
    ck_assert(grep_file("err.txt", "warning: 1 image id is in both"));
    ck_assert_int_eq(harness_sh("cd %s && %s train --data ov --out ovrun --epochs 1 --batch 2 "
                                "--size 32 --quiet --allow-overlap 2> err.txt", root, bin), 0);
    ck_assert(grep_file("ovrun/config.json", "\"allow_overlap\": true"));
}
END_TEST

/* The text of root/rel (malloc'd, NUL-terminated). */
static char *slurp(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    char *text = calloc(1 << 16, 1);
    ck_assert_ptr_nonnull(text);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Reads one RFC 4180 record at *p: returns its field count, the first field in first. */
static int csv_record(const char **p, char *first, size_t size) {
    int fields = 0;
    size_t len = 0;
    for (;;) {
        int quoted = **p == '"';
        if (quoted) ++*p;
        for (;; ++*p) {
            if (!**p) break;
            if (quoted && **p == '"') {
                if ((*p)[1] != '"') {
                    ++*p;
                    break;
                }
                ++*p;
            } else if (!quoted && (**p == ',' || **p == '\n')) {
                break;
            }
            if (fields == 0 && len + 1 < size) first[len++] = **p;
        }
        if (fields == 0) first[len] = '\0';
        fields++;
        if (**p != ',') break;
        ++*p;
    }
    ck_assert_msg(**p == '\n', "a record does not end with a line break after field %d", fields);
    ++*p;
    return fields;
}

/* File names with a comma, a double quote and a line break: eval's per-image CSV quotes them
 * (RFC 4180), so that every record has its 8 fields and its id back. */
START_TEST(eval_csv_quotes_file_names) {
    setup_once();
    static const char *const ids[] = {"a,b", "q\"x", "n\nl", "plain"};
    ck_assert_int_eq(harness_sh("cd %s && mkdir -p q/images q/masks", root), 0);
    for (int i = 0; i < 4; i++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/data/" TEST_DIR "/ISIC_000000%d.jpg", root, 6 + i);
        snprintf(dst, sizeof dst, "%s/q/images/%s.jpg", root, ids[i]);
        ck_assert_int_eq(link(src, dst), 0);
        snprintf(src, sizeof src, "%s/data/ISBI2016_ISIC_Part1_Test_GroundTruth/"
                 "ISIC_000000%d_Segmentation.png", root, 6 + i);
        snprintf(dst, sizeof dst, "%s/q/masks/%s_segmentation.png", root, ids[i]);
        ck_assert_int_eq(link(src, dst), 0);
    }
    ck_assert_int_eq(harness_sh("cd %s && %s eval --images q/images --masks q/masks --weights "
                                "run/weights.safetensors --size 32 --out q.csv > /dev/null", root,
                                bin), 0);
    char *text = slurp("q.csv");
    const char *p = text;
    char id[64];
    ck_assert_int_eq(csv_record(&p, id, sizeof id), 8);
    ck_assert_str_eq(id, "id");
    int seen = 0;
    for (int row = 0; row < 4; row++) {
        ck_assert_int_eq(csv_record(&p, id, sizeof id), 8);
        for (int i = 0; i < 4; i++) seen |= (strcmp(id, ids[i]) == 0) << i;
    }
    ck_assert_int_eq(seen, 15);
    ck_assert_str_eq(p, "");
    ck_assert_ptr_nonnull(strstr(text, "\n\"q\"\"x\","));
    free(text);
}
END_TEST

/* Ten image/mask pairs of distinct non-square sizes in root/np/{images,masks}: the synthetic
 * training and test images resized. */
static void write_sized_pairs(void) {
    static const int sizes[][2] = {{70, 45}, {45, 70}, {96, 33}, {33, 96}, {64, 50},
                                   {81, 57}, {40, 41}, {120, 75}, {52, 88}, {77, 31}};
    ck_assert_int_eq(harness_sh("mkdir -p %s/np/images %s/np/masks", root, root), 0);
    for (int i = 0; i < 10; i++) {
        const int test = i >= 6, n = test ? i : i + 1; /* ISIC_0000001..6, then ..6..9 */
        char path[512];
        oclseg_image img, mask, out;
        snprintf(path, sizeof path, "%s/data/ISBI2016_ISIC_Part1_%s_Data/ISIC_000000%d.jpg", root,
                 test ? "Test" : "Training", test ? n : n - 1);
        ck_assert_int_eq(oclseg_image_load(path, 3, &img), OCLSEG_OK);
        snprintf(path, sizeof path, "%s/data/ISBI2016_ISIC_Part1_%s_GroundTruth/"
                 "ISIC_000000%d_Segmentation.png", root, test ? "Test" : "Training",
                 test ? n : n - 1);
        ck_assert_int_eq(oclseg_image_load(path, 1, &mask), OCLSEG_OK);
        ck_assert_int_eq(oclseg_resize_bilinear(&img, sizes[i][0], sizes[i][1], &out), OCLSEG_OK);
        snprintf(path, sizeof path, "%s/np/images/p%d.png", root, i);
        ck_assert_int_eq(oclseg_image_save_png(path, &out), OCLSEG_OK);
        oclseg_image_free(&out);
        ck_assert_int_eq(oclseg_resize_nearest(&mask, sizes[i][0], sizes[i][1], &out), OCLSEG_OK);
        snprintf(path, sizeof path, "%s/np/masks/p%d_segmentation.png", root, i);
        ck_assert_int_eq(oclseg_image_save_png(path, &out), OCLSEG_OK);
        oclseg_image_free(&out);
        oclseg_image_free(&img);
        oclseg_image_free(&mask);
    }
}

/* The CSV row eval should write for id: its saved mask (ev3/<id>_mask.png) scored against its
 * ground truth, in eval's format. */
static void expected_row(const char *id, char *row, size_t size) {
    char path[512];
    oclseg_image pred, truth;
    snprintf(path, sizeof path, "%s/ev3/%s_mask.png", root, id);
    ck_assert_int_eq(oclseg_image_load(path, 1, &pred), OCLSEG_OK);
    snprintf(path, sizeof path, "%s/np/masks/%s_segmentation.png", root, id);
    ck_assert_int_eq(oclseg_image_load(path, 1, &truth), OCLSEG_OK);
    ck_assert(pred.width == truth.width && pred.height == truth.height);
    oclseg_confusion c;
    ck_assert_int_eq(oclseg_confusion_count_masks(pred.pixels, truth.pixels,
                                                  (size_t)pred.width * pred.height, &c),
                     OCLSEG_OK);
    oclseg_scores sc = oclseg_scores_from_confusion(&c);
    snprintf(row, size, "%s,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f", id, pred.width, pred.height,
             sc.accuracy, sc.dice, sc.jaccard, sc.sensitivity, sc.specificity);
    oclseg_image_free(&pred);
    oclseg_image_free(&truth);
}

static int compare_floats(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of the probabilities in the .npy file rel (as predict --probs writes it): a
 * threshold that splits a briefly trained model's nearly uniform output into two halves. */
static double npy_median(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char head[10];
    ck_assert_int_eq(fread(head, 1, 10, f), 10);
    fseek(f, 0, SEEK_END);
    const long data = 10 + head[8] + 256L * head[9], n = (ftell(f) - data) / 4;
    ck_assert_int_gt(n, 0);
    float *v = malloc((size_t)n * sizeof *v);
    fseek(f, data, SEEK_SET);
    ck_assert_int_eq(fread(v, sizeof *v, (size_t)n, f), (size_t)n);
    fclose(f);
    qsort(v, (size_t)n, sizeof *v, compare_floats);
    const double median = v[n / 2];
    free(v);
    return median;
}

/* eval's scoring on worker threads, pipelined with the device batches: --threads 1 and
 * --threads 3 write the same CSV bytes and masks, and each is the image's own: its saved mask is
 * what predict writes for that image, its CSV row that mask scored against its ground truth. */
START_TEST(eval_results_do_not_depend_on_threads) {
    setup_once();
    write_sized_pairs();
    /* a threshold at which the masks are neither empty nor full */
    ck_assert_int_eq(predict("--probs --no-overlay --out evprobs np/images/p0.png"), 0);
    char threshold[64];
    snprintf(threshold, sizeof threshold, "--threshold %.9g", npy_median("evprobs/p0_prob.npy"));
    for (int threads = 1; threads <= 3; threads += 2)
        ck_assert_int_eq(harness_sh("cd %s && %s eval --images np/images --masks np/masks "
                                    "--weights run/weights.safetensors --size 32 --batch 3 %s "
                                    "--threads %d --save-masks ev%d --out ev%d.csv > out.txt",
                                    root, bin, threshold, threads, threads, threads), 0);
    ck_assert_int_eq(count_files("ev3"), 10);
    char args[256];
    snprintf(args, sizeof args, "--no-overlay --threads 2 %s --out evp np/images", threshold);
    ck_assert_int_eq(predict(args), 0);
    ck_assert_int_eq(harness_sh("cd %s && for f in evp/*; do cmp \"$f\" ev3/${f#evp/} || exit 1; "
                                "done", root), 0);
    char *text = slurp("ev3.csv");
    const char *p = strchr(text, '\n') + 1;
    for (int i = 0; i < 10; i++) {
        char id[8], row[256];
        snprintf(id, sizeof id, "p%d", i);
        expected_row(id, row, sizeof row);
        ck_assert_msg(strncmp(p, row, strlen(row)) == 0 && p[strlen(row)] == '\n',
                      "row %d of ev3.csv is not %s's own: %.80s", i, row, p);
        p += strlen(row) + 1;
    }
    ck_assert_str_eq(p, "");
    free(text);
    ck_assert_int_eq(harness_sh("cd %s && cmp ev1.csv ev3.csv && for f in ev1/*; do cmp -s "
                                "\"$f\" ev3/${f#ev1/} || { echo \"$f differs\"; exit 1; }; done",
                                root), 0);
    /* --threads takes a count (0: one per CPU) */
    ck_assert_int_ne(harness_sh("cd %s && %s eval --images np/images --masks np/masks --weights "
                                "run/weights.safetensors --threads x 2> err.txt", root, bin), 0);
    ck_assert(grep_file("err.txt", "--threads"));
}
END_TEST

/* A CSV that cannot be written (a full disk): the failure is the last word of eval, its exit
 * status 1, and no file (not even an empty one) is left. */
START_TEST(eval_csv_write_failure_is_the_last_word) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && OCLSEG_FAULT_WRITE=1 %s eval --data data --weights "
                                "run/weights.safetensors --size 32 --out full.csv > out.txt "
                                "2> err.txt", root, bin), 1);
    ck_assert(!grep_file("out.txt", "per-image CSV"));
    ck_assert_int_eq(harness_sh("tail -n 1 %s/err.txt | grep -q 'full.csv was not written'", root),
                     0);
    ck_assert_int_eq(harness_sh("ls %s | grep -q full.csv", root), 1);
    /* a real full file system, where this runs as root */
    if (harness_sh("cd %s && mkdir -p tiny && mount -t tmpfs -o size=16k tmpfs tiny "
                   "2> /dev/null", root) != 0) {
        printf("eval_csv_write_failure_is_the_last_word: cannot mount a tmpfs (not root?): "
               "the full file system case is skipped\n");
        return;
    }
    harness_sh("cd %s && dd if=/dev/zero of=tiny/fill bs=1k count=64 2> /dev/null", root);
    const int status = harness_sh("cd %s && %s eval --data data --weights run/weights.safetensors "
                                  "--size 32 --out tiny/e.csv > out.txt 2> err.txt", root, bin);
    const int left = harness_sh("ls %s/tiny | grep -q e.csv", root);
    ck_assert_int_eq(harness_sh("umount %s/tiny", root), 0);
    ck_assert_int_eq(status, 1);
    ck_assert_int_eq(left, 1);
    ck_assert(!grep_file("out.txt", "per-image CSV"));
    ck_assert_int_eq(harness_sh("tail -n 1 %s/err.txt | grep -q 'tiny/e.csv was not written'",
                                root), 0);
}
END_TEST

/* The overlays a run leaves in predictions/ show the masks final.csv scores: the selected model
 * at the threshold chosen on validation with the recipe's options, i.e. what `predict --weights
 * best.safetensors` (its metadata: that threshold and those options) writes, byte for byte
 * (before: they were drawn at 0.5 whatever final.csv reported). This run's chosen threshold is
 * not 0.5 (asserted: otherwise the comparison could not tell). */
START_TEST(run_predictions_show_the_scored_masks) {
    setup_once();
    ck_assert_msg(harness_sh("awk -F, '$1 == \"test\" && $3 != \"0.50\"' %s/run/final.csv | "
                             "grep -q .", root) == 0,
                  "the run chose the threshold 0.5: this test cannot tell the thresholds apart");
    ck_assert_int_eq(harness_sh("cd %s && %s predict --weights run/best.safetensors --out "
                                "best_pred data/" TEST_DIR " > out.txt 2> err.txt", root, bin), 0);
    ck_assert_msg(harness_sh("diff -r %s/run/predictions %s/best_pred > /dev/null", root, root) == 0,
                  "run/predictions differ from predict with best.safetensors");
}
END_TEST

int main(void) {
    Suite *s = suite_create("outputs");
    TCase *tc = tcase_create("outputs");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, predict_refuses_inputs_with_one_output_name);
    tcase_add_test(tc, predict_skips_its_own_outputs);
    tcase_add_test(tc, predict_goes_on_past_unreadable_images);
    tcase_add_test(tc, predict_outputs_do_not_depend_on_threads);
    tcase_add_test(tc, predict_worker_buffers_follow_the_widest_row);
    tcase_add_test(tc, predict_no_overlay_writes_masks_only);
    tcase_add_test(tc, predict_workers_go_on_past_unreadable_images);
    tcase_add_test(tc, predict_outputs_are_atomic);
    tcase_add_test(tc, synth_refuses_a_non_empty_folder);
    tcase_add_test(tc, train_and_eval_refuse_an_id_in_both_splits);
    tcase_add_test(tc, eval_csv_quotes_file_names);
    tcase_add_test(tc, eval_results_do_not_depend_on_threads);
    tcase_add_test(tc, eval_csv_write_failure_is_the_last_word);
    tcase_add_test(tc, run_predictions_show_the_scored_masks);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
