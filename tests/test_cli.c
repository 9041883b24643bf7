/* Tests the command line end to end (OCLSEG_BIN, set by meson): synth, train, selection on the
 * validation split with one test report (final.csv), eval (one CSV row per image, metrics in
 * [0, 1], TTA and post-processing), predict (masks at the original resolution, 0/255) and the
 * errors for bad input (missing/foreign weights, corrupt image, empty directory, bad options). */
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/fit.h"
#include "oclseg/safetensors.h"

static char root[64];
static const char *bin;

static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "cli");
    ck_assert_int_eq(harness_sh("%s synth --out %s/data --train 6 --test 4 --seed 3 > /dev/null", bin, root), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/run --epochs 1 --batch 4 --size 32 --quiet",
                        bin, root, root), 0);
}

START_TEST(synth_is_deterministic) {
    setup_once();
    ck_assert_int_eq(harness_sh("%s synth --out %s/data2 --train 6 --test 4 --seed 3 > /dev/null", bin, root), 0);
    ck_assert_int_eq(harness_sh("diff -r %s/data %s/data2 > /dev/null", root, root), 0);
    ck_assert_int_ne(harness_sh("%s synth --train 3 2> /dev/null", bin), 0); /* --out missing */
}
END_TEST

START_TEST(train_writes_the_run_directory) {
    setup_once();
    static const char *files[] = {"config.json", "steps.csv", "metrics.csv", "weights.safetensors",
                                  "best.safetensors", "checkpoint.safetensors", "predictions"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/run/%s", root, files[i]);
        ck_assert_msg(access(path, F_OK) == 0, "missing %s", path);
    }
    ck_assert_int_ne(harness_sh("%s train --size 33 2> /dev/null", bin), 0);
    ck_assert_int_ne(harness_sh("%s train --optimizer adagrad 2> /dev/null", bin), 0);
}
END_TEST

/* Reads the val_JA column (6th) of metrics.csv; returns the number of epochs. */
static int read_val_ja(const char *dir, double *ja, int max) {
    char path[256], line[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "epoch,train_loss,val_loss,val_AC,val_DI,val_JA,val_SE,val_SP,"
                           "val_pooled_dice,val_pooled_iou,seconds,data_wait_s\n");
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        int epoch;
        double tl, vl, ac, di;
        ck_assert_int_eq(sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &epoch, &tl, &vl, &ac, &di, &ja[n]), 6);
        ck_assert_int_eq(epoch, n + 1);
        n++;
    }
    fclose(f);
    return n;
}

/* The best epoch is chosen on the validation split (not the test set), and the test set is
 * scored once, for that epoch, in final.csv; --recipe best runs end to end (augmentation,
 * bce+dice, one-cycle, decoupled weight decay, TTA, post-processing, the skip decoder). */
/* Whether two weights files in dir hold the same tensors, byte for byte. */
static int same_tensors(const char *dir, const char *a, const char *b) {
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/%s", dir, a);
    snprintf(pb, sizeof pb, "%s/%s", dir, b);
    oclseg_st_file *fa, *fb;
    ck_assert_int_eq(oclseg_st_load(pa, &fa), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_load(pb, &fb), OCLSEG_OK);
    int same = fa->count == fb->count;
    for (int i = 0; same && i < fa->count; i++) {
        const oclseg_st_tensor *t = oclseg_st_find(fb, fa->tensors[i].name);
        same = t && t->nbytes == fa->tensors[i].nbytes &&
               memcmp(t->data, fa->tensors[i].data, t->nbytes) == 0;
    }
    oclseg_st_free(fa);
    oclseg_st_free(fb);
    return same;
}

