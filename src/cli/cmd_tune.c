/* `oclseg tune`: records the model's GEMM shapes, gets CLBlast parameter candidates (its tuners and
 * hand-picked sets), validates and times each in a child process, and keeps the fastest per device. */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ops/gemm.h"
#include "oclseg/safetensors.h"
#include "oclseg/trainer.h"
#include "oclseg/tuning.h"
#include "runtime/tune_clblast.h"

extern char **environ;

typedef struct tune_options {
    const char *device;
    int batch, size, repeats;
    double budget_s, trial_timeout_s;
    /* hidden child modes */
    const char *record_out, *trial_cand, *shapes, *result, *tuner_kernel;
    size_t tm, tn, tk;
    double fraction;
} tune_options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: oclseg tune [--device D] [--budget SECONDS] [--batch 16] [--size 128]\n"
            "                   [--repeats 3] [--trial-timeout SECONDS]\n\n"
            "Finds faster CLBlast GEMM parameters for one device: records the GEMM shapes of one\n"
            "training step (batch, size as for train), runs CLBlast's own tuners (XgemmDirect,\n"
            "Xgemm) on representative sizes with a search fraction fitted to --budget (default\n"
            "300 s), adds hand-picked conservative sets, and tries every candidate in a separate\n"
            "process: all recorded shapes must give exactly the results of CLBlast's defaults\n"
            "(a crash, timeout or wrong result rejects it); their time is weighted by call counts.\n"
            "The fastest candidate, if faster than the defaults by 3%%, is written to the device's\n"
            "tuning file ($OCLSEG_TUNING_DIR, else $XDG_CACHE_HOME/oclseg/tuning, else\n"
            "~/.cache/oclseg/tuning), which every later context on that device applies\n"
            "(OCLSEG_NO_TUNING=1 disables that).\n");
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    size_t n = buf ? fread(buf, 1, (size_t)size, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int dump_json(json_t *j, const char *path) {
    int rc = json_dump_file(j, path, JSON_INDENT(1)) == 0 ? OCLSEG_OK : OCLSEG_ERR_IO;
    json_decref(j);
    return rc;
}

/* ---- shapes files ---------------------------------------------------------------------------- */

static json_t *shapes_json(const oclseg_gemm_shape *s, int count) {
    json_t *arr = json_array();
    for (int i = 0; i < count; i++)
        json_array_append_new(arr, json_pack("{s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:f, s:I}",
                                             "trans_a", s[i].trans_a, "trans_b", s[i].trans_b,
                                             "batched", s[i].batched, "batch", s[i].batch, "m",
                                             (json_int_t)s[i].m, "n", (json_int_t)s[i].n, "k",
                                             (json_int_t)s[i].k, "beta", (double)s[i].beta,
                                             "calls", (json_int_t)s[i].calls));
    return json_pack("{s:o}", "shapes", arr);
}

static int shapes_load(const char *path, oclseg_gemm_shape **out, int *count) {
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e), *arr = json_object_get(root, "shapes");
    *out = NULL;
    *count = 0;
    if (!json_is_array(arr)) {
        OCLSEG_ERROR("%s: not a shapes file", path);
        json_decref(root);
        return OCLSEG_ERR_FORMAT;
    }
    size_t n = json_array_size(arr);
    *out = calloc(n + 1, sizeof **out);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_int_t m = 0, nn = 0, k = 0, calls = 0;
        double beta = 0;
        oclseg_gemm_shape *s = &(*out)[i];
        if (json_unpack(o, "{s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:F, s:I}", "trans_a", &s->trans_a,
                        "trans_b", &s->trans_b, "batched", &s->batched, "batch", &s->batch, "m", &m,
                        "n", &nn, "k", &k, "beta", &beta, "calls", &calls) != 0 ||
            m <= 0 || nn <= 0 || k <= 0 || s->batch <= 0) {
            OCLSEG_ERROR("%s: shape %zu is malformed", path, i);
            free(*out);
            *out = NULL;
            json_decref(root);
            return OCLSEG_ERR_FORMAT;
        }
        s->m = (size_t)m, s->n = (size_t)nn, s->k = (size_t)k, s->beta = (float)beta;
        s->calls = (long)calls;
    }
    *count = (int)n;
    json_decref(root);
    return OCLSEG_OK;
}

/* ---- child: record the GEMM shapes of one training step ------------------------------------- */

