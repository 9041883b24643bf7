/* Tests GEMM tuning: tuning-file parsing (valid and malformed, formats 1 and 2), applying a
 * known-good set at context creation (GEMM results still correct), the dispatch following the
 * file's backend per shape, the trial children rejecting crashing and wrong candidates and wrong
 * own-kernel shapes, and a tune run with a tiny budget that writes the backend per shape. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/env.h"
#include "oclseg/ops.h"
#include "oclseg/safetensors.h"
#include "oclseg/tuning.h"
#include "oclseg/util.h"
#include "ops/gemm.h"
#include "runtime/tune_clblast.h"

static char root[64];

static void setup_once(void) {
    if (root[0]) return;
    harness_mkdtemp(root, sizeof root, "tune-test");
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

#define FILE_HEAD(format)                                                                         \
    "{\"format\": \"" format "\", \"device\": \"d\", \"driver\": \"1\", \"platform_version\": \"p\", "  \
    "\"clblast\": \"1.5.3\", \"parameters\": {}"
#define ENTRY(extra) "{\"trans_a\":0,\"trans_b\":1,\"batched\":1,\"batch\":16,\"m\":64,\"n\":16,"     \
                     "\"k\":1024,\"beta\":0" extra "}"

/* Format 2: the backend per shape formats and parses back; format 1 files still parse; every
 * malformed backend entry is named by index and key. */
