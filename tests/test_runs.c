/* Tests run integrity end to end (OCLSEG_BIN, set by meson): a run stopped by --max-steps (inside
 * an epoch or at its end) and resumed from its checkpoint alone is the uninterrupted run (steps,
 * metrics rows, selected epoch, final.csv, best weights, config.json); patience and the best epoch
 * survive a resume; a resume that does not continue its run (another option value, --init, a
 * --max-steps behind it, changed data, another --out) is an error that writes nothing; train
 * --config starts a new run with exactly the recorded settings and checks every key. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char root[64];
static const char *bin;
/* 8 training images, --val-fraction 0.25: 6 train / 2 validation, 3 steps per epoch of batch 2 */
static const char base[] = "--data d --batch 2 --size 32 --val-fraction 0.25 --seed 3 --quiet";

static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "runs");
    ck_assert_int_eq(harness_sh("cd %s && %s synth --out d --train 8 --test 4 --seed 3 > /dev/null",
                                root, bin), 0);
}

/* `oclseg train ARGS` in root (so that relative paths, and anything a faulty resume would
 * generate, stay there), stderr to root/err.txt; returns the exit status. */
static int vtrain(const char *fmt, va_list ap) {
    char args[1024];
    vsnprintf(args, sizeof args, fmt, ap);
    return harness_sh("cd %s && timeout ${OCLSEG_TEST_TRAIN_TIMEOUT:-600} %s train %s > /dev/null "
                      "2> err.txt", root, bin, args);
}