START_TEST(train_selects_on_validation_and_reports_test_once) {
    setup_once();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/run_val", root);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s --epochs 3 --batch 4 --size 32 "
                                "--val-fraction 0.34 --recipe best --quiet", bin, root, dir), 0);
    double ja[8];
    ck_assert_int_eq(read_val_ja(dir, ja, 8), 3);
    int best = 0;
    for (int e = 1; e < 3; e++)
        if (ja[e] > ja[best]) best = e;
    char path[256], line[512];
    snprintf(path, sizeof path, "%s/final.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "split,epoch,threshold,loss,AC,DI,JA,SE,SP,pooled_dice,pooled_iou,"
                           "thresholded_JA,JA_p10,JA_median,JA_p90\n");
    const char *splits[2] = {"val", "test"};
    for (int k = 0; k < 2; k++) {
        char split[16];
        int epoch;
        double t, v[12];
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        ck_assert_int_eq(sscanf(line, "%15[^,],%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf",
                                split, &epoch, &t, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                                &v[7], &v[8], &v[9], &v[10], &v[11]), 15);
        ck_assert_str_eq(split, splits[k]);
        ck_assert_int_eq(epoch, best + 1); /* the epoch with the best validation Jaccard */
        ck_assert(t >= 0.3 - 1e-9 && t <= 0.7 + 1e-9);
        for (int i = 1; i < 12; i++) ck_assert(v[i] >= 0 && v[i] <= 1);
    }
    ck_assert_ptr_null(fgets(line, sizeof line, f)); /* the test set once */
    fclose(f);
    /* best.safetensors holds the last epoch's weights exactly when that epoch was the best (its
     * metadata differs: the threshold chosen on validation) */
    int same = same_tensors(dir, "best.safetensors", "weights.safetensors");
    ck_assert_int_eq(same, best == 2);
    ck_assert_int_eq(harness_sh("grep -q '\"val_images\": 2' %s/config.json", dir), 0);
    ck_assert_int_eq(harness_sh("grep -q '\"loss\": \"bce+dice\"' %s/config.json", dir), 0);
    /* the recipe trains the skip decoder (docs/quality.md), unless --decoder says otherwise */
    ck_assert_int_eq(harness_sh("grep -q '\"decoder\": \"skip\"' %s/config.json", dir), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s-seed --epochs 1 --max-steps 1 "
                                "--batch 4 --size 32 --recipe best --decoder seed --quiet && grep -q "
                                "'\"decoder\": \"seed\"' %s-seed/config.json", bin, root, dir, dir), 0);
    /* eval and predict with TTA and post-processing */
    ck_assert_int_eq(harness_sh("%s eval --data %s/data --weights %s/best.safetensors --size 32 "
                                "--tta flips --largest-component --fill-holes --threshold 0.45 "
                                "--out %s/e.csv | grep -q 'ISIC 2018 thresholded JA'",
                                bin, root, dir, dir), 0);
    ck_assert_int_eq(harness_sh("%s predict --weights %s/best.safetensors --size 32 --tta flips "
                                "--largest-component --out %s/p %s/data/ISBI2016_ISIC_Part1_Test_Data "
                                "> /dev/null", bin, dir, dir, root), 0);
    ck_assert_int_ne(harness_sh("%s eval --data %s/data --weights %s/best.safetensors --size 32 "
                                "--threshold 1.5 2> /dev/null", bin, root, dir), 0);
    ck_assert_int_ne(harness_sh("%s train --recipe fancy 2> /dev/null", bin), 0);
    ck_assert_int_ne(harness_sh("%s train --loss focal 2> /dev/null", bin), 0);
    ck_assert_int_ne(harness_sh("%s train --aug-affine 10,0.1 2> /dev/null", bin), 0);
}
END_TEST

/* --patience stops when the validation Jaccard stops improving: with the encoder frozen (its
 * BatchNorms in eval mode), no dropout and lr 0 the model never changes, so epoch 2 is no better
 * than epoch 1 and --patience 1 stops there; the final report still runs. */
START_TEST(early_stop_on_validation) {
    setup_once();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/run_patience", root);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s --epochs 5 --batch 4 --size 32 "
                                "--freeze-encoder --dropout 0 --lr 0 --patience 1 > %s.log",
                                bin, root, dir, dir), 0);
    double ja[8];
    ck_assert_int_eq(read_val_ja(dir, ja, 8), 2);
    ck_assert(ja[0] == ja[1]);
    ck_assert_int_eq(harness_sh("grep -q 'early stop' %s.log", dir), 0);
    ck_assert_int_eq(harness_sh("grep -q '^test,1,' %s/final.csv", dir), 0);
}
END_TEST