START_TEST(parse_backends_v2_and_v1) {
    oclseg_tuning *t = calloc(1, sizeof *t), *u = calloc(1, sizeof *u);
    char err[256];
    snprintf(t->device, sizeof t->device, "dev");
    snprintf(t->clblast, sizeof t->clblast, "1.5.3");
    const oclseg_gemm_shape shapes[3] = {{0, 1, 1, 16, 64, 16, 1024, 0.0f, 0, 1},
                                         {1, 0, 1, 16, 4096, 16, 1280, 0.0f, 0, 0},
                                         {0, 1, 0, 1, 32, 27, 4096, 1.0f, 0, 0}};
    for (int i = 0; i < 3; i++) {
        t->backends[i].shape = shapes[i];
        t->backends[i].backend = i == 1 ? OCLSEG_GEMM_CLBLAST : OCLSEG_GEMM_OWN;
    }
    t->nbackends = 3;
    char *text = oclseg_tuning_format(t, 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "\"oclseg-gemm-tuning-2\""), "%s", text);
    ck_assert_int_eq(parse(text, 0, u, err), OCLSEG_OK);
    free(text);
    ck_assert_int_eq(u->nbackends, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(oclseg_gemm_shape_same(&u->backends[i].shape, &shapes[i]));
        ck_assert_int_eq(u->backends[i].backend, t->backends[i].backend);
    }
    ck_assert(!oclseg_gemm_shape_same(&shapes[0], &shapes[1]));

    /* format 1 (before per-shape backends): parameters only, no backends */
    ck_assert_int_eq(parse(FILE_HEAD("oclseg-gemm-tuning-1") "}", 0, u, err), OCLSEG_OK);
    ck_assert_int_eq(u->nbackends, 0);
    /* format 2 without backends, with a valid entry ("sum" may be left out) */
    ck_assert_int_eq(parse(FILE_HEAD("oclseg-gemm-tuning-2") "}", 0, u, err), OCLSEG_OK);
    ck_assert_int_eq(parse(FILE_HEAD("oclseg-gemm-tuning-2") ", \"backends\": ["
                           ENTRY(",\"backend\":\"clblast\"") "]}", 0, u, err), OCLSEG_OK);
    ck_assert_int_eq(u->nbackends, 1);
    ck_assert_int_eq(u->backends[0].backend, OCLSEG_GEMM_CLBLAST);
    ck_assert_int_eq(u->backends[0].shape.sum, 0);

    static const struct {
        const char *entries, *expect;
    } bad[] = {
        {"5", "\"backends\"[0] is not an object"},
        {ENTRY(",\"backend\":\"gpu\""), "\"backends\"[0].\"backend\" is missing or not"},
        {ENTRY(""), "\"backends\"[0].\"backend\" is missing"},
        {ENTRY(",\"backend\":\"own\",\"bakend\":1"), "\"backends\"[0].\"bakend\": not a shape field"},
        {"{\"trans_a\":2,\"trans_b\":0,\"batched\":0,\"batch\":1,\"m\":1,\"n\":1,\"k\":1,\"beta\":0,"
         "\"backend\":\"own\"}", "\"backends\"[0].\"trans_a\" = 2 is out of range"},
        {"{\"trans_a\":0,\"trans_b\":0,\"batched\":0,\"batch\":1,\"m\":0,\"n\":1,\"k\":1,\"beta\":0,"
         "\"backend\":\"own\"}", "\"backends\"[0].\"m\" = 0 is out of range"},
        {"{\"trans_a\":0,\"trans_b\":0,\"batched\":0,\"batch\":1,\"n\":1,\"k\":1,\"beta\":0,"
         "\"backend\":\"own\"}", "\"backends\"[0].\"m\" is missing"},
        {"{\"trans_a\":0,\"trans_b\":0,\"batched\":0,\"batch\":1,\"m\":1,\"n\":1,\"k\":1,\"beta\":0.5,"
         "\"backend\":\"own\"}", "\"backends\"[0].\"beta\" is missing or not 0 or 1"},
        {ENTRY(",\"backend\":\"own\"") "," ENTRY(",\"backend\":\"clblast\""),
         "\"backends\"[1]: the same shape as [0]"},
    };
    char file[2048];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(file, sizeof file, FILE_HEAD("oclseg-gemm-tuning-2") ", \"backends\": [%s]}",
                 bad[i].entries);
        ck_assert_int_eq(parse(file, 0, u, err), OCLSEG_ERR_FORMAT);
        ck_assert_msg(strstr(err, bad[i].expect), "case %zu: '%s' lacks '%s'", i, err,
                      bad[i].expect);
    }
    ck_assert_int_eq(parse(FILE_HEAD("oclseg-gemm-tuning-2") ", \"backends\": {}}", 0, u, err),
                     OCLSEG_ERR_FORMAT);
    ck_assert(strstr(err, "\"backends\" is not an array"));
    ck_assert_int_eq(parse(FILE_HEAD("oclseg-gemm-tuning-3") "}", 0, u, err), OCLSEG_ERR_FORMAT);
    ck_assert(strstr(err, "\"format\""));
    free(t), free(u);
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

/* Tuning files from dir, the device's switches unset (re-read: they are read once); the test
 * device and its tuning file's path. */