static int child_record(const tune_options *o) {
    oclseg_ctx *ctx = NULL;
    oclseg_model *m = NULL;
    oclseg_trainer *t = NULL;
    oclseg_gemm_shape *shapes = NULL;
    int count = 0, st;
    size_t s2 = (size_t)o->size * o->size;
    float *images = malloc((size_t)o->batch * 3 * s2 * sizeof *images);
    float *masks = malloc((size_t)o->batch * s2 * sizeof *masks);
    oclseg_ctx_options co = {.device_spec = o->device};
    if (!images || !masks) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < (size_t)o->batch * 3 * s2; i++) images[i] = (float)((i * 7919) % 17) / 8 - 1;
    for (size_t i = 0; i < (size_t)o->batch * s2; i++) masks[i] = (float)((i / 37) % 2);
    TRY_GOTO(oclseg_ctx_create(&ctx, &co), st, done);
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = o->size;
    cfg.max_batch = o->batch;
    TRY_GOTO(oclseg_model_create(ctx, &cfg, &m), st, done);
    TRY_GOTO(oclseg_model_init_random(m, 1), st, done);
    oclseg_trainer_config tc = {.frozen_encoder = 0, .seed = 1};
    oclseg_optim_config_default(&tc.optim, OCLSEG_OPT_NADAM);
    TRY_GOTO(oclseg_trainer_create(m, &tc, &t), st, done);
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int nl;
    /* the second step is recorded: the first may differ (scratch growth, first-use paths) */
    TRY_GOTO(oclseg_trainer_step(t, images, masks, o->batch), st, done);
    TRY_GOTO(oclseg_trainer_drain_losses(t, losses, &first, &nl), st, done);
    oclseg_gemm_record_begin();
    st = oclseg_trainer_step(t, images, masks, o->batch);
    if (st == OCLSEG_OK) st = oclseg_trainer_drain_losses(t, losses, &first, &nl);
    int st2 = oclseg_gemm_record_end(&shapes, &count);
    if (st == OCLSEG_OK) st = st2;
    if (st == OCLSEG_OK) st = dump_json(shapes_json(shapes, count), o->record_out);
done:
    free(shapes);
    free(images);
    free(masks);
    oclseg_trainer_free(t);
    oclseg_model_free(m);
    oclseg_ctx_free(ctx);
    return st == OCLSEG_OK ? 0 : 1;
}

/* ---- child: one CLBlast tuner run ------------------------------------------------------------ */

static int child_tuner(const tune_options *o) {
    oclseg_ctx *ctx = NULL;
    oclseg_ctx_options co = {.device_spec = o->device};
    if (oclseg_ctx_create(&ctx, &co) != OCLSEG_OK) return 1;
    oclseg_tuning t;
    memset(&t, 0, sizeof t);
    int ki = strcmp(o->tuner_kernel, "Xgemm") == 0 ? 0 : 1;
    int err = oclseg_clblast_tune(ctx->queue, o->tuner_kernel, o->tm, o->tn, o->tk, o->fraction,
                                  &t.params[ki]);
    oclseg_ctx_free(ctx);
    if (err != 0) {
        fprintf(stderr, "oclseg tune: CLBlast tuner %s failed: status %d\n", o->tuner_kernel, err);
        return 1;
    }
    t.has[ki] = 1;
    char *text = oclseg_tuning_format(&t, 1);
    int rc = text && oclseg_file_write_atomic(o->result, text, strlen(text)) == OCLSEG_OK ? 0 : 1;
    free(text);
    return rc;
}

/* ---- child: validate and time one candidate -------------------------------------------------- */

typedef struct trial_buffers {
    float *a, *b, *c0, *c;
    cl_mem da, db, dc;
    size_t na, nb, nc;
} trial_buffers;

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Small integers in [-2, 2]: every product and partial sum of a GEMM with k < 2^21 is an integer
 * of magnitude < 2^24, hence exact in float32 whatever the summation order or tiling. */
static void fill_ints(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) x[i] = (float)((int)(xorshift(&s) % 5) - 2);
}

static int run_shape(oclseg_ctx *ctx, const oclseg_gemm_shape *s, trial_buffers *b) {
    const size_t lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n, ldc = s->n;
    if (s->batched)
        return gemm_batched(ctx, s->trans_a, s->trans_b, s->m, s->n, s->k, b->da, 0, lda,
                            s->m * s->k, b->db, 0, ldb, s->k * s->n, s->beta, b->dc, 0, ldc,
                            s->m * s->n, s->batch);
    return gemm_single(ctx, s->trans_a, s->trans_b, s->m, s->n, s->k, b->da, 0, lda, b->db, 0, ldb,
                       s->beta, b->dc, 0, ldc);
}

/* Hash of the result (with -0 folded into +0: the sign of an exact zero may depend on the
 * kernel), and a host check of sampled elements in exact integer arithmetic. */