START_TEST(eval_writes_one_row_per_image) {
    setup_once();
    ck_assert_int_eq(harness_sh("%s eval --data %s/data --weights %s/run/weights.safetensors --size 32 "
                        "--out %s/eval.csv > /dev/null", bin, root, root, root), 0);
    char path[256], line[512];
    snprintf(path, sizeof path, "%s/eval.csv", root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "id,width,height,AC,DI,JA,SE,SP\n");
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        char id[64];
        int w, h;
        double v[5];
        ck_assert_int_eq(sscanf(line, "%63[^,],%d,%d,%lf,%lf,%lf,%lf,%lf", id, &w, &h, &v[0], &v[1],
                                &v[2], &v[3], &v[4]), 8);
        ck_assert(w > 32 && h > 32); /* original resolution, not --size */
        for (int k = 0; k < 5; k++) ck_assert(v[k] >= 0 && v[k] <= 1);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 4);
}
END_TEST

START_TEST(predict_masks_at_original_resolution) {
    setup_once();
    ck_assert_int_eq(harness_sh("%s predict --weights %s/run/weights.safetensors --size 32 --out %s/pred "
                        "%s/data/ISBI2016_ISIC_Part1_Test_Data > /dev/null", bin, root, root, root), 0);
    oclseg_pair_list pairs = {0};
    char data[128];
    snprintf(data, sizeof data, "%s/data", root);
    ck_assert_int_eq(oclseg_isic_scan(data, OCLSEG_SPLIT_TEST, 0, &pairs), OCLSEG_OK);
    for (int i = 0; i < pairs.count; i++) {
        oclseg_image img = {0}, mask = {0}, over = {0};
        char path[512];
        ck_assert_int_eq(oclseg_image_load(pairs.items[i].image_path, 3, &img), OCLSEG_OK);
        snprintf(path, sizeof path, "%s/pred/%s_mask.png", root, pairs.items[i].id);
        ck_assert_int_eq(oclseg_image_load(path, 1, &mask), OCLSEG_OK);
        snprintf(path, sizeof path, "%s/pred/%s_overlay.png", root, pairs.items[i].id);
        ck_assert_int_eq(oclseg_image_load(path, 3, &over), OCLSEG_OK);
        ck_assert(mask.width == img.width && mask.height == img.height);
        ck_assert(over.width == img.width && over.height == img.height);
        for (size_t k = 0; k < (size_t)mask.width * mask.height; k++)
            ck_assert(mask.pixels[k] == 0 || mask.pixels[k] == 255);
        oclseg_image_free(&img);
        oclseg_image_free(&mask);
        oclseg_image_free(&over);
    }
    oclseg_pair_list_free(&pairs);
}
END_TEST