static void use_tuning_dir(const char *dir, oclseg_device_info *dev, char *path, size_t n) {
    setenv("OCLSEG_TUNING_DIR", dir, 1);
    unsetenv("OCLSEG_NO_TUNING");
    unsetenv("OCLSEG_GEMM");
    oclseg_env_reload();
    ck_assert_int_eq(oclseg_device_choose(device_spec(), dev), OCLSEG_OK);
    oclseg_tuning_path(dev, path, n);
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
    oclseg_device_info dev;
    use_tuning_dir(dir, &dev, path, sizeof path);
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
    oclseg_env_reload(); /* the switches are read once */
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
    oclseg_env_reload(); /* the switches are read once */

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

/* Runs one GEMM of shape s on operands of ones (every element of C must then be k, or k * batch
 * for a sum: small integers, exact on any backend) and returns how many CLBlast calls it made;
 * a call without CLBlast must have launched own kernels. */
static long clblast_calls_for(oclseg_ctx *ctx, const oclseg_gemm_shape *s) {
    const size_t na = (size_t)s->batch * s->m * s->k, nb = (size_t)s->batch * s->k * s->n;
    const size_t nc = (size_t)(s->sum ? 1 : s->batch) * s->m * s->n;
    float *ones = malloc((na > nb ? na : nb) * sizeof *ones), *c = malloc(nc * sizeof *c);
    for (size_t i = 0; i < (na > nb ? na : nb); i++) ones[i] = 1.0f;
    hbuf da = hb_from(ctx, ones, na), db = hb_from(ctx, ones, nb), dc = hb_create(ctx, nc);
    hb_poison(&dc);
    const gemm_dims d = {s->trans_a, s->trans_b, s->m, s->n, s->k};
    const gemm_operand a = gemm_mat(da.buf, da.lead, s->trans_a ? s->m : s->k, s->m * s->k);
    const gemm_operand b = gemm_mat(db.buf, db.lead, s->trans_b ? s->k : s->n, s->k * s->n);
    const gemm_operand cm = gemm_mat(dc.buf, dc.lead, s->n, s->m * s->n);
    const long calls = ctx->enqueued.clblast_calls, kernels = ctx->enqueued.kernels;
    int st = s->sum       ? gemm_batched_sum(ctx, d, a, b, dc.buf, dc.lead, s->batch)
             : s->batched ? gemm_batched(ctx, d, a, b, 0.0f, cm, s->batch)
                          : gemm_single(ctx, d, a, b, 0.0f, cm);
    ck_assert_int_eq(st, OCLSEG_OK);
    hb_download(&dc, c, "dispatch gemm");
    const float want = (float)(s->k * (s->sum ? (size_t)s->batch : 1));
    for (size_t i = 0; i < nc; i++) ck_assert_float_eq(c[i], want);
    const long made = ctx->enqueued.clblast_calls - calls;
    if (made == 0) ck_assert_int_gt(ctx->enqueued.kernels - kernels, 0);
    hb_free(&da), hb_free(&db), hb_free(&dc);
    free(ones), free(c);
    return made;
}

/* Creates a context with stderr going to `log` (the tuning file's warnings). */
static oclseg_ctx *make_ctx_logged(const char *log) {
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    oclseg_ctx *ctx = make_ctx();
    fflush(stderr);
    dup2(saved, 2);
    close(fd), close(saved);
    return ctx;
}

/* The tuning file's backend per shape decides each GEMM call; an explicit backend
 * (ctx->gemm_backend, OCLSEG_GEMM) wins over it, OCLSEG_NO_TUNING=1 ignores it, a shape it does
 * not name takes the device default, and a malformed entry is a warning naming file and key. */
START_TEST(dispatch_follows_the_file) {
    setup_once();
    char dir[128], path[4096], log[160];
    snprintf(dir, sizeof dir, "%s/tuning-dispatch", root);
    snprintf(log, sizeof log, "%s/dispatch.log", root);
    mkdir(dir, 0755);
    oclseg_device_info dev;
    use_tuning_dir(dir, &dev, path, sizeof path);
    /* to CLBlast: a single GEMM, a batch, a batch sum (nt: the own kernels' summing gemm_nt);
     * to the own kernels: another single GEMM; not named: a third one */
    const oclseg_gemm_shape to_cl = {0, 0, 0, 1, 37, 41, 29, 0.0f, 0, 0},
                            batch_cl = {0, 0, 1, 3, 17, 19, 23, 0.0f, 0, 0},
                            sum_cl = {0, 1, 1, 3, 24, 20, 70, 0.0f, 0, 1},
                            to_own = {0, 0, 0, 1, 40, 30, 20, 0.0f, 0, 0},
                            unnamed = {0, 0, 0, 1, 33, 35, 31, 0.0f, 0, 0};
    oclseg_tuning *t = calloc(1, sizeof *t);
    oclseg_tuning_key(&dev, t);
    const oclseg_gemm_shape *named[] = {&to_cl, &batch_cl, &sum_cl, &to_own};
    for (int i = 0; i < 4; i++) {
        t->backends[i].shape = *named[i];
        t->backends[i].backend = i < 3 ? OCLSEG_GEMM_CLBLAST : OCLSEG_GEMM_OWN;
    }
    t->nbackends = 4;
    char *text = oclseg_tuning_format(t, 0);
    write_text(path, text);
    free(text);

    oclseg_ctx *ctx = make_ctx();
    const int def_own = oclseg_gemm_device_default_own(ctx);
    int own = -1, cl = -1;
    ck_assert_int_eq(oclseg_tuning_backend_counts(ctx, &own, &cl), 4);
    ck_assert(own == 1 && cl == 3);
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl), 1);
    ck_assert_int_ge(clblast_calls_for(ctx, &batch_cl), 1);
    ck_assert_int_ge(clblast_calls_for(ctx, &sum_cl), 1);
    ck_assert_int_eq(clblast_calls_for(ctx, &to_own), 0);
    ck_assert_int_eq(clblast_calls_for(ctx, &unnamed) == 0, def_own);
    ctx->gemm_backend = OCLSEG_GEMM_OWN; /* explicit choices win */
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl), 0);
    ctx->gemm_backend = OCLSEG_GEMM_CLBLAST;
    ck_assert_int_eq(clblast_calls_for(ctx, &to_own), 1);
    ctx->gemm_backend = OCLSEG_GEMM_AUTO;
    setenv("OCLSEG_GEMM", "own", 1);
    oclseg_env_reload();
    /* a context keeps the switches it was created with; the next one reads the new value */
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl), 1);
    oclseg_ctx_free(ctx);
    ctx = make_ctx();
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl), 0);
    oclseg_ctx_free(ctx);
    setenv("OCLSEG_GEMM", "clblast", 1);
    oclseg_env_reload();
    ctx = make_ctx();
    ck_assert_int_eq(clblast_calls_for(ctx, &to_own), 1);
    unsetenv("OCLSEG_GEMM");
    oclseg_env_reload();
    oclseg_ctx_free(ctx);

    setenv("OCLSEG_NO_TUNING", "1", 1); /* the file is ignored: the device default everywhere */
    oclseg_env_reload();
    ctx = make_ctx();
    ck_assert_int_eq(oclseg_tuning_backend_counts(ctx, &own, &cl), 0);
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl) == 0, def_own);
    ck_assert_int_eq(clblast_calls_for(ctx, &to_own) == 0, def_own);
    oclseg_ctx_free(ctx);
    unsetenv("OCLSEG_NO_TUNING");
    oclseg_env_reload();

    /* a malformed entry: a warning naming the file and the key, then the defaults */
    t->backends[1].shape.beta = 0.5f;
    text = oclseg_tuning_format(t, 0);
    write_text(path, text);
    free(text);
    ctx = make_ctx_logged(log);
    ck_assert_int_eq(oclseg_tuning_backend_counts(ctx, &own, &cl), 0);
    ck_assert_int_eq(clblast_calls_for(ctx, &to_cl) == 0, def_own);
    oclseg_ctx_free(ctx);
    ck_assert_int_eq(harness_sh("grep -q 'warning: ignoring GEMM tuning file %s: \"backends\"\\[1\\]"
                                ".\"beta\"' %s", path, log), 0);
    unlink(path);
    free(t);
}
END_TEST