static int train(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int train(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vtrain(fmt, ap);
    va_end(ap);
    return rc;
}

static void expect_message(const char *fragment);

/* `oclseg train ARGS` fails with `fragment` in its message. */
static void refused(const char *fragment, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refused(const char *fragment, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vtrain(fmt, ap);
    va_end(ap);
    ck_assert_msg(rc != 0, "exit 0 where '%s' was expected", fragment);
    expect_message(fragment);
}

/* err.txt holds `fragment`. */
static void expect_message(const char *fragment) {
    char path[128], text[8192] = "";
    snprintf(path, sizeof path, "%s/err.txt", root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(text, fragment) != NULL, "stderr lacks '%s':\n%s", fragment, text);
}

/* Run directories a and b (in root) hold the same run: steps.csv, metrics.csv but its seconds
 * column, final.csv, best.safetensors and config.json. */
static void expect_same_run(const char *a, const char *b) {
    ck_assert_msg(harness_sh("cd %s && cmp -s %s/steps.csv %s/steps.csv", root, a, b) == 0,
                  "steps.csv of %s and %s differ", a, b);
    ck_assert_msg(harness_sh("cd %s && cut -d, -f1-10 %s/metrics.csv > m1 && cut -d, -f1-10 "
                             "%s/metrics.csv > m2 && cmp -s m1 m2", root, a, b) == 0,
                  "metrics.csv of %s and %s differ", a, b);
    ck_assert_msg(harness_sh("cd %s && cmp -s %s/final.csv %s/final.csv", root, a, b) == 0,
                  "final.csv of %s and %s differ", a, b);
    ck_assert_msg(harness_sh("cd %s && cmp -s %s/best.safetensors %s/best.safetensors", root, a,
                             b) == 0, "best.safetensors of %s and %s differ", a, b);
    ck_assert_msg(harness_sh("cd %s && cmp -s %s/config.json %s/config.json", root, a, b) == 0,
                  "config.json of %s and %s differ", a, b);
}

static int metrics_rows(const char *run) {
    return harness_sh("cd %s && exit $(($(wc -l < %s/metrics.csv) - 1))", root, run);
}

/* Stopped at the end of epoch 1 (--max-steps 3), resumed with nothing but --resume up to inside
 * epoch 2 (--max-steps 4), resumed again to the end: the checkpoint's configuration (data, size,
 * batch, seed, ...) is the run's, the epoch ending at a stop is evaluated before it, a resumed
 * epoch's train loss counts its steps before the stop, and the result is the uninterrupted run. */
START_TEST(interrupted_run_equals_uninterrupted) {
    setup_once();
    ck_assert_int_eq(train("%s --epochs 2 --out full", base), 0);
    ck_assert_int_eq(metrics_rows("full"), 2);
    ck_assert_int_eq(train("%s --epochs 2 --out part --max-steps 3", base), 0);
    ck_assert_int_eq(metrics_rows("part"), 1); /* epoch 1 ended at the stop: evaluated */
    ck_assert_int_eq(harness_sh("cd %s && cmp -s part/best.safetensors part/weights.safetensors",
                                root), 0);
    ck_assert_int_eq(train("--resume part/checkpoint.safetensors --max-steps 4"), 0);
    ck_assert_int_eq(metrics_rows("part"), 1);
    ck_assert_int_eq(train("--resume part/checkpoint.safetensors"), 0);
    expect_same_run("full", "part");
}
END_TEST

/* With the encoder frozen, no dropout and lr 0 the model never changes, so epoch 1 stays the best
 * and --patience 2 stops after epoch 3. Stopped at the end of epoch 2 and resumed, the run still
 * selects epoch 1 and stops after epoch 3 (the resumed epoch is not the best one). */
START_TEST(resume_keeps_best_epoch_and_patience) {
    setup_once();
    const char *same = "--freeze-encoder --dropout 0 --lr 0 --patience 2 --epochs 5";
    ck_assert_int_eq(train("%s %s --out pfull", base, same), 0);
    ck_assert_int_eq(metrics_rows("pfull"), 3);
    ck_assert_int_eq(harness_sh("grep -q '^val,1,' %s/pfull/final.csv", root), 0);
    ck_assert_int_eq(train("%s %s --out ppart --max-steps 6", base, same), 0);
    ck_assert_int_eq(train("--resume ppart/checkpoint.safetensors"), 0);
    expect_same_run("pfull", "ppart");
}
END_TEST

/* The run directory `run` (in root) is as saved in `copy`. */
static void expect_unchanged(const char *run, const char *copy) {
    ck_assert_msg(harness_sh("cd %s && diff -r %s %s > /dev/null", root, run, copy) == 0,
                  "the failed resume changed %s", run);
}

/* A resume that would not continue its run is an error naming the option and both values (or
 * where the run is), and writes nothing. */
START_TEST(resume_that_is_another_run_is_an_error) {
    setup_once();
    ck_assert_int_eq(train("%s --epochs 3 --out stop --max-steps 4", base), 0);
    ck_assert_int_eq(harness_sh("cd %s && cp -r stop stop.saved", root), 0);
    const char *ckpt = "stop/checkpoint.safetensors";
    refused("--size: the run was trained with 32, given 64", "--resume %s --size 64", ckpt);
    refused("--batch: the run was trained with 2, given 4", "--resume %s --batch 4 --data d",
            ckpt);
    refused("--seed: the run was trained with 3, given 4", "--resume %s --seed 4", ckpt);
    refused("the run was trained with", "--resume %s --recipe best", ckpt);
    refused("--init with --resume", "--resume %s --init stop/weights.safetensors", ckpt);
    refused("--max-steps 1: the run of stop/checkpoint.safetensors is already at step 4",
            "--resume %s --max-steps 1", ckpt);
    refused("already at step 4", "--resume %s --max-steps 4", ckpt);
    refused("--out: the run of stop/checkpoint.safetensors is in stop, given elsewhere",
            "--resume %s --out elsewhere", ckpt);
    ck_assert_int_ne(harness_sh("test -e %s/elsewhere", root), 0); /* no directory created */
    expect_unchanged("stop", "stop.saved");
    /* the changeable options are taken (and the run goes on) */
    ck_assert_int_eq(train("--resume %s --epochs 4 --eval-every 2 --threads 1 --max-steps 5 "
                           "--data d --size 32", ckpt), 0);
    ck_assert_int_eq(harness_sh("grep -q '\"epochs\": 4' %s/stop/config.json && grep -q "
                                "'\"size\": 32' %s/stop/config.json", root, root), 0);
    /* a non-constant schedule spans the run's epochs: they cannot change */
    ck_assert_int_eq(train("%s --epochs 2 --schedule cosine --out cos --max-steps 2", base), 0);
    refused("--epochs: the run was trained with 2, given 3",
            "--resume cos/checkpoint.safetensors --epochs 3");
}
END_TEST

/* Replaces the first `from` in root/path by `to` (the same length), in place. */
static void patch_file(const char *path, const char *from, const char *to) {
    char full[256];
    snprintf(full, sizeof full, "%s/%s", root, path);
    FILE *f = fopen(full, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *data = malloc((size_t)size);
    ck_assert_ptr_nonnull(data);
    rewind(f);
    ck_assert_int_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    const size_t n = strlen(from);
    long at = 0;
    while (at + (long)n <= size && memcmp(data + at, from, n) != 0) at++;
    ck_assert_msg(at + (long)n <= size, "%s holds no '%s'", path, from);
    fseek(f, at, SEEK_SET);
    ck_assert_int_eq(fwrite(to, 1, strlen(to), f), strlen(to));
    fclose(f);
    free(data);
}

/* The data of a run changed under its checkpoint (two training images gone: fewer steps per
 * epoch), or its position lies past the data's end: the resume is an error naming the
 * checkpoint, and writes nothing. */
START_TEST(checkpoint_past_its_data_is_an_error) {
    setup_once();
    ck_assert_int_eq(harness_sh("cd %s && cp -r d d8", root), 0);
    ck_assert_int_eq(train("--data d8 --batch 2 --size 32 --val-fraction 0.25 --seed 3 --quiet "
                           "--epochs 2 --out shrunk --max-steps 5"), 0);
    /* the same data, a position past its end (step 9 of an epoch of 3) */
    ck_assert_int_eq(harness_sh("cd %s && cp -r shrunk far", root), 0);
    patch_file("far/checkpoint.safetensors", "\"step_in_epoch\":\"2\"",
               "\"step_in_epoch\":\"9\"");
    ck_assert_int_eq(harness_sh("cd %s && cp -r far far.saved", root), 0);
    refused("far/checkpoint.safetensors: step 5 (epoch 2, step 9 in it) does not fit the data",
            "--resume far/checkpoint.safetensors");
    expect_unchanged("far", "far.saved");
    /* two training images gone */
    ck_assert_int_eq(harness_sh("cd %s && cp -r shrunk shrunk.saved && for f in $(ls "
                                "d8/*Training_Data/* | head -2); do b=$(basename ${f%%.*}); "
                                "rm $f d8/*Training_GroundTruth/$b*; done", root), 0);
    refused("shrunk/checkpoint.safetensors", "--resume shrunk/checkpoint.safetensors");
    expect_message("the checkpoint does not fit this data");
    expect_unchanged("shrunk", "shrunk.saved");
}
END_TEST

/* train --config RUN/config.json starts a new run with exactly the recorded settings (the same
 * steps, the same config.json); later options override and are recorded; a bad key, a bad type or
 * a bad value is an error naming the key and the file. */
START_TEST(config_reruns_the_recorded_run) {
    setup_once();
    ck_assert_int_eq(train("%s --epochs 1 --out rec --loss dice --aug-dihedral --lr 2e-3 "
                           "--no-shuffle --aug-color 0.1,0.1,0.1,0.01", base), 0);
    ck_assert_int_eq(train("--config rec/config.json --out again"), 0);
    ck_assert_int_eq(harness_sh("cd %s && cmp -s rec/steps.csv again/steps.csv && cmp -s "
                                "rec/config.json again/config.json", root), 0);
    ck_assert_int_eq(train("--config rec/config.json --out other --seed 9"), 0);
    ck_assert_int_eq(harness_sh("cd %s && grep -q '\"seed\": 9' other/config.json && grep -q "
                                "'\"loss\": \"dice\"' other/config.json", root), 0);
    ck_assert_int_ne(harness_sh("cd %s && cmp -s rec/steps.csv other/steps.csv", root), 0);
    ck_assert_int_eq(harness_sh("cd %s && sed 's/\"batch\"/\"batchsize\"/' rec/config.json > "
                                "k.json && sed 's/\"size\": 32/\"size\": \"32\"/' "
                                "rec/config.json > t.json "
                                "&& sed 's/\"dihedral\": true/\"dihedral\": 1/' rec/config.json > "
                                "b.json && sed 's/\"size\": 32/\"size\": 48/' rec/config.json > "
                                "v.json", root), 0);
    refused("k.json: unknown key 'batchsize'", "--config k.json --out bad");
    refused("t.json: key 'size' must be an integer", "--config t.json --out bad");
    refused("b.json: key 'augmentation.dihedral' must be true or false",
            "--config b.json --out bad");
    refused("v.json: key 'size' must be a multiple of 32", "--config v.json --out bad");
    ck_assert_int_ne(harness_sh("test -e %s/bad", root), 0);
    ck_assert_int_ne(train("--config rec/config.json --resume rec/checkpoint.safetensors"), 0);
}
END_TEST

/* The loader's threads change nothing: --recipe best (augmentation on) with 1, 2 and 4 loader
 * threads and deeper prefetch gives byte-identical steps.csv and weights; a run stopped by
 * --max-steps with batches in flight (4 threads, prefetch 3) and resumed without loader threads
 * (a changeable option) is the uninterrupted run. Its metrics.csv made as by an oclseg before the
 * data_wait_s column, the resumed epochs keep that file's 11 columns (a 12th field under an
 * 11-column header would shift every column for CSV readers). */
START_TEST(loader_threads_give_the_same_run) {
    setup_once();
    const char *best = "--recipe best --epochs 2";
    ck_assert_int_eq(train("%s %s --out lt1 --loader-threads 1", base, best), 0);
    ck_assert_int_eq(train("%s %s --out lt2 --loader-threads 2", base, best), 0);
    ck_assert_int_eq(train("%s %s --out lt4 --loader-threads 4 --prefetch 5", base, best), 0);
    ck_assert_int_eq(train("%s %s --out ltstop --loader-threads 4 --prefetch 3 --max-steps 2",
                           base, best), 0);
    ck_assert_int_eq(harness_sh("cd %s && sed -i 's/,data_wait_s$//' ltstop/metrics.csv", root), 0);
    ck_assert_int_eq(train("--resume ltstop/checkpoint.safetensors --loader-threads 0"), 0);
    ck_assert_int_eq(harness_sh("cd %s && test $(wc -l < ltstop/metrics.csv) = 3 && "
                                "awk -F, 'NF != 11 { exit 1 }' ltstop/metrics.csv", root), 0);
    ck_assert_int_eq(harness_sh("cd %s && head -1 lt1/metrics.csv | grep -q ',seconds,data_wait_s$' "
                                "&& awk -F, 'NF != 12 { exit 1 }' lt1/metrics.csv", root), 0);
    static const char *const runs[] = {"lt2", "lt4", "ltstop"};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(harness_sh("cd %s && cmp -s lt1/steps.csv %s/steps.csv", root, runs[i]) == 0,
                      "steps.csv of lt1 and %s differ", runs[i]);
        ck_assert_msg(harness_sh("cd %s && cmp -s lt1/weights.safetensors %s/weights.safetensors",
                                 root, runs[i]) == 0, "weights of lt1 and %s differ", runs[i]);
    }
    ck_assert_int_eq(harness_sh("grep -q '\"loader_threads\": 4' %s/lt4/config.json", root), 0);
    harness_sh("cd %s && rm -rf lt1 lt2 lt4 ltstop", root); /* ~150 MB each */
}
END_TEST

int main(void) {
    Suite *s = suite_create("runs");
    TCase *tc = tcase_create("runs");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, interrupted_run_equals_uninterrupted);
    tcase_add_test(tc, resume_keeps_best_epoch_and_patience);
    tcase_add_test(tc, resume_that_is_another_run_is_an_error);
    tcase_add_test(tc, checkpoint_past_its_data_is_an_error);
    tcase_add_test(tc, config_reruns_the_recorded_run);
    tcase_add_test(tc, loader_threads_give_the_same_run);
    suite_add_tcase(s, tc);
    int rc = harness_run(s);
    if (root[0] && rc == 0) harness_sh("rm -rf %s", root);
    return rc;
}