static int check_result(const oclseg_gemm_shape *s, const trial_buffers *b, uint64_t *hash,
                        char *why, size_t whyn) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < b->nc; i++) {
        float v = b->c[i] + 0.0f;
        uint32_t u;
        memcpy(&u, &v, 4);
        h = (h ^ u) * 1099511628211ULL;
    }
    *hash = h;
    uint64_t rs = 12345;
    for (int t = 0; t < 64; t++) {
        size_t bi = xorshift(&rs) % (size_t)s->batch, i = xorshift(&rs) % s->m,
               j = xorshift(&rs) % s->n;
        const float *a = b->a + bi * s->m * s->k, *bb = b->b + bi * s->k * s->n;
        long long acc = 0;
        for (size_t l = 0; l < s->k; l++) {
            float x = s->trans_a ? a[l * s->m + i] : a[i * s->k + l];
            float y = s->trans_b ? bb[j * s->k + l] : bb[l * s->n + j];
            acc += (long long)x * (long long)y;
        }
        size_t ci = bi * s->m * s->n + i * s->n + j;
        if (s->beta != 0.0f) acc += (long long)b->c0[ci];
        if (b->c[ci] != (float)acc) {
            snprintf(why, whyn, "C[%zu][%zu][%zu] = %g, exact value %lld", bi, i, j, b->c[ci], acc);
            return OCLSEG_ERR_NUMERIC;
        }
    }
    return OCLSEG_OK;
}

static void free_buffers(oclseg_ctx *ctx, trial_buffers *b) {
    free(b->a), free(b->b), free(b->c0), free(b->c);
    if (b->da) oclseg_buffer_free(ctx, b->da, b->na * 4);
    if (b->db) oclseg_buffer_free(ctx, b->db, b->nb * 4);
    if (b->dc) oclseg_buffer_free(ctx, b->dc, b->nc * 4);
    memset(b, 0, sizeof *b);
}

static int make_buffers(oclseg_ctx *ctx, const oclseg_gemm_shape *s, int index, trial_buffers *b) {
    memset(b, 0, sizeof *b);
    b->na = (size_t)s->batch * s->m * s->k;
    b->nb = (size_t)s->batch * s->k * s->n;
    b->nc = (size_t)s->batch * s->m * s->n;
    b->a = malloc(b->na * 4), b->b = malloc(b->nb * 4), b->c0 = malloc(b->nc * 4);
    b->c = malloc(b->nc * 4);
    if (!b->a || !b->b || !b->c0 || !b->c) return OCLSEG_ERR_OUT_OF_MEMORY;
    fill_ints(b->a, b->na, 3 * (uint64_t)index + 1);
    fill_ints(b->b, b->nb, 3 * (uint64_t)index + 2);
    fill_ints(b->c0, b->nc, 3 * (uint64_t)index + 3);
    TRY(oclseg_buffer_create(ctx, b->na * 4, "tune A", &b->da));
    TRY(oclseg_buffer_create(ctx, b->nb * 4, "tune B", &b->db));
    TRY(oclseg_buffer_create(ctx, b->nc * 4, "tune C", &b->dc));
    TRY(oclseg_write(ctx, b->da, 0, b->na * 4, b->a));
    TRY(oclseg_write(ctx, b->db, 0, b->nb * 4, b->b));
    return OCLSEG_OK;
}

/* One correctness run (C reset first), then `repeats` timed runs; median seconds in *sec. */
static int corrupt; /* test hook: pretend the kernel got the last element wrong */

static int trial_shape(oclseg_ctx *ctx, const oclseg_gemm_shape *s, trial_buffers *b, int repeats,
                       uint64_t *hash, double *sec, char *why, size_t whyn) {
    TRY(oclseg_write(ctx, b->dc, 0, b->nc * 4, b->c0));
    TRY(run_shape(ctx, s, b));
    TRY(oclseg_read(ctx, b->dc, 0, b->nc * 4, b->c));
    if (corrupt) b->c[b->nc - 1] += 1.0f;
    TRY(check_result(s, b, hash, why, whyn));
    if (repeats <= 0) return OCLSEG_OK;
    double t[16];
    if (repeats > 16) repeats = 16;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_s();
        TRY(run_shape(ctx, s, b));
        TRY(oclseg_finish(ctx));
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    *sec = t[repeats / 2];
    return OCLSEG_OK;
}