START_TEST(bad_input_is_a_clear_error) {
    setup_once();
    /* missing weights file */
    ck_assert_int_ne(harness_sh("%s predict --weights %s/none.safetensors --size 32 --out %s/p2 "
                        "%s/data/ISBI2016_ISIC_Part1_Test_Data 2> %s/err.txt", bin, root, root, root,
                        root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'none.safetensors' %s/err.txt", root), 0);
    /* weights of another architecture (the reduced golden model) name the key */
    ck_assert_int_ne(harness_sh("%s eval --data %s/data --weights tests/data/golden_small.safetensors "
                        "--size 32 2> %s/err.txt", bin, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q \"key '\" %s/err.txt", root), 0);
    /* a corrupt image */
    ck_assert_int_eq(harness_sh("mkdir -p %s/bad && head -c 300 %s/data/ISBI2016_ISIC_Part1_Test_Data/"
                        "$(ls %s/data/ISBI2016_ISIC_Part1_Test_Data | head -1) > %s/bad/x.jpg",
                        root, root, root, root), 0);
    ck_assert_int_ne(harness_sh("%s predict --weights %s/run/weights.safetensors --size 32 --out %s/p3 "
                        "%s/bad/x.jpg 2> %s/err.txt", bin, root, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'x.jpg' %s/err.txt", root), 0);
    /* an empty directory */
    ck_assert_int_eq(harness_sh("mkdir -p %s/empty", root), 0);
    ck_assert_int_ne(harness_sh("%s predict --weights %s/run/weights.safetensors --size 32 --out %s/p4 "
                        "%s/empty 2> /dev/null", bin, root, root, root), 0);
    /* a data directory without the ISIC layout */
    ck_assert_int_ne(harness_sh("%s train --data %s/empty --quiet 2> %s/err.txt", bin, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'empty' %s/err.txt", root), 0);
}
END_TEST

/* Without --lr / --weight-decay a run takes its optimizer's own defaults (the optimizer table)
 * and records them in config.json: SGD's 1e-2 (a fixed 1e-3 reached every optimizer before),
 * AdamW's weight decay 1e-2; given values win. SGD with --decoupled-wd is refused before anything
 * is written (it was silently coupled). One step each. */
START_TEST(optimizer_defaults_reach_the_run) {
    setup_once();
    const struct { const char *args; oclseg_optimizer_kind kind; float lr, wd; } cases[] = {
        {"--optimizer sgd", OCLSEG_OPT_SGD, 1e-2f, 0.0f},
        {"--optimizer adamw", OCLSEG_OPT_ADAMW, 1e-3f, 1e-2f},
        {"--optimizer adamw --lr 2e-3 --weight-decay 0", OCLSEG_OPT_ADAMW, 2e-3f, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/opt%zu --size 32 --batch 2 "
                                    "--max-steps 1 --val-fraction 0 --quiet %s > /dev/null", bin,
                                    root, root, i, cases[i].args), 0);
        char path[128];
        snprintf(path, sizeof path, "%s/opt%zu/config.json", root, i);
        oclseg_fit_options o;
        oclseg_fit_options_default(&o);
        oclseg_fit_record *rec;
        ck_assert_int_eq(oclseg_fit_options_read_config(path, &o, &rec), OCLSEG_OK);
        ck_assert_msg(o.optimizer == cases[i].kind && o.lr == cases[i].lr &&
                          o.weight_decay == cases[i].wd,
                      "%s: recorded optimizer %d, lr %g, weight decay %g", cases[i].args,
                      (int)o.optimizer, (double)o.lr, (double)o.weight_decay);
        oclseg_fit_record_free(rec);
    }
    ck_assert_int_ne(harness_sh("%s train --data %s/data --out %s/optx --size 32 --max-steps 1 "
                                "--optimizer sgd --decoupled-wd --quiet 2> %s/err.txt", bin, root,
                                root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'decoupled-wd' %s/err.txt && test ! -e %s/optx", root,
                                root), 0);
}
END_TEST

/* `oclseg <args> --quiet` must fail with a message containing `says`. */
static void expect_refused(const char *says, const char *args) {
    ck_assert_msg(harness_sh("%s %s --quiet 2> %s/err.txt", bin, args, root) != 0,
                  "'%s' succeeded", args);
    ck_assert_msg(harness_sh("grep -q -- '%s' %s/err.txt", says, root) == 0,
                  "'%s': the message does not say '%s'", args, says);
}

/* --decoder skip: recorded in config.json and in the weights' metadata, from which eval and
 * predict build the same network; a resume cannot change it, and --init with weights of the
 * other decoder is refused with the option to add. */
START_TEST(skip_decoder_end_to_end) {
    setup_once();
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/skip --epochs 1 --batch 4 "
                                "--size 32 --decoder skip --max-steps 1 --quiet", bin, root, root),
                     0);
    ck_assert_int_eq(harness_sh("grep -q '\"decoder\": \"skip\"' %s/skip/config.json", root), 0);
    ck_assert_int_eq(harness_sh("head -c 300 %s/skip/weights.safetensors | "
                                "grep -q '\"decoder_kind\":\"skip\"'", root), 0);
    ck_assert_int_eq(harness_sh("%s eval --data %s/data --weights %s/skip/weights.safetensors "
                                "--size 32 --out %s/skip-eval.csv > /dev/null", bin, root, root,
                                root), 0);
    ck_assert_int_eq(harness_sh("test $(wc -l < %s/skip-eval.csv) -eq 5", root), 0);
    ck_assert_int_eq(harness_sh("%s predict --weights %s/skip/weights.safetensors --out %s/skip-pred "
                                "%s/data/ISBI2016_ISIC_Part1_Test_Data > /dev/null", bin, root, root,
                                root), 0);
    ck_assert_int_eq(harness_sh("test $(ls %s/skip-pred/*_mask.png | wc -l) -eq 4", root), 0);
    char args[512];
    /* a resume that changes the decoder */
    snprintf(args, sizeof args, "train --resume %s/skip/checkpoint.safetensors --epochs 2 "
             "--decoder seed", root);
    expect_refused("--decoder", args);
    /* --init with the skip decoder's weights into a seed-decoder run, and the other way round */
    snprintf(args, sizeof args, "train --data %s/data --out %s/skip-init --epochs 1 --batch 4 "
             "--size 32 --init %s/skip/weights.safetensors", root, root, root);
    expect_refused("add --decoder skip", args);
    snprintf(args, sizeof args, "train --data %s/data --out %s/seed-init --epochs 1 --batch 4 "
             "--size 32 --init %s/run/weights.safetensors --decoder skip", root, root, root);
    expect_refused("add --decoder seed", args);
}
END_TEST

/* --decoder skip-bilinear: recorded under its own name in config.json and the weights, so eval
 * and export build it; the skip decoder's weights (same keys, other shapes) are refused by name,
 * not loaded. */
START_TEST(skip_bilinear_decoder_end_to_end) {
    setup_once();
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/skipbil --epochs 1 --batch 4 "
                                "--size 32 --decoder skip-bilinear --max-steps 1 --quiet", bin,
                                root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q '\"decoder\": \"skip-bilinear\"' %s/skipbil/config.json",
                                root), 0);
    ck_assert_int_eq(harness_sh("head -c 300 %s/skipbil/weights.safetensors | "
                                "grep -q '\"decoder_kind\":\"skip-bilinear\"'", root), 0);
    ck_assert_int_eq(harness_sh("%s eval --data %s/data --weights %s/skipbil/weights.safetensors "
                                "--size 32 --out %s/skipbil-eval.csv > /dev/null", bin, root, root,
                                root), 0);
    ck_assert_int_eq(harness_sh("test $(wc -l < %s/skipbil-eval.csv) -eq 5", root), 0);
    ck_assert_int_eq(harness_sh("%s export --weights %s/skipbil/weights.safetensors --size 32 "
                                "--onnx %s/skipbil.onnx > /dev/null", bin, root, root), 0);
    char args[512];
    snprintf(args, sizeof args, "train --data %s/data --out %s/skipbil-init --epochs 1 --batch 4 "
             "--size 32 --init %s/skipbil/weights.safetensors --decoder skip", root, root, root);
    expect_refused("add --decoder skip-bilinear", args);
}
END_TEST

/* A bad option value is a usage error (exit 2) whose message names the option, in every
 * subcommand that takes numbers; nothing is run. */
START_TEST(bad_option_values_exit_2) {
    static const char *cases[][2] = {
        {"train --epochs abc", "--epochs"},   {"train --batch 0", "--batch"},
        {"train --lr x", "--lr"},             {"eval --size 12x --weights w --data d", "--size"},
        {"train --decoder unet", "--decoder"},
        {"eval --batch -1 --weights w --data d", "--batch"},
        {"predict --size abc --weights w x.png", "--size"},
        {"bench --steps 2x", "--steps"},      {"bench --batch abc", "--batch"},
        {"bench --decoder unet", "--decoder"},
        {"synth --train 1e3 --out /nonexistent", "--train"},
        {"synth --seed -5 --out /nonexistent", "--seed"},
        {"export --size big --weights w --out o", "--size"},
    };
    setup_once();
    char err[160];
    snprintf(err, sizeof err, "%s/badopt.txt", root);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(harness_sh("%s %s > /dev/null 2> %s", bin, cases[i][0], err) == 2,
                      "'%s' did not exit 2", cases[i][0]);
        ck_assert_msg(harness_sh("grep -q -- '%s' %s", cases[i][1], err) == 0,
                      "'%s': the message does not name %s", cases[i][0], cases[i][1]);
    }
}
END_TEST

