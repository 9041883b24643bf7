/* File safety (issue 21): names never become gnuplot code (a run directory with a quote, a
 * newline and a system() call draws curves.png and runs nothing). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char root[64];
static const char *bin;
static char data[128], run[128];

/* Synthetic data and one cheap run (its weights are exported and predicted with). */
static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    snprintf(root, sizeof root, "/tmp/oclseg-files-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(run, sizeof run, "%s/run O'Brien", root);
    ck_assert_int_eq(harness_sh("%s synth --out %s --train 6 --test 2 > /dev/null", bin, data), 0);
    ck_assert_int_eq(harness_sh("%s train --data %s --out \"%s\" --size 32 --batch 2 --epochs 1 "
                                "--quiet 2> %s/train.err", bin, data, run, root), 0);
}

/* A run directory named with an apostrophe draws its curves (gnuplot once failed on it). */
START_TEST(apostrophe_run_dir_draws_curves) {
    setup_once();
    ck_assert_int_eq(harness_sh("test -s \"%s/curves.png\"", run), 0);
    ck_assert_int_ne(harness_sh("grep -q 'gnuplot failed' %s/train.err", root), 0);
}
END_TEST

/* A run directory whose name closes gnuplot's quotes and calls system() on a new line: nothing
 * runs, and curves.png is drawn in that directory. */
START_TEST(run_dir_name_is_not_gnuplot_code) {
    setup_once();
    char marker[128], out[512];
    snprintf(marker, sizeof marker, "%s/MARKER", root);
    snprintf(out, sizeof out, "%s/r'\"\nsystem(\"touch %s\")\nprint '\"x", root, marker);
    ck_assert_int_eq(setenv("OUT", out, 1), 0); /* to the shell as data, not as words */
    ck_assert_int_eq(harness_sh("%s train --data %s --size 32 --batch 2 --epochs 1 --quiet "
                                "--out \"$OUT\" 2> %s/inject.err", bin, data, root), 0);
    ck_assert_msg(access(marker, F_OK) != 0, "a run directory's name ran as gnuplot code");
    char png[600];
    snprintf(png, sizeof png, "%s/curves.png", out);
    struct stat st;
    ck_assert_msg(stat(png, &st) == 0 && st.st_size > 0, "curves.png not drawn in %s", out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, apostrophe_run_dir_draws_curves);
    tcase_add_test(tc, run_dir_name_is_not_gnuplot_code);
    suite_add_tcase(s, tc);
    int failed = harness_run(s);
    if (!failed) harness_sh("rm -rf %s", root); /* kept for a look when a test failed */
    return failed;
}