static const char *bin(void) {
    const char *b = getenv("OCLSEG_BIN");
    ck_assert_msg(b != NULL, "OCLSEG_BIN is not set (run through meson test)");
    return b;
}

/* Shapes files' entries: a batch, a single GEMM with both operands transposed (CLBlast only), a
 * batch sum. */
#define SHAPE_NN_BATCH                                                                            \
    "{\"trans_a\":0,\"trans_b\":0,\"batched\":1,\"batch\":3,\"m\":37,\"n\":41,\"k\":29,"           \
    "\"beta\":0,\"calls\":2}"
#define SHAPE_TT_SINGLE                                                                           \
    "{\"trans_a\":1,\"trans_b\":1,\"batched\":0,\"batch\":1,\"m\":50,\"n\":20,\"k\":70,"           \
    "\"beta\":1,\"calls\":1}"
#define SHAPE_NT_SUM                                                                              \
    "{\"trans_a\":0,\"trans_b\":1,\"batched\":1,\"sum\":1,\"batch\":4,\"m\":24,\"n\":20,"         \
    "\"k\":70,\"beta\":0,\"calls\":1}"

START_TEST(trial_child_rejects_bad_candidates) {
    setup_once();
    char shapes[128], good[128], empty[128], result[128];
    snprintf(shapes, sizeof shapes, "%s/shapes.json", root);
    snprintf(good, sizeof good, "%s/good.json", root);
    snprintf(empty, sizeof empty, "%s/empty.json", root);
    snprintf(result, sizeof result, "%s/result.json", root);
    write_text(shapes, "{\"shapes\": [" SHAPE_NN_BATCH "," SHAPE_TT_SINGLE "]}");
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

/* A shape's own-kernel result in the --own child: ms, or null with the reason. */
static double own_result(const char *path, int shape, char *why, size_t whyn) {
    json_error_t e;
    json_t *r = json_load_file(path, 0, &e);
    ck_assert_msg(r != NULL, "%s: %s", path, e.text);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_t *ms = json_array_get(json_object_get(r, "per_shape_fastest_ms"), (size_t)shape);
    const char *reason =
        json_string_value(json_array_get(json_object_get(r, "per_shape_reason"), (size_t)shape));
    snprintf(why, whyn, "%s", reason ? reason : "");
    double v = json_is_number(ms) ? json_number_value(ms) : -1;
    json_decref(r);
    return v;
}

/* The own kernels' child: every shape validated against CLBlast's defaults on its own; a wrong
 * element (hook) or a shape the own kernels do not support (trans_a with trans_b) rejects that
 * shape only; a crash (hook) is a failed child. */
START_TEST(own_trial_rejects_wrong_shapes) {
    setup_once();
    char shapes[128], result[128], why[512];
    snprintf(shapes, sizeof shapes, "%s/own-shapes.json", root);
    snprintf(result, sizeof result, "%s/own-result.json", root);
    write_text(shapes, "{\"shapes\": [" SHAPE_NN_BATCH "," SHAPE_TT_SINGLE "," SHAPE_NT_SUM "]}");
    const char *b = bin(), *d = device_spec();
    ck_assert_int_eq(harness_sh("OCLSEG_NO_TUNING=1 %s tune --device %s --own --shapes %s --result %s "
                                "--repeats 2", b, d, shapes, result), 0);
    ck_assert(own_result(result, 0, why, sizeof why) > 0);
    ck_assert(own_result(result, 2, why, sizeof why) > 0); /* the batch sum */
    ck_assert(own_result(result, 1, why, sizeof why) < 0);
    ck_assert_msg(strstr(why, "shape tt single"), "%s", why);
    /* the hook: shape 2's own result gets a wrong element */
    ck_assert_int_eq(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_CORRUPT=own:2 %s tune --device %s "
                                "--own --shapes %s --result %s --repeats 1", b, d, shapes, result), 0);
    ck_assert(own_result(result, 0, why, sizeof why) > 0);
    ck_assert(own_result(result, 2, why, sizeof why) < 0);
    ck_assert_msg(strstr(why, "exact value") || strstr(why, "differs"), "%s", why);
    /* the candidates' hook leaves the own kernels alone, and the reverse */
    ck_assert_int_eq(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_CORRUPT=1 %s tune --device %s "
                                "--own --shapes %s --result %s --repeats 1", b, d, shapes, result), 0);
    ck_assert(own_result(result, 2, why, sizeof why) > 0);
    unlink(result);
    ck_assert_int_ne(harness_sh("OCLSEG_NO_TUNING=1 OCLSEG_TUNE_TRIAL_ABORT=own %s tune --device %s --own "
                                "--shapes %s --result %s --repeats 1 2> /dev/null", b, d, shapes,
                                result), 0);
    ck_assert_int_ne(access(result, F_OK), 0);
}
END_TEST

