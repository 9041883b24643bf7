/* Tests that weights know what they are and that predict computes what eval computes, end to
 * end through the command line (OCLSEG_BIN): the input size, validation threshold and inference
 * options recorded in the safetensors __metadata__ and used as defaults (an explicit other
 * --size refused unless --force-size), files without metadata keeping the old defaults, NaN/Inf
 * weights refused by every command that reads weights, and predict's masks equal to the masks
 * eval scores for every inference option. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

static char root[64];
static const char *bin;
static const char *test_images = "ISBI2016_ISIC_Part1_Test_Data";

/* A model with real structure (validation JA ~0.75 on this set), trained with the recipe's
 * flip TTA so that its files record tta=flips. */
static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "wmeta");
    ck_assert_int_eq(harness_sh("%s synth --out %s/data --train 12 --test 3 --seed 3 > /dev/null",
                                bin, root), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s/data --out %s/run --epochs 3 --batch 4 "
                                "--size 32 --lr 0.01 --tta flips --quiet", bin, root, root), 0);
}

/* The test split's ids (sorted as predict and eval order them). */
static int test_ids(char ids[][64], int max) {
    oclseg_pair_list pairs = {0};
    char data[128];
    snprintf(data, sizeof data, "%s/data", root);
    ck_assert_int_eq(oclseg_isic_scan(data, OCLSEG_SPLIT_TEST, 0, &pairs), OCLSEG_OK);
    int n = pairs.count < max ? pairs.count : max;
    for (int i = 0; i < n; i++) snprintf(ids[i], 64, "%s", pairs.items[i].id);
    oclseg_pair_list_free(&pairs);
    return n;
}

/* Compares dir_a/<id>_mask.png with dir_b/<id>_mask.png for every test image; returns the
 * number of pixels that differ, *structured += the masks holding both classes. */
static long mask_diff(const char *dir_a, const char *dir_b, int *structured) {
    char ids[16][64];
    int n = test_ids(ids, 16);
    long differ = 0;
    for (int i = 0; i < n; i++) {
        oclseg_image a = {0}, b = {0};
        char path[1200];
        snprintf(path, sizeof path, "%s/%s_mask.png", dir_a, ids[i]);
        ck_assert_msg(oclseg_image_load(path, 1, &a) == OCLSEG_OK, "cannot read %s", path);
        snprintf(path, sizeof path, "%s/%s_mask.png", dir_b, ids[i]);
        ck_assert_msg(oclseg_image_load(path, 1, &b) == OCLSEG_OK, "cannot read %s", path);
        ck_assert(a.width == b.width && a.height == b.height);
        size_t on = 0, count = (size_t)a.width * a.height;
        for (size_t k = 0; k < count; k++) {
            differ += a.pixels[k] != b.pixels[k];
            on += a.pixels[k] != 0;
        }
        if (structured) *structured += on > 0 && on < count;
        oclseg_image_free(&a);
        oclseg_image_free(&b);
    }
    return differ;
}

/* For every inference option and their combinations (and a forced other size), the masks
 * predict writes equal, pixel for pixel, the masks eval scores (eval --save-masks). */
START_TEST(predict_masks_equal_eval_masks) {
    setup_once();
    static const char *tta[] = {"--tta none", "--tta flips"};
    static const char *rest[] = {"", "--threshold 0.3", "--largest-component", "--fill-holes",
                                 "--threshold 0.6 --largest-component --fill-holes",
                                 "--size 64 --force-size --largest-component"};
    const int nrest = (int)(sizeof rest / sizeof rest[0]);
    for (int t = 0; t < 2; t++)
        for (int r = 0; r < nrest; r++) {
            if (r == nrest - 1 && t == 0) continue; /* the other size once, with TTA */
            char ev[128], pr[128];
            snprintf(ev, sizeof ev, "%s/ev%d_%d", root, t, r);
            snprintf(pr, sizeof pr, "%s/pr%d_%d", root, t, r);
            ck_assert_int_eq(harness_sh("%s eval --data %s/data --weights %s/run/best.safetensors "
                                        "%s %s --save-masks %s --out %s/e.csv > /dev/null", bin,
                                        root, root, tta[t], rest[r], ev, root), 0);
            ck_assert_int_eq(harness_sh("%s predict --weights %s/run/best.safetensors %s %s "
                                        "--out %s %s/data/%s > /dev/null", bin, root, tta[t],
                                        rest[r], pr, root, test_images), 0);
            int structured = 0;
            long differ = mask_diff(ev, pr, &structured);
            ck_assert_msg(differ == 0, "%s %s: %ld pixels differ between eval and predict",
                          tta[t], rest[r], differ);
            ck_assert_msg(structured > 0, "%s %s: every mask empty or full", tta[t], rest[r]);
        }
}
END_TEST

