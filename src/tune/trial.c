/* Tuner children: record a step's GEMM shapes, run one CLBlast tuner, validate and time one
 * CLBlast candidate or the own kernels. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"
#include "oclseg/session.h"
#include "oclseg/tune.h"
#include "oclseg/tuning.h"
#include "oclseg/safetensors.h"
#include "oclseg/util.h"
#include "ops/gemm.h"
#include "runtime/tune_clblast.h"
#include "tune/tune_internal.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- child: record the GEMM shapes of one training step ------------------------------------- */

int oclseg_tune_child_record(const char *device, int batch, int size, const char *shapes_path) {
    oclseg_session *ses = NULL;
    oclseg_gemm_shape *shapes = NULL;
    int count = 0, st;
    size_t s2 = (size_t)size * size;
    float *images = malloc((size_t)batch * 3 * s2 * sizeof *images);  // (B, 3, S, S)
    float *masks = malloc((size_t)batch * s2 * sizeof *masks);        // (B, 1, S, S)
    if (!images || !masks) {
        st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < (size_t)batch * 3 * s2; i++) images[i] = (float)((i * 7919) % 17) / 8 - 1;
    for (size_t i = 0; i < (size_t)batch * s2; i++) masks[i] = (float)((i / 37) % 2);
    oclseg_session_options so;
    oclseg_session_options_synthetic_training(&so, size, batch, 0);
    so.device = device;
    TRY_GOTO(oclseg_session_create(&so, &ses), st, done);
    /* the calls are recorded whichever backend runs them; CLBlast as in the trials */
    ses->ctx->gemm_backend = OCLSEG_GEMM_CLBLAST;
    oclseg_trainer *t = ses->trainer;
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int nl;
    /* the second step is recorded: the first may differ (scratch growth, first-use paths) */
    TRY_GOTO(oclseg_trainer_step(t, images, masks, batch), st, done);
    TRY_GOTO(oclseg_trainer_drain_losses(t, losses, &first, &nl), st, done);
    oclseg_gemm_record_begin(ses->ctx);
    st = oclseg_trainer_step(t, images, masks, batch);
    if (st == OCLSEG_OK) st = oclseg_trainer_drain_losses(t, losses, &first, &nl);
    int st2 = oclseg_gemm_record_end(ses->ctx, &shapes, &count);
    if (st == OCLSEG_OK) st = st2;
    if (st == OCLSEG_OK)
        st = tune_shapes_save(shapes, count, oclseg_gemm_device_default_own(ses->ctx), shapes_path);
done:
    free(shapes);
    free(images);
    free(masks);
    oclseg_session_free(ses);
    return st;
}

/* ---- child: one CLBlast tuner run ------------------------------------------------------------ */

