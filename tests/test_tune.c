/* Tests GEMM tuning: tuning-file parsing (valid and malformed), applying a known-good set at context
 * creation (GEMM results still correct), the trial child rejecting crashing and wrong candidates,
 * and a tune run with a tiny budget. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/tuning.h"
#include "ops/gemm.h"
#include "runtime/tune_clblast.h"

static char root[64];

static void setup_once(void) {
    if (root[0]) return;
    snprintf(root, sizeof root, "/tmp/oclseg-tune-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char *device_spec(void) {
    const char *d = getenv("OCLSEG_TEST_DEVICE");
    return d && d[0] ? d : "pocl";
}

#define DIRECT_OK                                                                                 \
    "{\"KWID\":2,\"MDIMAD\":8,\"MDIMCD\":8,\"NDIMBD\":8,\"NDIMCD\":8,\"PADA\":1,\"PADB\":1,"     \
    "\"VWMD\":4,\"VWND\":4,\"WGD\":32}"
/* Another valid direct set, for devices whose defaults are DIRECT_OK (Intel CPUs on PoCL) */
#define DIRECT_ALT                                                                                \
    "{\"KWID\":2,\"MDIMAD\":8,\"MDIMCD\":8,\"NDIMBD\":8,\"NDIMCD\":8,\"PADA\":1,\"PADB\":1,"     \
    "\"VWMD\":2,\"VWND\":2,\"WGD\":16}"

/* Whether every parameter named in `want` has the same value in `got`. */
static int same_params(const oclseg_clblast_params *got, const oclseg_clblast_params *want) {
    for (int i = 0; i < want->count; i++) {
        int found = 0;
        for (int j = 0; j < got->count; j++)
            if (strcmp(got->names[j], want->names[i]) == 0) {
                found = 1;
                if (got->values[j] != want->values[i]) return 0;
            }
        if (!found) return 0;
    }
    return 1;
}

static int parse(const char *text, int params_only, oclseg_tuning *t, char *err) {
    return oclseg_tuning_parse(text, strlen(text), params_only, t, err, 256);
}

START_TEST(parse_valid_and_malformed) {
    oclseg_tuning t;
    char err[256];
    /* a whole file, formatted and parsed back */
    ck_assert_int_eq(parse("{\"XgemmDirect\": " DIRECT_OK ", \"GemmRoutine\": "
                           "{\"XGEMM_MIN_INDIRECT_SIZE\": 0}}", 1, &t, err), OCLSEG_OK);
    ck_assert(t.has[1] && t.has[2] && !t.has[0]);
    ck_assert_int_eq(t.params[1].count, 10);
    snprintf(t.device, sizeof t.device, "dev \"x\"");
    snprintf(t.driver, sizeof t.driver, "1.0");
    snprintf(t.platform_version, sizeof t.platform_version, "OpenCL 3.0");
    snprintf(t.clblast, sizeof t.clblast, "1.5.3");
    t.baseline_ms = 10, t.tuned_ms = 8;
    char *text = oclseg_tuning_format(&t, 0);
    ck_assert_ptr_nonnull(text);
    oclseg_tuning u;
    ck_assert_int_eq(parse(text, 0, &u, err), OCLSEG_OK);
    free(text);
    ck_assert_str_eq(u.device, "dev \"x\"");
    ck_assert(u.has[1] && u.has[2] && !u.has[0] && u.tuned_ms == 8);
    for (int i = 0; i < u.params[1].count; i++)
        if (strcmp(u.params[1].names[i], "WGD") == 0) ck_assert_uint_eq(u.params[1].values[i], 32);

    /* malformed: each names what is wrong */
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"{\"XgemmDirect\": ", "not JSON"},
        {"[1, 2]", "top level"},
        {"{\"Xgemv\": {}}", "\"Xgemv\""},
        {"{\"XgemmDirect\": 5}", "not an object"},
        {"{\"GemmRoutine\": {}}", "XGEMM_MIN_INDIRECT_SIZE\" is missing"},
        {"{\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": 1, \"FOO\": 2}}", "\"FOO\""},
        {"{\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": \"64\"}}", "not an integer"},
        {"{\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": -1}}", "out of range"},
        {"{\"XgemmDirect\": {\"KWID\":2,\"MDIMAD\":8,\"MDIMCD\":8,\"NDIMBD\":8,\"NDIMCD\":8,"
         "\"PADA\":1,\"PADB\":1,\"VWMD\":4,\"VWND\":4,\"WGD\":0}}", "\"WGD\" must be >= 1"},
        {"{\"XgemmDirect\": {\"KWID\":2,\"MDIMAD\":8,\"MDIMCD\":8,\"NDIMBD\":8,\"NDIMCD\":8,"
         "\"PADA\":2,\"PADB\":1,\"VWMD\":4,\"VWND\":4,\"WGD\":32}}", "\"PADA\" = 2 must be 0 or 1"},
        {"{\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": 1, \"XGEMM_MIN_INDIRECT_SIZE\": 2}}",
         "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(parse(bad[i].text, 1, &t, err), OCLSEG_ERR_FORMAT);
        ck_assert_msg(strstr(err, bad[i].expect), "case %zu: '%s' lacks '%s'", i, err, bad[i].expect);
    }
    /* whole files: wrong format tag, missing key field, truncated text */
    ck_assert_int_eq(parse("{\"format\": \"x\", \"parameters\": {}}", 0, &t, err), OCLSEG_ERR_FORMAT);
    ck_assert(strstr(err, "\"format\""));
    ck_assert_int_eq(parse("{\"format\": \"oclseg-gemm-tuning-1\", \"device\": \"d\", \"driver\": "
                           "\"1\", \"clblast\": \"1.5.3\", \"parameters\": {}}", 0, &t, err),
                     OCLSEG_ERR_FORMAT);
    ck_assert(strstr(err, "\"platform_version\""));
    ck_assert_int_eq(oclseg_tuning_parse("{\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": 12}}",
                                         20, 1, &t, err, sizeof err), OCLSEG_ERR_FORMAT);
}
END_TEST