/* Reads the threshold column of final.csv's test row. */
static double final_threshold(void) {
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/run/final.csv", root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    double thr = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "test,", 5) == 0) ck_assert_int_eq(sscanf(line, "test,%*d,%lf", &thr), 1);
    fclose(f);
    return thr;
}

/* Copies src to dst with metadata only "format" (an older or a foreign file) when strip, and
 * tensor `poison` (if not NULL) holding `bad` at element 3; keys starting with "encoder." renamed
 * to "features." when torchvision. */
static void copy_weights(const char *src, const char *dst, int strip, const char *poison,
                         float bad, int torchvision) {
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(src, &f), OCLSEG_OK);
    oclseg_st_writer *w;
    ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
    for (int i = 0; i < f->meta_count; i++)
        if (!strip || strcmp(f->meta_keys[i], "format") == 0)
            ck_assert_int_eq(oclseg_st_writer_meta(w, f->meta_keys[i], f->meta_values[i]),
                             OCLSEG_OK);
    int poisoned = 0;
    for (int i = 0; i < f->count; i++) {
        const oclseg_st_tensor *t = &f->tensors[i];
        unsigned char *data = malloc(t->nbytes + 1);
        memcpy(data, t->data, t->nbytes);
        if (poison && strcmp(t->name, poison) == 0) {
            ck_assert(t->dtype == OCLSEG_ST_F32 && t->numel > 3);
            memcpy(data + 12, &bad, 4);
            poisoned = 1;
        }
        char name[256];
        if (torchvision && strncmp(t->name, "encoder.", 8) == 0)
            snprintf(name, sizeof name, "features.%s", t->name + 8);
        else snprintf(name, sizeof name, "%s", t->name);
        ck_assert_int_eq(oclseg_st_writer_add(w, name, t->dtype, t->ndim, t->shape, data),
                         OCLSEG_OK);
        free(data);
    }
    ck_assert_msg(!poison || poisoned, "no tensor %s in %s", poison, src);
    ck_assert_int_eq(oclseg_st_writer_write(w, dst), OCLSEG_OK);
    oclseg_st_writer_free(w);
    oclseg_st_free(f);
}

/* best.safetensors records the training size, final.csv's threshold and the recipe's inference
 * options; eval, predict and export use them by default; another --size is an error naming both
 * sizes unless --force-size; a file without metadata keeps the old defaults. */