/* The whole command with a tiny budget: records, times the defaults, tries one hand-picked set
 * that crashes (hook) and is rejected, keeps the defaults; then the backend per shape, where the
 * own kernels get recorded shape 0 wrong (hook): that shape goes to CLBlast, which the file says
 * although no parameter set won, and a context on the device follows it; the work folder goes. */
START_TEST(tune_with_tiny_budget_completes) {
    setup_once();
    char dir[128], out[128], path[4096];
    snprintf(dir, sizeof dir, "%s/tuning2", root);
    snprintf(out, sizeof out, "%s/tune.out", root);
    ck_assert_int_eq(harness_sh("OCLSEG_TUNING_DIR=%s OCLSEG_TUNE_TRIAL_ABORT=1 "
                                "OCLSEG_TUNE_TRIAL_CORRUPT=own:0 %s tune --device %s --batch 2 "
                                "--size 32 --budget 1 --repeats 1 > %s 2>&1", dir, bin(),
                                device_spec(), out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'recorded [0-9]* GEMM shapes' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'REJECTED: crashed (signal 6' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q \"defaults stay\" %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'own kernels rejected for shape 0: .*\\(exact value\\|differs\\)' %s",
                                out), 0);
    ck_assert_int_eq(harness_sh("grep -q '^  shape  *calls  *CLBlast  *own  *choice' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'rejected  CLBlast' %s", out), 0);
    ck_assert_int_eq(harness_sh("grep -q 'weighted GEMM time of one step: [0-9.]* ms with the "
                                "device default' %s", out), 0);
    /* the work folder (candidates, results, child logs) is removed at the end */
    ck_assert_int_eq(harness_sh("d=$(grep -o '/tmp/oclseg-tune-[A-Za-z0-9]*' %s | head -1) && "
                                "test -n \"$d\" && test ! -e \"$d\"", out), 0);

    oclseg_device_info dev;
    use_tuning_dir(dir, &dev, path, sizeof path);
    oclseg_ctx *ctx = make_ctx();
    if (!oclseg_gemm_device_default_own(ctx) && access(path, F_OK) != 0) {
        oclseg_ctx_free(ctx);
        return; /* CLBlast by default: shape 0 on CLBlast is no change, so maybe no file */
    }
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(oclseg_read_file(path, 0, &text, &len), OCLSEG_OK);
    oclseg_tuning *t = calloc(1, sizeof *t);
    char err[256];
    ck_assert_int_eq(oclseg_tuning_parse(text, len, 0, t, err, sizeof err), OCLSEG_OK);
    free(text);
    ck_assert(!t->has[0] && !t->has[1] && !t->has[2]); /* no parameter set won */
    ck_assert_int_gt(t->nbackends, 3);
    ck_assert_int_eq(t->backends[0].backend, OCLSEG_GEMM_CLBLAST);
    ck_assert_int_eq(harness_sh("grep -q '^wrote %s' %s", path, out), 0);
    int own, cl;
    ck_assert_int_eq(oclseg_tuning_backend_counts(ctx, &own, &cl), t->nbackends);
    ck_assert_int_ge(clblast_calls_for(ctx, &t->backends[0].shape), 1);
    oclseg_ctx_free(ctx);
    free(t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, parse_valid_and_malformed);
    tcase_add_test(tc, parse_backends_v2_and_v1);
    tcase_add_test(tc, context_applies_the_device_file);
    tcase_add_test(tc, dispatch_follows_the_file);
    tcase_add_test(tc, trial_child_rejects_bad_candidates);
    tcase_add_test(tc, own_trial_rejects_wrong_shapes);
    tcase_add_test(tc, tune_with_tiny_budget_completes);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