/* C = A * B (37x41x29: the direct kernel; 100x90x80 with the threshold at 64: the indirect one),
 * against a double reference. Tolerance: |err| <= k * 2^-24 * sum|a||b| bounds float32
 * accumulation in any order; with |a|,|b| <= 1 that is below 80 * 6e-8 * 80 = 4e-4; 1e-4
 * relative + 1e-4 absolute is ample and far below an error from a wrong tile (O(1)). */
static void check_gemm(oclseg_ctx *ctx, size_t m, size_t n, size_t k) {
    float *a = malloc(m * k * 4), *b = malloc(k * n * 4), *c = malloc(m * n * 4);
    double *ref = malloc(m * n * sizeof *ref);
    harness_fill_uniform(a, m * k, -1, 1, 7);
    harness_fill_uniform(b, k * n, -1, 1, 8);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t l = 0; l < k; l++) s += (double)a[i * k + l] * b[l * n + j];
            ref[i * n + j] = s;
        }
    hbuf da = hb_from(ctx, a, m * k), db = hb_from(ctx, b, k * n), dc = hb_create(ctx, m * n);
    hb_poison(&dc);
    ck_assert_int_eq(gemm_single(ctx, (gemm_dims){0, 0, m, n, k}, gemm_mat(da.buf, da.lead, k, 0),
                                 gemm_mat(db.buf, db.lead, n, 0), 0.0f,
                                 gemm_mat(dc.buf, dc.lead, n, 0)), OCLSEG_OK);
    hb_download(&dc, c, "tuned gemm");
    harness_compare("tuned gemm", c, ref, m * n, 1e-4, 1e-4);
    hb_free(&da), hb_free(&db), hb_free(&dc);
    free(a), free(b), free(c), free(ref);
}

static oclseg_ctx *make_ctx(void) {
    oclseg_ctx *ctx = NULL;
    oclseg_ctx_options o = {.device_spec = device_spec()};
    ck_assert_int_eq(oclseg_ctx_create(&ctx, &o), OCLSEG_OK);
    return ctx;
}