START_TEST(weights_record_size_threshold_and_options) {
    setup_once();
    char best[128];
    snprintf(best, sizeof best, "%s/run/best.safetensors", root);
    oclseg_weights_meta meta;
    ck_assert_int_eq(oclseg_weights_meta_read(best, &meta), OCLSEG_OK);
    ck_assert_int_eq(meta.input_size, 32);
    ck_assert(meta.has_options && meta.tta_flips && !meta.largest_component && !meta.fill_holes);
    double thr = final_threshold();
    ck_assert_msg(meta.threshold > 0 && fabs(meta.threshold - thr) < 0.005,
                  "recorded threshold %g, final.csv %g", (double)meta.threshold, thr);
    ck_assert_msg(fabs(thr - 0.5) > 0.01, "this set's validation threshold is 0.5: the default "
                                          "cannot be told apart (change the seed)");
    char snap[128];
    snprintf(snap, sizeof snap, "%s/run/weights.safetensors", root);
    ck_assert_int_eq(oclseg_weights_meta_read(snap, &meta), OCLSEG_OK);
    ck_assert_int_eq(meta.input_size, 32);
    snprintf(snap, sizeof snap, "%s/run/checkpoint.safetensors", root);
    ck_assert_int_eq(oclseg_weights_meta_read(snap, &meta), OCLSEG_OK);
    ck_assert_int_eq(meta.input_size, 32);

    /* predict's defaults are the recorded ones, not 0.5 without TTA */
    ck_assert_int_eq(harness_sh("%s predict --weights %s --out %s/pd %s/data/%s > /dev/null", bin,
                                best, root, root, test_images), 0);
    ck_assert_int_eq(harness_sh("%s predict --weights %s --out %s/pe --threshold %.9g --tta flips "
                                "%s/data/%s > /dev/null", bin, best, root, (double)thr, root,
                                test_images), 0);
    ck_assert_int_eq(harness_sh("%s predict --weights %s --out %s/p05 --threshold 0.5 --tta none "
                                "%s/data/%s > /dev/null", bin, best, root, root, test_images), 0);
    char pd[128], pe[128], p05[128];
    snprintf(pd, sizeof pd, "%s/pd", root);
    snprintf(pe, sizeof pe, "%s/pe", root);
    snprintf(p05, sizeof p05, "%s/p05", root);
    ck_assert_int_eq(mask_diff(pd, pe, NULL), 0);
    ck_assert(mask_diff(pd, p05, NULL) > 0);

    /* another size: an error naming both, for every command; --force-size runs it */
    static const char *cmds[] = {"eval --data %s/data --weights %s --size 64 --out %s/x.csv",
                                 "predict --weights %s --size 64 --out %s/x %s/data/x.jpg",
                                 "export --weights %s --size 64 --onnx %s/x.onnx%s"};
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%%s %s 2> %%s/err.txt", cmds[0]);
    ck_assert_int_eq(harness_sh(fmt, bin, root, best, root, root), 2);
    ck_assert_int_eq(harness_sh("grep -q -- '--size 64.*(32' %s/err.txt", root), 0);
    snprintf(fmt, sizeof fmt, "%%s %s 2> %%s/err.txt", cmds[1]);
    ck_assert_int_eq(harness_sh(fmt, bin, best, root, root, root), 2);
    ck_assert_int_eq(harness_sh("grep -q -- '--size 64.*(32' %s/err.txt", root), 0);
    snprintf(fmt, sizeof fmt, "%%s %s 2> %%s/err.txt", cmds[2]);
    ck_assert_int_eq(harness_sh(fmt, bin, best, root, "", root), 2);
    ck_assert_int_eq(harness_sh("grep -q -- '--size 64.*(32' %s/err.txt", root), 0);
    ck_assert_int_eq(harness_sh("%s export --weights %s --size 64 --force-size --onnx %s/f.onnx "
                                "> /dev/null", bin, best, root), 0);
    ck_assert_int_eq(harness_sh("%s export --weights %s --onnx %s/d.onnx | grep -q '3,32,32'", bin,
                                best, root), 0);

    /* a file without metadata: the old defaults (size 128, threshold 0.5), any --size */
    char bare[128];
    snprintf(bare, sizeof bare, "%s/bare.safetensors", root);
    copy_weights(best, bare, 1, NULL, 0, 0);
    ck_assert_int_eq(oclseg_weights_meta_read(bare, &meta), OCLSEG_OK);
    ck_assert(meta.input_size == 0 && meta.threshold == 0 && !meta.has_options);
    ck_assert_int_eq(harness_sh("%s export --weights %s --onnx %s/b.onnx | grep -q '3,128,128'",
                                bin, bare, root), 0);
    ck_assert_int_eq(harness_sh("%s predict --weights %s --size 32 --out %s/pb %s/data/%s "
                                "> /dev/null", bin, bare, root, root, test_images), 0);
    char pb[128];
    snprintf(pb, sizeof pb, "%s/pb", root);
    ck_assert_int_eq(mask_diff(pb, p05, NULL), 0);
}
END_TEST