static int child_trial(const tune_options *o) {
    oclseg_gemm_shape *rec = NULL;
    int nrec = 0;
    json_t *res = json_object();
    char why[512] = "";
    oclseg_ctx *ctx = NULL;
    uint64_t *ref = NULL;
    size_t len = 0;
    oclseg_tuning cand;
    char *text = slurp(o->trial_cand, &len);
    int st = text ? oclseg_tuning_parse(text, len, 1, &cand, why, sizeof why) : OCLSEG_ERR_IO;
    free(text);
    if (st == OCLSEG_OK) st = shapes_load(o->shapes, &rec, &nrec);
    /* Validation-only shapes (not timed into the total): large square GEMMs take CLBlast's
     * indirect Xgemm path whatever the model's shapes do, so Xgemm parameters are validated too;
     * 1000 is not a multiple of any tile size (padding path). The 1024^3 time is the ceiling. */
    oclseg_gemm_shape *shapes = calloc((size_t)nrec + 2, sizeof *shapes);
    int n = nrec + 2;
    if (shapes) {
        for (int i = 0; i < nrec; i++) shapes[i] = rec[i];
        shapes[nrec] = (oclseg_gemm_shape){0, 0, 0, 1, 1024, 1024, 1024, 0.0f, 0};
        shapes[nrec + 1] = (oclseg_gemm_shape){1, 0, 0, 1, 1000, 1000, 1000, 1.0f, 0};
    }
    ref = calloc((size_t)n, sizeof *ref);
    double *sec = calloc((size_t)n, sizeof *sec);
    if (st == OCLSEG_OK && (!shapes || !ref || !sec)) st = OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_ctx_options co = {.device_spec = o->device};
    if (st == OCLSEG_OK) st = oclseg_ctx_create(&ctx, &co);
    /* reference hashes with CLBlast's defaults (the parent runs children with OCLSEG_NO_TUNING) */
    for (int i = 0; st == OCLSEG_OK && i < n; i++) {
        trial_buffers b;
        st = make_buffers(ctx, &shapes[i], i, &b);
        if (st == OCLSEG_OK) st = trial_shape(ctx, &shapes[i], &b, 0, &ref[i], NULL, why, sizeof why);
        if (st != OCLSEG_OK && !why[0]) snprintf(why, sizeof why, "defaults failed on shape %d", i);
        free_buffers(ctx, &b);
    }
    if (st == OCLSEG_OK) {
        st = oclseg_tuning_apply_params(ctx->info.device, &cand);
        if (st != OCLSEG_OK) snprintf(why, sizeof why, "CLBlastOverrideParameters rejected it");
        /* test hooks (tests/test_tune.c): a candidate that crashes the driver, one that
         * computes a wrong element; both only for non-empty candidates (not the baseline) */
        int nonempty = cand.has[0] || cand.has[1] || cand.has[2];
        const char *hook = getenv("OCLSEG_TUNE_TRIAL_ABORT");
        if (nonempty && hook && strcmp(hook, "1") == 0) abort();
        hook = getenv("OCLSEG_TUNE_TRIAL_CORRUPT");
        corrupt = nonempty && hook && strcmp(hook, "1") == 0;
    }
    double total = 0, ceiling_gflops = 0;
    json_t *per = json_array();
    for (int i = 0; st == OCLSEG_OK && i < n; i++) {
        const oclseg_gemm_shape *s = &shapes[i];
        trial_buffers b;
        uint64_t h = 0;
        st = make_buffers(ctx, s, i, &b);
        if (st == OCLSEG_OK)
            st = trial_shape(ctx, s, &b, i == nrec + 1 ? 0 : o->repeats, &h, &sec[i], why, sizeof why);
        if (st == OCLSEG_OK && h != ref[i]) {
            snprintf(why, sizeof why, "result differs from CLBlast's defaults");
            st = OCLSEG_ERR_NUMERIC;
        }
        if (st != OCLSEG_OK) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s; shape %dx%dx%d batch %d trans %d%d: %s",
                     oclseg_status_str(st), (int)s->m, (int)s->n, (int)s->k, s->batch, s->trans_a,
                     s->trans_b, why[0] ? why : "CLBlast error");
            snprintf(why, sizeof why, "%s", tmp);
        }
        free_buffers(ctx, &b);
        if (i < nrec) {
            total += sec[i] * 1e3 * (double)s->calls;
            json_array_append_new(per, json_real(sec[i] * 1e3));
        } else if (i == nrec) {
            ceiling_gflops = 2.0 * 1024 * 1024 * 1024 / sec[i] / 1e9;
        }
    }
    oclseg_ctx_free(ctx);
    if (st == OCLSEG_OK) {
        json_object_set_new(res, "ok", json_true());
        json_object_set_new(res, "weighted_ms", json_real(total));
        json_object_set_new(res, "sgemm_1024_gflops", json_real(ceiling_gflops));
        json_object_set_new(res, "per_shape_ms", per);
    } else {
        json_decref(per);
        json_object_set_new(res, "ok", json_false());
        json_object_set_new(res, "reason", json_string(why[0] ? why : oclseg_status_str(st)));
    }
    int rc = dump_json(res, o->result) == OCLSEG_OK && st == OCLSEG_OK ? 0 : 1;
    free(rec);
    free(shapes);
    free(ref);
    free(sec);
    return rc;
}

