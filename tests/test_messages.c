/* Tests the messages a user acts on: errors without source lines (OCLSEG_DEBUG=1 adds them),
 * one whole line per message from threads, --size naming its range in every command, a cache
 * folder that cannot be written (a warning, the run goes on), a broken kernel named by the file
 * read with its build log, devices --device that matches nothing, synth and --val-fraction 0
 * wording, and kernels that build without compiler warnings on PoCL. */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/env.h"

static char root[64];
static const char *bin;

static void setup_once(void) {
    if (root[0]) return;
    bin = getenv("OCLSEG_BIN");
    ck_assert_msg(bin != NULL, "OCLSEG_BIN is not set (run through meson test)");
    harness_mkdtemp(root, sizeof root, "msg");
}

/* The text of root/name (static buffer, NUL-terminated, at most 64 KiB). */
static const char *slurp(const char *name) {
    static char text[65536];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

#define assert_contains(text, needle)                                                         \
    ck_assert_msg(strstr((text), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (text))
#define assert_lacks(text, needle)                                                            \
    ck_assert_msg(strstr((text), (needle)) == NULL, "unexpected \"%s\" in:\n%s", (needle), (text))

/* Runs `env ENV oclseg ARGS` in root with stdout in root/out.txt and stderr in root/err.txt;
 * returns its exit status. */
static int oclseg(const char *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int oclseg(const char *env, const char *fmt, ...) {
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return harness_sh("cd %s && env %s %s %s > out.txt 2> err.txt", root, env, bin, args);
}

/* An error says what went wrong and names the file; the source file:line and the status name
 * appear only at the debug level. */
START_TEST(errors_carry_source_lines_only_when_debugging) {
    setup_once();
    ck_assert_int_eq(oclseg("", "export --weights missing.safetensors --onnx m.onnx"), 1);
    const char *err = slurp("err.txt");
    assert_contains(err, "oclseg: error: missing.safetensors: cannot open");
    /* export reads the weights' metadata first: the file is named, and nothing is written */
    char onnx[160];
    snprintf(onnx, sizeof onnx, "%s/m.onnx", root);
    ck_assert_int_ne(access(onnx, F_OK), 0);
    assert_lacks(err, ".c:");
    assert_lacks(err, "OCLSEG_ERR_");
    ck_assert_int_eq(oclseg("OCLSEG_DEBUG=1", "export --weights missing.safetensors "
                                "--onnx m.onnx"), 1);
    err = slurp("err.txt");
    assert_contains(err, "src/runtime/util.c:");
}
END_TEST

enum { LOG_THREADS = 8, LOG_LINES = 400 };

static void *log_lines(void *arg) {
    const int t = (int)(size_t)arg;
    for (int i = 0; i < LOG_LINES; i++)
        OCLSEG_ERROR("thread %d message %d: %s", t, i, "a corrupt image, say");
    return NULL;
}

/* Messages printed at once by the data loader's threads stay whole lines. */
START_TEST(messages_from_threads_never_share_a_line) {
    setup_once();
    char path[256];
    snprintf(path, sizeof path, "%s/threads.txt", root);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    pthread_t th[LOG_THREADS];
    for (int t = 0; t < LOG_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, log_lines, (void *)(size_t)t), 0);
    for (int t = 0; t < LOG_THREADS; t++) pthread_join(th[t], NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        int t, i, used = 0;
        ck_assert_msg(sscanf(line, "oclseg: error: thread %d message %d: a corrupt image, say\n%n",
                             &t, &i, &used) == 2 && used == (int)strlen(line),
                      "a broken line: %s", line);
        count++;
    }
    fclose(f);
    ck_assert_int_eq(count, LOG_THREADS * LOG_LINES);
}
END_TEST

/* --size outside the range is refused by every command that takes it, naming the option and
 * the range, before any work (exit status 2). */
START_TEST(size_names_the_option_and_its_range) {
    setup_once();
    static const char *commands[] = {
        "train --data nowhere", "eval --data nowhere --weights w.safetensors",
        "predict --weights w.safetensors x.png", "bench", "tune",
        "export --weights w.safetensors --onnx m.onnx"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        ck_assert_msg(oclseg("", "%s --size 4096000", commands[i]) == 2, "%s: exit status",
                      commands[i]);
        const char *err = slurp("err.txt");
        assert_contains(err, "--size must be a multiple of 32 in [32, 4096] (got '4096000')");
    }
}
END_TEST

/* A cache folder that cannot be created (a path under a regular file: root cannot write there
 * either) is a warning naming it, and the run goes on with a device. */
START_TEST(unwritable_cache_is_a_warning) {
    setup_once();
    ck_assert_int_eq(harness_sh("touch %s/a_file", root), 0);
    char env[256];
    snprintf(env, sizeof env, "XDG_CACHE_HOME=%s/a_file/cache", root);
    ck_assert_int_eq(oclseg(env, "devices"), 0);
    const char *err = slurp("err.txt");
    assert_contains(err, "oclseg: warning: the kernel cache folder");
    assert_contains(err, "a_file/cache is not writable");
    assert_lacks(err, "no OpenCL platform");
    assert_contains(slurp("out.txt"), "[default]");
}
END_TEST

/* A kernel that does not compile is named by the file actually read (its full path) and the
 * build log follows, with that path on the compiler's lines. */
START_TEST(broken_kernel_names_the_file_read) {
    setup_once();
    ck_assert_int_eq(harness_sh("mkdir -p %s/kernels && cp cl/*.cl %s/kernels/ && printf "
                                "'\\n__kernel void broken(void) { undeclared_thing = 1; }\\n' "
                                ">> %s/kernels/conv2d.cl", root, root, root), 0);
    ck_assert_int_ne(oclseg("OCLSEG_CACHE=0 OCLSEG_KERNEL_DIR=kernels",
                            "bench --size 32 --batch 2 --steps 1"), 0);
    const char *err = slurp("err.txt");
    char expected[256];
    snprintf(expected, sizeof expected, "building kernel program %s/kernels/conv2d.cl failed",
             root);
    assert_contains(err, expected);
    assert_contains(err, "build log:");
    snprintf(expected, sizeof expected, "%s/kernels/conv2d.cl:", root);
    assert_contains(err, expected); /* the compiler's own lines name it too */
    assert_contains(err, "undeclared_thing");
}
END_TEST

/* devices --device that matches no device exits non-zero, naming the spec. */
START_TEST(devices_with_an_unknown_device_fails) {
    setup_once();
    ck_assert_int_eq(oclseg("", "devices --device nonsense"), 1);
    assert_contains(slurp("err.txt"), "no OpenCL device matches 'nonsense'");
}
END_TEST

/* synth with nothing to write says so (not that --out is missing). */
START_TEST(synth_without_images_says_why) {
    setup_once();
    ck_assert_int_eq(oclseg("", "synth --out sx --train 0 --test 0"), 2);
    const char *err = slurp("err.txt");
    assert_contains(err, "--train 0 and --test 0");
    assert_lacks(err, "--out DIR is required");
}
END_TEST

/* Without a validation split --patience is an error (it could never stop anything), and the
 * final report does not claim a selection on validation. */
START_TEST(no_validation_split_is_reported_as_such) {
    setup_once();
    ck_assert_int_eq(oclseg("", "train --data nowhere --val-fraction 0 --patience 2"), 2);
    const char *err = slurp("err.txt");
    assert_contains(err, "--patience 2");
    assert_contains(err, "--val-fraction 0");
    ck_assert_int_eq(oclseg("", "synth --out data --train 4 --test 2 --seed 5"), 0);
    ck_assert_int_eq(oclseg("", "train --data data --out run --epochs 1 --batch 2 --size 32 "
                                "--val-fraction 0"), 0);
    const char *out = slurp("out.txt");
    assert_lacks(out, "by validation");
    assert_contains(out, "no validation split");
}
END_TEST

/* The GEMM program compiles on PoCL without the compiler printing anything (it printed "4
 * warnings generated." for gemm_nt's unrolled loops on every first run; the other programs
 * print nothing: checked by hand with the build log). PoCL's own cache is pointed at an empty
 * folder so that it compiles. */
START_TEST(kernels_build_without_warnings_on_pocl) {
    setup_once();
    char cache[128];
    snprintf(cache, sizeof cache, "%s/pocl-cache", root);
    setenv("POCL_CACHE_DIR", cache, 1); /* before the first OpenCL call of this process */
    setenv("OCLSEG_CACHE", "0", 1);
    oclseg_env_reload();
    int pocl = -1;
    for (int i = 0; i < harness_device_count() && pocl < 0; i++)
        if (strstr(harness_ctx(i)->info.platform_name, "Portable")) pocl = i;
    if (pocl < 0) {
        printf("no PoCL device: kernel warning check skipped\n");
    } else {
        char path[256];
        snprintf(path, sizeof path, "%s/build.txt", root);
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        ck_assert_int_ge(fd, 0);
        fflush(stderr);
        int saved = dup(2);
        dup2(fd, 2);
        cl_kernel k; /* gemm_nt as src/ops/gemm.c builds it (the warnings were its) */
        int st = oclseg_kernel_get(harness_ctx(pocl), "gemm", "-DGEMM_VW=16", "gemm_nt", &k);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(fd);
        ck_assert_int_eq(st, OCLSEG_OK);
        ck_assert_str_eq(slurp("build.txt"), "");
    }
    unsetenv("POCL_CACHE_DIR");
    unsetenv("OCLSEG_CACHE");
    oclseg_env_reload();
}
END_TEST

int main(void) {
    Suite *s = suite_create("messages");
    TCase *tc = tcase_create("messages");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kernels_build_without_warnings_on_pocl); /* first: PoCL starts here */
    tcase_add_test(tc, errors_carry_source_lines_only_when_debugging);
    tcase_add_test(tc, messages_from_threads_never_share_a_line);
    tcase_add_test(tc, size_names_the_option_and_its_range);
    tcase_add_test(tc, unwritable_cache_is_a_warning);
    tcase_add_test(tc, broken_kernel_names_the_file_read);
    tcase_add_test(tc, devices_with_an_unknown_device_fails);
    tcase_add_test(tc, synth_without_images_says_why);
    tcase_add_test(tc, no_validation_split_is_reported_as_such);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