/* Weights holding NaN or Inf are an error naming the tensor from every command that reads
 * weights; nothing is written. */
START_TEST(nonfinite_weights_are_refused_by_every_reader) {
    setup_once();
    char src[128], nan_w[128], inf_w[128], ckpt[128], nan_ckpt[128], tv[128];
    snprintf(src, sizeof src, "%s/run/best.safetensors", root);
    snprintf(nan_w, sizeof nan_w, "%s/nan.safetensors", root);
    snprintf(inf_w, sizeof inf_w, "%s/inf.safetensors", root);
    snprintf(ckpt, sizeof ckpt, "%s/run/checkpoint.safetensors", root);
    snprintf(nan_ckpt, sizeof nan_ckpt, "%s/nan_ckpt.safetensors", root);
    snprintf(tv, sizeof tv, "%s/tv.safetensors", root);
    copy_weights(src, nan_w, 0, "decoder.3.weight", NAN, 0);
    copy_weights(src, inf_w, 0, "encoder.0.1.running_var", INFINITY, 0);
    copy_weights(ckpt, nan_ckpt, 0, "encoder.2.conv.1.0.weight", NAN, 0);
    copy_weights(src, tv, 0, "encoder.1.conv.0.0.weight", -INFINITY, 1);
    const char *d = root;
    struct {
        char cmd[768];
        const char *tensor;
    } cases[7];
    int n = 0;
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "eval --data %s/data --weights %s --out %s/n.csv",
             d, nan_w, d);
    cases[n++].tensor = "decoder.3.weight";
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "predict --weights %s --out %s/np %s/data/%s", nan_w,
             d, d, test_images);
    cases[n++].tensor = "decoder.3.weight";
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "export --weights %s --onnx %s/n.onnx", inf_w, d);
    cases[n++].tensor = "encoder.0.1.running_var";
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "predict --weights %s --out %s/np %s/data/%s", inf_w,
             d, d, test_images);
    cases[n++].tensor = "encoder.0.1.running_var";
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "train --data %s/data --size 32 --batch 4 "
             "--epochs 1 --quiet --out %s/tn --init %s", d, d, nan_w);
    cases[n++].tensor = "decoder.3.weight";
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "train --data %s/data --size 32 --batch 4 "
             "--epochs 1 --quiet --out %s/tp --pretrained %s", d, d, tv);
    cases[n++].tensor = "features.1.conv.0.0.weight";
    /* a resume takes the checkpoint's recorded options (another --lr would be refused first) */
    snprintf(cases[n].cmd, sizeof cases[n].cmd, "train --quiet --resume %s", nan_ckpt);
    cases[n++].tensor = "encoder.2.conv.1.0.weight";
    for (int i = 0; i < n; i++) {
        int rc = harness_sh("%s %s > %s/out.txt 2> %s/err.txt", bin, cases[i].cmd, d, d);
        ck_assert_msg(rc != 0, "%s: exit 0", cases[i].cmd);
        ck_assert_msg(harness_sh("grep -q \"'%s' holds\" %s/err.txt", cases[i].tensor, d) == 0,
                      "%s: the error does not name %s", cases[i].cmd, cases[i].tensor);
    }
    ck_assert_int_ne(access(root, F_OK), -1);
    char onnx[128];
    snprintf(onnx, sizeof onnx, "%s/n.onnx", root);
    ck_assert_int_eq(access(onnx, F_OK), -1); /* export wrote nothing */
}
END_TEST

int main(void) {
    Suite *s = suite_create("weights_meta");
    TCase *tc = tcase_create("weights_meta");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, weights_record_size_threshold_and_options);
    tcase_add_test(tc, nonfinite_weights_are_refused_by_every_reader);
    tcase_add_test(tc, predict_masks_equal_eval_masks);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