int oclseg_tune_child_tuner(const char *device, const char *kernel, size_t m, size_t n, size_t k,
                            double fraction, const char *result_path) {
    if (strcmp(kernel, "Xgemm") != 0 && strcmp(kernel, "XgemmDirect") != 0) {
        OCLSEG_ERROR("oclseg tune: unknown CLBlast tuner '%s' (Xgemm or XgemmDirect)", kernel);
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_ctx *ctx = NULL;
    oclseg_ctx_options co = {.device_spec = device};
    TRY(oclseg_ctx_create(&ctx, &co));
    oclseg_tuning t;
    memset(&t, 0, sizeof t);
    int ki = strcmp(kernel, "Xgemm") == 0 ? 0 : 1;
    int err = oclseg_clblast_tune(ctx->queue, kernel, m, n, k, fraction, &t.params[ki]);
    oclseg_ctx_free(ctx);
    if (err != 0) {
        OCLSEG_ERROR("oclseg tune: CLBlast tuner %s failed: status %d", kernel, err);
        return OCLSEG_ERR_CLBLAST;
    }
    t.has[ki] = 1;
    char *text = oclseg_tuning_format(&t, 1);
    int st = text ? oclseg_file_write_atomic(result_path, text, strlen(text))
                  : OCLSEG_ERR_OUT_OF_MEMORY;
    free(text);
    return st;
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
    const gemm_dims d = {s->trans_a, s->trans_b, s->m, s->n, s->k};
    const gemm_operand a = gemm_mat(b->da, 0, lda, s->m * s->k);
    const gemm_operand bm = gemm_mat(b->db, 0, ldb, s->k * s->n);
    const gemm_operand c = gemm_mat(b->dc, 0, ldc, s->m * s->n);
    if (s->sum) return gemm_batched_sum(ctx, d, a, bm, b->dc, 0, s->batch);
    if (s->batched) return gemm_batched(ctx, d, a, bm, s->beta, c, s->batch);
    return gemm_single(ctx, d, a, bm, s->beta, c);
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
        if (s->sum) bi = 0; /* C_0 = the sum over every matrix pair */
        long long acc = 0;
        for (size_t p = bi; p < (s->sum ? (size_t)s->batch : bi + 1); p++) {
            const float *a = b->a + p * s->m * s->k, *bb = b->b + p * s->k * s->n;
            for (size_t l = 0; l < s->k; l++) {
                float x = s->trans_a ? a[l * s->m + i] : a[i * s->k + l];
                float y = s->trans_b ? bb[j * s->k + l] : bb[l * s->n + j];
                acc += (long long)x * (long long)y;
            }
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
    if (b->da) oclseg_buffer_free(ctx, b->da);
    if (b->db) oclseg_buffer_free(ctx, b->db);
    if (b->dc) oclseg_buffer_free(ctx, b->dc);
    memset(b, 0, sizeof *b);
}

static int make_buffers(oclseg_ctx *ctx, const oclseg_gemm_shape *s, int index, trial_buffers *b) {
    memset(b, 0, sizeof *b);
    b->na = (size_t)s->batch * s->m * s->k;
    b->nb = (size_t)s->batch * s->k * s->n;
    b->nc = (size_t)(s->sum ? 1 : s->batch) * s->m * s->n;
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

/* test hook: pretend the kernel got the last element wrong */
static int corrupt;

/* One run from C reset to C read back and checked: *hash, and *sec the run alone. */
static int checked_run(oclseg_ctx *ctx, const oclseg_gemm_shape *s, trial_buffers *b,
                       uint64_t *hash, double *sec, char *why, size_t whyn) {
    TRY(oclseg_write(ctx, b->dc, 0, b->nc * 4, b->c0));
    const double t0 = oclseg_now_s();
    TRY(run_shape(ctx, s, b));
    TRY(oclseg_finish(ctx));
    *sec = oclseg_now_s() - t0;
    TRY(oclseg_read(ctx, b->dc, 0, b->nc * 4, b->c));
    if (corrupt) b->c[b->nc - 1] += 1.0f;
    return check_result(s, b, hash, why, whyn);
}

/* A shape's timed runs: the median (candidates' totals) and the fastest (the backend per shape:
 * other load on the machine only ever slows a run down). */
typedef struct shape_time {
    double median_s, fastest_s;
} shape_time;

/* One correctness run (compiles the kernels), then `repeats` timed runs, each checked to give
 * the same result (a kernel that is right only sometimes is caught too). */
static int trial_shape(oclseg_ctx *ctx, const oclseg_gemm_shape *s, trial_buffers *b, int repeats,
                       uint64_t *hash, shape_time *sec, char *why, size_t whyn) {
    double t[16];
    TRY(checked_run(ctx, s, b, hash, &t[0], why, whyn));
    if (repeats <= 0) return OCLSEG_OK;
    if (repeats > 16) repeats = 16;
    for (int r = 0; r < repeats; r++) {
        uint64_t h;
        TRY(checked_run(ctx, s, b, &h, &t[r], why, whyn));
        if (h != *hash) {
            snprintf(why, whyn, "timed run %d gave another result than the first", r + 1);
            return OCLSEG_ERR_NUMERIC;
        }
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    sec->median_s = t[repeats / 2];
    sec->fastest_s = t[0];
    return OCLSEG_OK;
}

/* The result hash of every shape with CLBlast's defaults (the parent runs children with
 * OCLSEG_NO_TUNING), against which each candidate's results are compared. */
static int reference_hashes(oclseg_ctx *ctx, const oclseg_gemm_shape *shapes, int n,
                            uint64_t *ref, char *why, size_t why_size) {
    int st = OCLSEG_OK;
    for (int i = 0; st == OCLSEG_OK && i < n; i++) {
        trial_buffers b;
        st = make_buffers(ctx, &shapes[i], i, &b);
        shape_time unused;
        if (st == OCLSEG_OK)
            st = trial_shape(ctx, &shapes[i], &b, 0, &ref[i], &unused, why, why_size);
        if (st != OCLSEG_OK && !why[0]) snprintf(why, why_size, "defaults failed on shape %d", i);
        free_buffers(ctx, &b);
    }
    return st;
}

/* Runs shape `index` (its inputs seeded by the index, as for its reference hash) `repeats`
 * times after a first checked run (times in *sec); an error names the shape in why. */
static int validate_shape(oclseg_ctx *ctx, const oclseg_gemm_shape *s, int index, uint64_t ref,
                          int repeats, shape_time *sec, char *why, size_t whyn) {
    trial_buffers b;
    uint64_t h = 0;
    why[0] = '\0';
    int st = make_buffers(ctx, s, index, &b);
    if (st == OCLSEG_OK) st = trial_shape(ctx, s, &b, repeats, &h, sec, why, whyn);
    if (st == OCLSEG_OK && h != ref) {
        snprintf(why, whyn, "result differs from CLBlast's defaults");
        st = OCLSEG_ERR_NUMERIC;
    }
    if (st != OCLSEG_OK) {
        char name[96], tmp[512];
        oclseg_gemm_shape_name(s, name, sizeof name);
        snprintf(tmp, sizeof tmp, "%s; shape %s: %s", oclseg_status_str(st), name,
                 why[0] ? why : ctx->gemm_backend == OCLSEG_GEMM_OWN ? "own kernel error"
                                                                     : "CLBlast error");
        snprintf(why, whyn, "%s", tmp);
    }
    free_buffers(ctx, &b);
    return st;
}

/* Overrides CLBlast's parameters with the candidate's; then the test hooks. */
static int apply_candidate(oclseg_ctx *ctx, const oclseg_tuning *cand, char *why,
                           size_t why_size) {
    int st = oclseg_tuning_apply_params(ctx->info.device, cand);
    if (st != OCLSEG_OK) snprintf(why, why_size, "CLBlastOverrideParameters rejected it");
    /* test hooks (tests/test_tune.c): a candidate that crashes the driver, one that
     * computes a wrong element; both only for non-empty candidates (not the baseline) */
    int nonempty = cand->has[0] || cand->has[1] || cand->has[2];
    if (nonempty && ctx->env.tune_trial_abort) abort();
    corrupt = nonempty && ctx->env.tune_trial_corrupt;
    return st;
}

int oclseg_tune_child_trial(const char *device, const char *candidate_path,
                            const char *shapes_path, const char *result_path, int repeats) {
    oclseg_gemm_shape *rec = NULL;
    int nrec = 0;
    json_t *res = json_object();
    char why[512] = "";
    oclseg_ctx *ctx = NULL;
    uint64_t *ref = NULL;
    size_t len = 0;
    oclseg_tuning cand;
    char *text = NULL;
    int st = oclseg_read_file(candidate_path, 0, &text, &len);
    if (st == OCLSEG_OK) st = oclseg_tuning_parse(text, len, 1, &cand, why, sizeof why);
    free(text);
    if (st == OCLSEG_OK) st = tune_shapes_load(shapes_path, &rec, &nrec, NULL);
    /* Validation-only shapes (not timed into the total): large square GEMMs take CLBlast's
     * indirect Xgemm path whatever the model's shapes do, so Xgemm parameters are validated too;
     * 1000 is not a multiple of any tile size (padding path). The 1024^3 time is the ceiling. */
    oclseg_gemm_shape *shapes = calloc((size_t)nrec + 2, sizeof *shapes);
    int n = nrec + 2;
    if (shapes) {
        for (int i = 0; i < nrec; i++) shapes[i] = rec[i];
        shapes[nrec] = (oclseg_gemm_shape){0, 0, 0, 1, 1024, 1024, 1024, 0.0f, 0, 0};
        shapes[nrec + 1] = (oclseg_gemm_shape){1, 0, 0, 1, 1000, 1000, 1000, 1.0f, 0, 0};
    }
    ref = calloc((size_t)n, sizeof *ref);
    shape_time *sec = calloc((size_t)n, sizeof *sec);
    if (st == OCLSEG_OK && (!shapes || !ref || !sec)) st = OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_ctx_options co = {.device_spec = device};
    if (st == OCLSEG_OK) st = oclseg_ctx_create(&ctx, &co);
    if (st == OCLSEG_OK) ctx->gemm_backend = OCLSEG_GEMM_CLBLAST; /* tuning CLBlast's kernels */
    if (st == OCLSEG_OK) st = reference_hashes(ctx, shapes, n, ref, why, sizeof why);
    if (st == OCLSEG_OK) st = apply_candidate(ctx, &cand, why, sizeof why);
    double total = 0, ceiling_gflops = 0;
    json_t *per = json_array(), *fastest = json_array();
    for (int i = 0; st == OCLSEG_OK && i < n; i++) {
        const oclseg_gemm_shape *s = &shapes[i];
        st = validate_shape(ctx, s, i, ref[i], i == nrec + 1 ? 0 : repeats, &sec[i], why,
                            sizeof why);
        if (i < nrec) {
            total += sec[i].median_s * 1e3 * (double)s->calls;
            json_array_append_new(per, json_real(sec[i].median_s * 1e3));
            json_array_append_new(fastest, json_real(sec[i].fastest_s * 1e3));
        } else if (i == nrec) {
            ceiling_gflops = 2.0 * 1024 * 1024 * 1024 / sec[i].median_s / 1e9;
        }
    }
    oclseg_ctx_free(ctx);
    if (st == OCLSEG_OK) {
        json_object_set_new(res, "ok", json_true());
        json_object_set_new(res, "weighted_ms", json_real(total));
        json_object_set_new(res, "sgemm_1024_gflops", json_real(ceiling_gflops));
        json_object_set_new(res, "per_shape_ms", per);
        json_object_set_new(res, "per_shape_fastest_ms", fastest);
    } else {
        json_decref(per), json_decref(fastest);
        json_object_set_new(res, "ok", json_false());
        json_object_set_new(res, "reason", json_string(why[0] ? why : oclseg_status_str(st)));
    }
    int written = tune_dump_json(res, result_path);
    free(rec);
    free(shapes);
    free(ref);
    free(sec);
    return st != OCLSEG_OK ? st : written;
}


/* ---- child: validate and time the own kernels, shape by shape -------------------------------- */

/* Results: {"ok": true, "per_shape_fastest_ms": [ms | null], "per_shape_reason": [null | "why"]}:
 * a shape whose own result differs from CLBlast's defaults (or fails) is rejected alone. */
int oclseg_tune_child_own(const char *device, const char *shapes_path, const char *result_path,
                          int repeats) {
    oclseg_gemm_shape *shapes = NULL;
    int n = 0;
    char why[512] = "";
    oclseg_ctx *ctx = NULL;
    int st = tune_shapes_load(shapes_path, &shapes, &n, NULL);
    uint64_t *ref = calloc((size_t)n + 1, sizeof *ref);
    if (st == OCLSEG_OK && !ref) st = OCLSEG_ERR_OUT_OF_MEMORY;
    oclseg_ctx_options co = {.device_spec = device};
    if (st == OCLSEG_OK) st = oclseg_ctx_create(&ctx, &co);
    if (st == OCLSEG_OK) ctx->gemm_backend = OCLSEG_GEMM_CLBLAST; /* the references */
    if (st == OCLSEG_OK) st = reference_hashes(ctx, shapes, n, ref, why, sizeof why);
    if (st == OCLSEG_OK && ctx->env.tune_own_abort) abort(); /* test hook (tests/test_tune.c) */
    json_t *per = json_array(), *reasons = json_array();
    for (int i = 0; st == OCLSEG_OK && i < n; i++) {
        ctx->gemm_backend = OCLSEG_GEMM_OWN;
        corrupt = ctx->env.tune_own_corrupt_shape == i + 1; /* test hook: shape i goes wrong */
        shape_time sec = {0, 0};
        if (validate_shape(ctx, &shapes[i], i, ref[i], repeats, &sec, why, sizeof why) ==
            OCLSEG_OK) {
            json_array_append_new(per, json_real(sec.fastest_s * 1e3));
            json_array_append_new(reasons, json_null());
        } else {
            json_array_append_new(per, json_null());
            json_array_append_new(reasons, json_string(why));
        }
    }
    oclseg_ctx_free(ctx);
    json_t *res = st == OCLSEG_OK
                      ? json_pack("{s:b, s:o, s:o}", "ok", 1, "per_shape_fastest_ms", per,
                                  "per_shape_reason", reasons)
                      : json_pack("{s:b, s:s}", "ok", 0, "reason",
                                  why[0] ? why : oclseg_status_str(st));
    if (st != OCLSEG_OK) json_decref(per), json_decref(reasons);
    int written = tune_dump_json(res, result_path);
    free(shapes);
    free(ref);
    return st != OCLSEG_OK ? st : written;
}