/* Copies the synthetic set to DIR with every mask rewritten by value(v) (v: 0 or 255). */
static void copy_with_masks(const char *dir, uint8_t (*value)(uint8_t)) {
    ck_assert_int_eq(harness_sh("rm -rf %s/%s && cp -r %s/data %s/%s", root, dir, root, root, dir), 0);
    char data[128];
    snprintf(data, sizeof data, "%s/%s", root, dir);
    for (int split = 0; split < 2; split++) {
        oclseg_pair_list pairs = {0};
        ck_assert_int_eq(oclseg_isic_scan(data, (oclseg_split)split, 0, &pairs), OCLSEG_OK);
        for (int i = 0; i < pairs.count; i++) {
            oclseg_image m = {0};
            ck_assert_int_eq(oclseg_image_load(pairs.items[i].mask_path, 1, &m), OCLSEG_OK);
            for (size_t k = 0; k < (size_t)m.width * m.height; k++) m.pixels[k] = value(m.pixels[k]);
            ck_assert_int_eq(oclseg_image_save_png(pairs.items[i].mask_path, &m), OCLSEG_OK);
            oclseg_image_free(&m);
        }
        oclseg_pair_list_free(&pairs);
    }
}

static uint8_t to_label(uint8_t v) { return v >= 128; }
static uint8_t to_zero(uint8_t v) { (void)v; return 0; }