/* ---- parent ---------------------------------------------------------------------------------- */

/* Runs `/proc/self/exe tune <args>` (posix_spawn: no fork of an OpenCL process), output to log;
 * kills it after timeout_s. Returns 0 on exit status 0; else writes why to `why`. */
static int spawn_child(char *const args[], const char *log, double timeout_s, char *why,
                       size_t whyn, double *took) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "oclseg";
    argv[argc++] = "tune";
    for (int i = 0; args[i] && argc < 31; i++) argv[argc++] = args[i];
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    double t0 = now_s();
    int err = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        snprintf(why, whyn, "cannot start a child process: %s", strerror(err));
        return -1;
    }
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (now_s() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took = now_s() - t0;
            snprintf(why, whyn, "timed out after %.0f s (killed)", timeout_s);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    *took = now_s() - t0;
    if (WIFSIGNALED(status)) {
        snprintf(why, whyn, "crashed (signal %d: %s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(why, whyn, "exited with status %d", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

typedef struct candidate {
    char name[64];
    oclseg_tuning t;
    int ok;
    double ms, ceiling, took;
    char why[512];
} candidate;

typedef struct tune_state {
    const tune_options *o;
    char dir[256], device_arg[32], shapes[300];
    double t_start, trial_cost;
    candidate *c;
    int nc;
} tune_state;

static double remaining(const tune_state *S) { return S->o->budget_s - (now_s() - S->t_start); }

/* Validates and times one candidate in a child; appends it to S->c. */
static candidate *run_trial(tune_state *S, const char *name, const oclseg_tuning *t) {
    candidate *c = &S->c[S->nc++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->t = *t;
    char cand[320], result[320], log[320], rep[16];
    snprintf(cand, sizeof cand, "%s/cand%d.json", S->dir, S->nc);
    snprintf(result, sizeof result, "%s/result%d.json", S->dir, S->nc);
    snprintf(log, sizeof log, "%s/trial%d.log", S->dir, S->nc);
    snprintf(rep, sizeof rep, "%d", S->o->repeats);
    char *text = oclseg_tuning_format(t, 1);
    FILE *f = fopen(cand, "w");
    if (f && text) fputs(text, f);
    if (f) fclose(f);
    free(text);
    char *args[] = {"--device", S->device_arg, "--trial", cand, "--shapes", S->shapes,
                    "--result", result, "--repeats", rep, NULL};
    int rc = spawn_child(args, log, S->o->trial_timeout_s, c->why, sizeof c->why, &c->took);
    json_error_t e;
    json_t *r = json_load_file(result, 0, &e);
    if (rc == 0 && json_is_true(json_object_get(r, "ok"))) {
        c->ok = 1;
        c->ms = json_number_value(json_object_get(r, "weighted_ms"));
        c->ceiling = json_number_value(json_object_get(r, "sgemm_1024_gflops"));
    } else if (json_is_string(json_object_get(r, "reason"))) {
        snprintf(c->why, sizeof c->why, "%s", json_string_value(json_object_get(r, "reason")));
    }
    json_decref(r);
    if (c->ok)
        printf("  %-28s %9.1f ms  (1024^3 SGEMM %.1f GFLOP/s; trial %.0f s)\n", c->name, c->ms,
               c->ceiling, c->took);
    else
        printf("  %-28s REJECTED: %s (log %s)\n", c->name, c->why, log);
    fflush(stdout);
    return c;
}

/* Runs CLBlast's tuner for `kernel` in a child; 0 and *out on success. */
static int run_tuner(tune_state *S, const char *kernel, size_t m, size_t n, size_t k,
                     double fraction, double timeout_s, oclseg_tuning *out) {
    char result[320], log[320], dims[3][24], frac[32];
    snprintf(result, sizeof result, "%s/tuner-%s.json", S->dir, kernel);
    snprintf(log, sizeof log, "%s/tuner-%s.log", S->dir, kernel);
    snprintf(dims[0], 24, "%zu", m), snprintf(dims[1], 24, "%zu", n), snprintf(dims[2], 24, "%zu", k);
    snprintf(frac, sizeof frac, "%g", fraction);
    char *args[] = {"--device", S->device_arg, "--tuner", (char *)kernel, "--m", dims[0], "--n",
                    dims[1], "--k", dims[2], "--fraction", frac, "--result", result, NULL};
    char why[512];
    double took = 0;
    printf("  CLBlast tuner %s on %zux%zux%zu, fraction %g (at most %.0f s) ...\n", kernel, m, n, k,
           fraction, timeout_s);
    fflush(stdout);
    int rc = spawn_child(args, log, timeout_s, why, sizeof why, &took);
    size_t len = 0;
    char *text = rc == 0 ? slurp(result, &len) : NULL;
    if (!text || oclseg_tuning_parse(text, len, 1, out, why, sizeof why) != OCLSEG_OK) {
        if (rc == 0 && !text) snprintf(why, sizeof why, "no result");
        printf("    tuner %s gave no candidate: %s (log %s)\n", kernel, why, log);
        free(text);
        return -1;
    }
    free(text);
    printf("    tuner %s finished in %.0f s\n", kernel, took);
    return 0;
}

static void set_params(oclseg_tuning *t, int ki, const char *spec) {
    /* spec: "NAME=V NAME=V ..." */
    oclseg_clblast_params *p = &t->params[ki];
    p->count = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || p->count == OCLSEG_TUNE_MAX_PARAMS) continue;
        *eq = '\0';
        snprintf(p->names[p->count], OCLSEG_TUNE_NAME_LEN, "%s", tok);
        p->values[p->count++] = (size_t)strtoul(eq + 1, NULL, 10);
    }
    t->has[ki] = 1;
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static int tune_parent(const tune_options *o) {
    oclseg_device_info dev;
    if (oclseg_device_choose(o->device, &dev) != OCLSEG_OK) return 1;
    tune_state S = {.o = o, .t_start = now_s()};
    S.c = calloc(32, sizeof *S.c); /* at most ~10 trials */
    snprintf(S.device_arg, sizeof S.device_arg, "%d:%d", dev.platform_index, dev.device_index);
    snprintf(S.dir, sizeof S.dir, "/tmp/oclseg-tune-XXXXXX");
    if (!S.c || !mkdtemp(S.dir)) {
        fprintf(stderr, "oclseg tune: cannot create a work directory\n");
        free(S.c);
        return 1;
    }
    snprintf(S.shapes, sizeof S.shapes, "%s/shapes.json", S.dir);
    /* children measure against CLBlast's defaults, whatever tuning file exists */
    setenv("OCLSEG_NO_TUNING", "1", 1);
    char path[4096];
    oclseg_tuning_path(&dev, path, sizeof path);
    printf("tuning CLBlast GEMM for %s (%s, driver %s), budget %.0f s; work files in %s\n",
           dev.name, dev.platform_version, dev.driver_version, o->budget_s, S.dir);

    /* 1. the shapes of one training step */
    char bs[16], ss[16], why[512], log[320];
    snprintf(bs, sizeof bs, "%d", o->batch), snprintf(ss, sizeof ss, "%d", o->size);
    snprintf(log, sizeof log, "%s/record.log", S.dir);
    char *rargs[] = {"--device", S.device_arg, "--record", S.shapes, "--batch", bs, "--size", ss, NULL};
    double took = 0;
    oclseg_gemm_shape *shapes = NULL;
    int nshapes = 0, rc = 1;
    if (spawn_child(rargs, log, 600, why, sizeof why, &took) != 0 ||
        shapes_load(S.shapes, &shapes, &nshapes) != OCLSEG_OK) {
        fprintf(stderr, "oclseg tune: recording the GEMM shapes failed: %s (log %s)\n", why, log);
        goto done;
    }
    long calls = 0;
    for (int i = 0; i < nshapes; i++) calls += shapes[i].calls;
    printf("recorded %d GEMM shapes, %ld CLBlast calls per step (batch %d, %dx%d) in %.0f s\n",
           nshapes, calls, o->batch, o->size, o->size, took);

    /* 2. baseline */
    printf("candidates (weighted GEMM time of one step, median of %d runs per shape):\n", o->repeats);
    oclseg_tuning none;
    memset(&none, 0, sizeof none);
    candidate *base = run_trial(&S, "CLBlast defaults", &none);
    if (!base->ok) {
        fprintf(stderr, "oclseg tune: the defaults themselves fail: %s\n", base->why);
        goto done;
    }
    S.trial_cost = base->took;
    /* the shape with the largest share of time is the tuners' representative size */
    json_error_t e;
    char result1[320];
    snprintf(result1, sizeof result1, "%s/result1.json", S.dir);
    json_t *r1 = json_load_file(result1, 0, &e), *per = json_object_get(r1, "per_shape_ms");
    int top = 0;
    double top_ms = -1;
    for (int i = 0; i < nshapes; i++) {
        double ms = json_number_value(json_array_get(per, (size_t)i)) * (double)shapes[i].calls;
        if (ms > top_ms) top_ms = ms, top = i;
    }
    json_decref(r1);
    const oclseg_gemm_shape *rep = &shapes[top];
    printf("  (largest share: %zux%zux%zu batch %d, %ld calls, %.1f ms)\n", rep->m, rep->n, rep->k,
           rep->batch, rep->calls, top_ms);

    /* 3. CLBlast's tuners: the fraction of each search space is fitted to the time left
     * as measured on PoCL: XgemmDirect 256^3 at 0.002 took 3 s, at 0.01 over 300 s (one
     * configuration can take minutes to compile or run, hence the kill timeout); Xgemm 512^3 at
     * 0.005 took 267 s */
    oclseg_tuning tuned_direct, tuned_xgemm;
    int have_direct = 0, have_xgemm = 0;
    double left = remaining(&S) - 4 * S.trial_cost;
    if (left > 30) {
        double tmax = left * 0.45;
        double fraction = 0.002 * (tmax > 60 ? tmax / 60 : 1);
        if (fraction > 0.006) fraction = 0.006;
        size_t m = round_up(rep->m, 64), n = round_up(rep->n, 64), k = round_up(rep->k, 64);
        if (m > 512) m = 512;
        if (n > 512) n = 512;
        if (k > 512) k = 512;
        have_direct = run_tuner(&S, "XgemmDirect", m, n, k, fraction, tmax + 60, &tuned_direct) == 0;
        if (have_direct && remaining(&S) > S.trial_cost) run_trial(&S, "tuned XgemmDirect", &tuned_direct);
    }
    left = remaining(&S) - 2 * S.trial_cost;
    if (left > 30) {
        double tmax = left * 0.6;
        double fraction = 0.005 * tmax / 267;
        if (fraction < 0.0005) fraction = 0.0005;
        if (fraction > 0.005) fraction = 0.005;
        have_xgemm = run_tuner(&S, "Xgemm", 256, 256, 256, fraction, tmax + 60, &tuned_xgemm) == 0;
    }
    /* 4. hand-picked conservative sets (GEMMK=0; sizes satisfy CLBlast's divisibility rules) */
    static const char *direct_sets[][2] = {
        {"direct WGD=32 VW=4", "KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=4 VWND=4 WGD=32"},
    };
    for (int i = 0; i < 1; i++) { /* always tried, whatever the budget */
        oclseg_tuning t;
        memset(&t, 0, sizeof t);
        set_params(&t, 1, direct_sets[i][1]);
        run_trial(&S, direct_sets[i][0], &t);
    }
    /* 5. combinations: the best direct set so far, with the tuned Xgemm and a lower threshold
     * for the indirect path (big model GEMMs then use the tuned Xgemm kernel) */
    candidate *best = base;
    for (int i = 0; i < S.nc; i++)
        if (S.c[i].ok && S.c[i].ms < best->ms) best = &S.c[i];
    if (have_xgemm) {
        static const size_t thresholds[] = {0, 384};
        for (int i = 0; i < 2 && remaining(&S) > S.trial_cost; i++) {
            oclseg_tuning t = best->t;
            t.params[0] = tuned_xgemm.params[0];
            t.has[0] = 1;
            char name[64];
            if (thresholds[i]) {
                char spec[64];
                snprintf(spec, sizeof spec, "XGEMM_MIN_INDIRECT_SIZE=%zu", thresholds[i]);
                set_params(&t, 2, spec);
                snprintf(name, sizeof name, "+ tuned Xgemm, indirect>=%zu", thresholds[i]);
            } else {
                snprintf(name, sizeof name, "+ tuned Xgemm");
            }
            run_trial(&S, name, &t);
        }
    }
    best = base;
    for (int i = 0; i < S.nc; i++)
        if (S.c[i].ok && S.c[i].ms < best->ms) best = &S.c[i];
    /* within 2% of the fastest (noise), prefer the higher 1024^3 ceiling (large GEMMs) */
    for (int i = 0; i < S.nc; i++)
        if (S.c[i].ok && &S.c[i] != base && S.c[i].ms <= 1.02 * best->ms &&
            S.c[i].ceiling > best->ceiling)
            best = &S.c[i];
    double base_ms = base->ms, best_ms = best->ms;
    if (best != base) {
        /* confirm against the defaults once more, back to back: other load on the machine moves
         * single trials; each side keeps its faster run */
        printf("confirming (defaults, then the best again):\n");
        oclseg_tuning bt = best->t;
        char bname[64];
        snprintf(bname, sizeof bname, "%s", best->name);
        int bi = (int)(best - S.c);
        candidate *b2 = run_trial(&S, "CLBlast defaults", &none);
        if (b2->ok && b2->ms < base_ms) base_ms = b2->ms;
        candidate *c2 = run_trial(&S, bname, &bt);
        best = &S.c[bi];
        if (!c2->ok) {
            best->ok = 0;
            best_ms = 1e30;
        } else if (c2->ms < best_ms) {
            best_ms = c2->ms;
        }
    }
    int rejected = 0;
    for (int i = 0; i < S.nc; i++) rejected += !S.c[i].ok;
    printf("%d candidates tried (%d rejected) in %.0f s\n", S.nc, rejected, now_s() - S.t_start);
    /* 6. persist only a clear win: trial-to-trial noise of these medians is ~1-2% here */
    if (best == base || best_ms > 0.97 * base_ms) {
        printf("CLBlast's defaults stay (best candidate: %s, %.1f ms vs %.1f ms)\n", best->name,
               best_ms, base_ms);
        if (unlink(path) == 0) printf("removed the older tuning file %s\n", path);
        rc = 0;
        goto done;
    }
    oclseg_tuning out = best->t;
    oclseg_tuning_key(&dev, &out);
    out.baseline_ms = base_ms;
    out.tuned_ms = best_ms;
    char dir[4096];
    oclseg_tuning_dir(dir, sizeof dir);
    char mk[4200];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
    if (strchr(dir, '\'') || system(mk) != 0) {
        fprintf(stderr, "oclseg tune: cannot create %s\n", dir);
        goto done;
    }
    char *text = oclseg_tuning_format(&out, 0);
    if (!text || oclseg_file_write_atomic(path, text, strlen(text)) != OCLSEG_OK) {
        free(text);
        goto done;
    }
    free(text);
    printf("chosen: %s, %.1f ms vs %.1f ms with the defaults (%.2fx); 1024^3 SGEMM %.1f -> %.1f "
           "GFLOP/s\nwrote %s\n", best->name, best_ms, base_ms, base_ms / best_ms, base->ceiling,
           best->ceiling, path);
    rc = 0;
done:
    free(shapes);
    free(S.c);
    return rc;
}

int cmd_tune(int argc, char **argv) {
    tune_options o = {.batch = 16, .size = 128, .repeats = 3, .budget_s = 300, .trial_timeout_s = 300};
    enum { O_TRIAL = 1000, O_SHAPES, O_RESULT, O_RECORD, O_TUNER, O_M, O_N, O_K, O_FRACTION };
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'},  {"budget", required_argument, 0, 'B'},
        {"batch", required_argument, 0, 'b'},   {"size", required_argument, 0, 's'},
        {"repeats", required_argument, 0, 'r'}, {"trial-timeout", required_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},          {"trial", required_argument, 0, O_TRIAL},
        {"shapes", required_argument, 0, O_SHAPES}, {"result", required_argument, 0, O_RESULT},
        {"record", required_argument, 0, O_RECORD}, {"tuner", required_argument, 0, O_TUNER},
        {"m", required_argument, 0, O_M},       {"n", required_argument, 0, O_N},
        {"k", required_argument, 0, O_K},       {"fraction", required_argument, 0, O_FRACTION},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.device = optarg; break;
        case 'B': o.budget_s = atof(optarg); break;
        case 'b': o.batch = atoi(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'r': o.repeats = atoi(optarg); break;
        case 'T': o.trial_timeout_s = atof(optarg); break;
        case O_TRIAL: o.trial_cand = optarg; break;
        case O_SHAPES: o.shapes = optarg; break;
        case O_RESULT: o.result = optarg; break;
        case O_RECORD: o.record_out = optarg; break;
        case O_TUNER: o.tuner_kernel = optarg; break;
        case O_M: o.tm = strtoul(optarg, NULL, 10); break;
        case O_N: o.tn = strtoul(optarg, NULL, 10); break;
        case O_K: o.tk = strtoul(optarg, NULL, 10); break;
        case O_FRACTION: o.fraction = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.batch <= 0 || o.size <= 0 || o.size % 32 || o.repeats <= 0 || o.budget_s <= 0 ||
        o.trial_timeout_s <= 0) {
        fprintf(stderr, "oclseg tune: --batch, --budget, --repeats, --trial-timeout must be "
                        "positive, --size a multiple of 32\n");
        return 2;
    }
    if (o.record_out) return child_record(&o);
    if (o.trial_cand) {
        if (!o.shapes || !o.result) return 2;
        return child_trial(&o);
    }
    if (o.tuner_kernel) {
        if (!o.result || !o.tm || !o.tn || !o.tk || o.fraction <= 0 ||
            (strcmp(o.tuner_kernel, "Xgemm") && strcmp(o.tuner_kernel, "XgemmDirect")))
            return 2;
        return child_tuner(&o);
    }
    return tune_parent(&o);
}