/* Order matters (CLBlast's overrides are process-wide): defaults first, the good file last. */
START_TEST(context_applies_the_device_file) {
    setup_once();
    char dir[128], path[4096], desc[4200], text[2048];
    snprintf(dir, sizeof dir, "%s/tuning", root);
    mkdir(dir, 0755);
    setenv("OCLSEG_TUNING_DIR", dir, 1);
    unsetenv("OCLSEG_NO_TUNING");
    oclseg_device_info dev;
    ck_assert_int_eq(oclseg_device_choose(device_spec(), &dev), OCLSEG_OK);
    oclseg_tuning_path(&dev, path, sizeof path);
    ck_assert(strncmp(path, dir, strlen(dir)) == 0);

    /* no file: silently the defaults */
    oclseg_ctx *ctx = make_ctx();
    ck_assert_int_eq(oclseg_tuning_status(ctx, desc, sizeof desc), 0);
    ck_assert(strstr(desc, "defaults"));
    oclseg_clblast_params defaults;
    ck_assert_int_eq(oclseg_clblast_retrieve(ctx->info.device, "Xgemm", &defaults), 0);
    ck_assert_int_eq(defaults.count, 16);
    oclseg_clblast_params direct_defaults; /* device-dependent: compared whole, below */
    ck_assert_int_eq(oclseg_clblast_retrieve(ctx->info.device, "XgemmDirect", &direct_defaults), 0);
    oclseg_ctx_free(ctx);

    /* a malformed file: a warning, then the defaults */
    write_text(path, "{\"format\": \"oclseg-gemm-tuning-1\", \"parameters\": {\"Xgemm\": {}}}");
    ctx = make_ctx();
    ck_assert_int_eq(oclseg_tuning_status(ctx, desc, sizeof desc), 0);
    ck_assert(strstr(desc, "ignored"));
    oclseg_ctx_free(ctx);

    /* a known-good set (CLBlast's own Xgemm defaults, a validated direct set that differs from
     * this device's defaults, threshold 64) */
    oclseg_tuning t;
    memset(&t, 0, sizeof t);
    oclseg_tuning_key(&dev, &t);
    t.params[0] = defaults;
    t.has[0] = 1;
    char err[256];
    oclseg_tuning p;
    ck_assert_int_eq(parse("{\"XgemmDirect\": " DIRECT_OK ", \"GemmRoutine\": "
                           "{\"XGEMM_MIN_INDIRECT_SIZE\": 64}}", 1, &p, err), OCLSEG_OK);
    if (same_params(&p.params[1], &direct_defaults))
        ck_assert_int_eq(parse("{\"XgemmDirect\": " DIRECT_ALT ", \"GemmRoutine\": "
                               "{\"XGEMM_MIN_INDIRECT_SIZE\": 64}}", 1, &p, err), OCLSEG_OK);
    t.params[1] = p.params[1], t.params[2] = p.params[2];
    t.has[1] = t.has[2] = 1;
    char *s = oclseg_tuning_format(&t, 0);
    snprintf(text, sizeof text, "%s", s);
    free(s);
    write_text(path, text);

    setenv("OCLSEG_NO_TUNING", "1", 1); /* disabled: the file is not applied */
    ctx = make_ctx();
    ck_assert_int_eq(oclseg_tuning_status(ctx, desc, sizeof desc), 0);
    oclseg_clblast_params cur;
    ck_assert_int_eq(oclseg_clblast_retrieve(ctx->info.device, "XgemmDirect", &cur), 0);
    ck_assert(same_params(&cur, &direct_defaults));
    /* the file's direct set must differ from this device's defaults, or the checks below could
     * not tell an applied file from an ignored one */
    ck_assert(!same_params(&p.params[1], &direct_defaults));
    oclseg_ctx_free(ctx);
    unsetenv("OCLSEG_NO_TUNING");

    ctx = make_ctx();
    ck_assert_int_eq(oclseg_tuning_status(ctx, desc, sizeof desc), 1);
    ck_assert_msg(strstr(desc, path), "'%s' does not name %s", desc, path);
    ck_assert_int_eq(oclseg_clblast_retrieve(ctx->info.device, "XgemmDirect", &cur), 0);
    ck_assert(same_params(&cur, &p.params[1]));
    check_gemm(ctx, 37, 41, 29);
    check_gemm(ctx, 100, 90, 80);
    oclseg_ctx_free(ctx);
    unlink(path);
}
END_TEST