/* Masks stored as 0/1 labels train on their lesions (they used to binarise to empty targets), the
 * health line says so; all-empty masks and a several-label mask stop training with a message. */
START_TEST(mask_encodings_and_data_health) {
    setup_once();
    copy_with_masks("labels", to_label);
    ck_assert_int_eq(harness_sh("%s train --data %s/labels --out %s/run01 --size 32 --batch 2 "
                        "--max-steps 1 > %s/out.txt", bin, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q '^data: train 6 pairs (0/1 labels: 6), 0.0%% empty, mean "
                        "foreground [1-9][0-9.]*%%; test 4 pairs (0/1 labels: 4)' %s/out.txt", root), 0);
    /* config.json records the health measured on each split (train 5 + val 1 of the 6) */
    ck_assert_int_eq(harness_sh("grep -q '\"train\": \"train 5 pairs (0/1 labels: 5), 0.0%% empty, "
                        "mean foreground [1-9]' %s/run01/config.json && grep -q '\"val\": \"val 1 "
                        "pairs (0/1 labels: 1), 0.0%% empty' %s/run01/config.json", root, root), 0);
    ck_assert_int_eq(harness_sh("%s eval --data %s/labels --weights %s/run/weights.safetensors "
                        "--size 32 --out %s/e.csv > %s/out.txt", bin, root, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q '^data: test 4 pairs (0/1 labels: 4)' %s/out.txt", root), 0);

    copy_with_masks("zero", to_zero);
    ck_assert_int_ne(harness_sh("%s train --data %s/zero --out %s/run00 --size 32 --batch 2 "
                        "--max-steps 1 --quiet 2> %s/err.txt", bin, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'train: every one of the 6 masks is empty' %s/err.txt", root), 0);

    ck_assert_int_ne(harness_sh("%s train --data %s/labels --mask-threshold 300 --size 32 --batch 2 "
                        "--max-steps 1 --quiet --out %s/run3 2> %s/err.txt", bin, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'exceeds the largest value' %s/err.txt", root), 0);
    ck_assert_int_ne(harness_sh("%s train --mask-threshold 0 2> /dev/null", bin), 0);
}
END_TEST

/* A run none of whose steps can train (at --size 32 a BatchNorm batch of one image is skipped)
 * is refused before anything is written, naming the smallest batch and what to change, instead
 * of writing a nan loss, empty steps.csv and untrained weights with exit 0. */
START_TEST(training_that_trains_nothing_is_refused) {
    setup_once();
    ck_assert_int_ne(harness_sh("%s train --data %s/data --out %s/nothing1 --size 32 --batch 1 "
                                "--epochs 2 --quiet 2> %s/err.txt", bin, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q -- '--batch 1 trains nothing: at --size 32 .*BatchNorm.*"
                                "smallest batch BatchNorm allows here is 2. Use --batch 2 or more' "
                                "%s/err.txt", root), 0);
    ck_assert_int_ne(harness_sh("test -e %s/nothing1", root), 0); /* no run directory */
    /* 2 images, one held out for validation: a training set of 1 */
    ck_assert_int_eq(harness_sh("%s synth --out %s/two --train 2 --test 2 --seed 3 > /dev/null", bin,
                                root), 0);
    ck_assert_int_ne(harness_sh("%s train --data %s/two --out %s/nothing2 --size 32 --batch 2 "
                                "--epochs 2 --quiet 2> %s/err.txt", bin, root, root, root), 0);
    ck_assert_int_eq(harness_sh("grep -q 'the training set of 1 image (--val-fraction 0.1 held 1 out "
                                "for validation) trains nothing: .*at least 2 images per step.*"
                                "lower --val-fraction' %s/err.txt", root), 0);
    ck_assert_int_ne(harness_sh("test -e %s/nothing2", root), 0);
}
END_TEST

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Ctrl-C during training (3 loader threads with 4 batches queued ahead): the current step
 * finishes, the batches in flight are dropped, the checkpoint is written, the exit status is 130,
 * and --resume continues from there. */
START_TEST(ctrl_c_writes_checkpoint_and_resumes) {
    setup_once();
    char out[128], steps[160], ckpt[160];
    snprintf(out, sizeof out, "%s/interrupted", root);
    snprintf(steps, sizeof steps, "%s/steps.csv", out);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    char data[128];
    snprintf(data, sizeof data, "%s/data", root);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(bin, bin, "train", "--data", data, "--out", out, "--epochs", "1000", "--batch", "2",
              "--size", "32", "--eval-every", "1000", "--loader-threads", "3", "--prefetch", "4",
              (char *)NULL);
        _exit(127);
    }
    /* wait until training really runs (losses are drained every epoch of 3 steps here) */
    for (int i = 0; i < 600 && count_lines(steps) < 4; i++) usleep(100000);
    ck_assert_int_ge(count_lines(steps), 4);
    kill(pid, SIGINT);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit status %d", status);
    ck_assert_int_eq(access(ckpt, F_OK), 0);
    int done = count_lines(steps) - 1;
    ck_assert_int_eq(harness_sh("%s train --data %s --out %s --epochs 1000 --batch 2 --size 32 "
                        "--eval-every 1000 --quiet --resume %s --max-steps %d", bin, data, out,
                        ckpt, done + 3), 0);
    ck_assert_int_eq(count_lines(steps) - 1, done + 3); /* no step lost or repeated */
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, synth_is_deterministic);
    tcase_add_test(tc, train_writes_the_run_directory);
    tcase_add_test(tc, eval_writes_one_row_per_image);
    tcase_add_test(tc, train_selects_on_validation_and_reports_test_once);
    tcase_add_test(tc, early_stop_on_validation);
    tcase_add_test(tc, predict_masks_at_original_resolution);
    tcase_add_test(tc, bad_input_is_a_clear_error);
    tcase_add_test(tc, skip_decoder_end_to_end);
    tcase_add_test(tc, skip_bilinear_decoder_end_to_end);
    tcase_add_test(tc, bad_option_values_exit_2);
    tcase_add_test(tc, optimizer_defaults_reach_the_run);
    tcase_add_test(tc, mask_encodings_and_data_health);
    tcase_add_test(tc, training_that_trains_nothing_is_refused);
    tcase_add_test(tc, ctrl_c_writes_checkpoint_and_resumes);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