static const char *bin(void) {
    const char *b = getenv("OCLSEG_BIN");
    ck_assert_msg(b != NULL, "OCLSEG_BIN is not set (run through meson test)");
    return b;
}

START_TEST(trial_child_rejects_bad_candidates) {
    setup_once();
    char shapes[128], good[128], empty[128], result[128];
    snprintf(shapes, sizeof shapes, "%s/shapes.json", root);
    snprintf(good, sizeof good, "%s/good.json", root);
    snprintf(empty, sizeof empty, "%s/empty.json", root);
    snprintf(result, sizeof result, "%s/result.json", root);
    write_text(shapes, "{\"shapes\": [{\"trans_a\":0,\"trans_b\":0,\"batched\":1,\"batch\":3,"
                       "\"m\":37,\"n\":41,\"k\":29,\"beta\":0,\"calls\":2},{\"trans_a\":1,"
                       "\"trans_b\":1,\"batched\":0,\"batch\":1,\"m\":50,\"n\":20,\"k\":70,"
                       "\"beta\":1,\"calls\":1}]}");
    write_text(good, "{\"XgemmDirect\": " DIRECT_OK "}");
    write_text(empty, "{}");
    const char *b = bin(), *d = device_spec();
    /* a valid candidate passes, with a time */
    ck_assert_int_eq(harness_sh("OCLSEG_NO_TUNING=1 %s tune --device %s --trial %s --shapes %s --result %s "
                        "--repeats 1", b, d, good, shapes, result), 0);
    ck_assert_int_eq(harness_sh("grep -q '\"ok\": true' %s && grep -q weighted_ms %s", result, result), 0);
    /* one that crashes the child (abort, as PoCL's SIGSEGV did): non-zero, no result */
    unlink(result);
    ck_assert_int_ne(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_ABORT=1 %s tune --device %s --trial "
                        "%s --shapes %s --result %s 2> /dev/null", b, d, good, shapes, result), 0);
    ck_assert_int_ne(access(result, F_OK), 0);
    /* one that computes a wrong element: rejected with the reason */
    ck_assert_int_ne(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_CORRUPT=1 %s tune --device %s --trial "
                        "%s --shapes %s --result %s", b, d, good, shapes, result), 0);
    ck_assert_int_eq(harness_sh("grep -q '\"ok\": false' %s && grep -q 'differs\\|exact value' %s", result,
                        result), 0);
    /* the hooks leave the baseline (empty candidate) alone */
    ck_assert_int_eq(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_CORRUPT=1 %s tune --device %s --trial "
                        "%s --shapes %s --result %s", b, d, empty, shapes, result), 0);
}
END_TEST

/* The whole command with a tiny budget: records, times the defaults, tries one hand-picked set
 * that crashes (hook) and is rejected, keeps the defaults and writes no file. */
START_TEST(tune_with_tiny_budget_completes) {
    setup_once();
    char dir[128], out[128];
    snprintf(dir, sizeof dir, "%s/tuning2", root);
    snprintf(out, sizeof out, "%s/tune.out", root);
    ck_assert_int_eq(harness_sh("OCLSEG_TUNING_DIR=%s OCLSEG_TUNE_TRIAL_ABORT=1 %s tune --device %s "
                        "--batch 2 --size 32 --budget 1 --repeats 1 > %s 2>&1", dir, bin(),
                        device_spec(), out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'recorded [0-9]* GEMM shapes' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'REJECTED: crashed (signal 6' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q \"defaults stay\" %s", out), 0);
    ck_assert_int_ne(harness_sh("ls %s/*.json > /dev/null 2>&1", dir), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, parse_valid_and_malformed);
    tcase_add_test(tc, context_applies_the_device_file);
    tcase_add_test(tc, trial_child_rejects_bad_candidates);
    tcase_add_test(tc, tune_with_tiny_budget_completes);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
