/* The tuner's last phase: per recorded GEMM shape, CLBlast (kept parameters) or the own kernels. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/status.h"
#include "oclseg/tune.h"
#include "oclseg/tuning.h"
#include "tune/tune_internal.h"

/* Per shape: ms per call on each backend (own < 0: rejected, the reason in why). */
typedef struct shape_times {
    double *clblast, *own;
    char (*why)[512];
} shape_times;

/* Reads a JSON array of n numbers (null: -1) into out; 1 when it has n entries. */
static int read_ms(json_t *arr, int n, double *out) {
    if (json_array_size(arr) != (size_t)n) return 0;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        out[i] = json_is_number(v) ? json_number_value(v) : -1;
    }
    return 1;
}

/* CLBlast with the kept parameters, in a trial child (validated as every candidate). */
static int time_clblast(tune_state *S, const oclseg_tuning *params, double *ms) {
    const int tuned = params->has[0] || params->has[1] || params->has[2];
    candidate *c = tune_run_trial(S, tuned ? "CLBlast, chosen parameters" : "CLBlast defaults",
                                  params);
    if (!c || !c->ok) return 0;
    char path[320];
    tune_file_in(S, path, sizeof path, "result%d.json", (int)(c - S->c) + 1);
    json_t *res = json_load_file(path, 0, NULL);
    int ok = read_ms(json_object_get(res, "per_shape_fastest_ms"), S->nshapes, ms);
    json_decref(res);
    return ok;
}

/* Every shape on the own kernels in one child (`oclseg tune --own`): a crash or timeout rejects
 * them for every shape, a wrong or failed result for that shape. */
static int time_own(tune_state *S, shape_times *t) {
    char result[320], log[320], rep[16], why[512] = "", note[600];
    tune_file_in(S, result, sizeof result, "own%d.json", 1);
    tune_file_in(S, log, sizeof log, "own%d.log", 1);
    snprintf(rep, sizeof rep, "%d", S->o->repeats);
    char *args[] = {"--device", S->device_arg, "--own", "--shapes", S->shapes_path, "--result",
                    result, "--repeats", rep, NULL};
    double took = 0;
    int st = tune_spawn(S->o->exe, args, log, S->o->trial_timeout_s, why, sizeof why, &took);
    json_error_t e;
    json_t *res = st == OCLSEG_OK ? json_load_file(result, 0, &e) : NULL;
    json_t *reasons = json_object_get(res, "per_shape_reason");
    if (st == OCLSEG_OK &&
        !read_ms(json_object_get(res, "per_shape_fastest_ms"), S->nshapes, t->own)) {
        snprintf(why, sizeof why, "no result: %s", res ? "per_shape_fastest_ms malformed" : e.text);
        st = OCLSEG_ERR_FORMAT;
    }
    for (int i = 0; i < S->nshapes; i++) {
        if (st != OCLSEG_OK) t->own[i] = -1;
        const char *r = json_string_value(json_array_get(reasons, (size_t)i));
        snprintf(t->why[i], sizeof t->why[i], "%s", st != OCLSEG_OK ? why : r ? r : "no reason");
    }
    json_decref(res);
    if (st != OCLSEG_OK)
        tune_say(S, "  own kernels REJECTED for every shape: %s (%s)", why,
                 tune_log_note(log, note, sizeof note));
    else
        tune_say(S, "  own kernels: trial finished in %.0f s", took);
    return st == OCLSEG_OK;
}

/* OCLSEG_GEMM_OWN or _CLBLAST for shape i: the default backend unless the other one is valid
 * and faster by more than margin. */
static int choose_one(const shape_times *t, int i, int default_own, double margin) {
    if (t->own[i] < 0) return OCLSEG_GEMM_CLBLAST;
    const double def = default_own ? t->own[i] : t->clblast[i];
    const double other = default_own ? t->clblast[i] : t->own[i];
    const int switch_over = other < (1 - margin) * def;
    return default_own != switch_over ? OCLSEG_GEMM_OWN : OCLSEG_GEMM_CLBLAST;
}

static void print_table(tune_state *S, const shape_times *t, const oclseg_tuning *out,
                        int default_own, double margin, int own_ran) {
    tune_say(S, "backend per shape (ms per call, fastest of %d runs; device default: %s, kept "
                "unless the other is %.0f%% faster; * differs from it):", S->o->repeats,
             default_own ? "own kernels" : "CLBlast", 100 * margin);
    tune_say(S, "  %-34s %6s %10s %10s  %s", "shape", "calls", "CLBlast", "own", "choice");
    for (int i = 0; i < out->nbackends; i++) {
        char name[96], own[24];
        oclseg_gemm_shape_name(&S->shapes[i], name, sizeof name);
        if (t->own[i] < 0) snprintf(own, sizeof own, "rejected");
        else snprintf(own, sizeof own, "%.3f", t->own[i]);
        const int is_own = out->backends[i].backend == OCLSEG_GEMM_OWN;
        tune_say(S, "  %-34s %6ld %10.3f %10s  %s%s", name, S->shapes[i].calls, t->clblast[i], own,
                 is_own ? "own" : "CLBlast", is_own == default_own ? "" : " *");
    }
    for (int i = 0; own_ran && i < out->nbackends; i++) /* else one reason for all, said */
        if (t->own[i] < 0) tune_say(S, "  own kernels rejected for shape %d: %s", i, t->why[i]);
}

/* Weighted step totals with the default backend everywhere and as chosen (a shape whose own
 * trial failed counts at its CLBlast time either way). */
static void totals(const tune_state *S, const shape_times *t, const oclseg_tuning *out,
                   int default_own, oclseg_tune_report *r) {
    double all_cl = 0;
    for (int i = 0; i < out->nbackends; i++) {
        const double calls = (double)S->shapes[i].calls;
        const double own = t->own[i] >= 0 ? t->own[i] : t->clblast[i];
        all_cl += calls * t->clblast[i];
        r->default_backends_ms += calls * (default_own ? own : t->clblast[i]);
        r->chosen_backends_ms +=
            calls * (out->backends[i].backend == OCLSEG_GEMM_OWN ? own : t->clblast[i]);
    }
    tune_say(S, "weighted GEMM time of one step: %.1f ms with the device default (%s) for every "
                "shape, %.1f ms as chosen (%.2fx); %.1f ms all on CLBlast",
             r->default_backends_ms, r->default_backend, r->chosen_backends_ms,
             r->default_backends_ms / r->chosen_backends_ms, all_cl);
}

int tune_choose_backends(tune_state *S, double margin, oclseg_tuning *out,
                         oclseg_tune_report *r) {
    const int n = S->nshapes < OCLSEG_TUNING_MAX_BACKENDS ? S->nshapes : OCLSEG_TUNING_MAX_BACKENDS;
    const int default_own = S->default_own;
    snprintf(r->default_backend, sizeof r->default_backend, "%s",
             default_own ? "own kernels" : "CLBlast");
    out->nbackends = 0;
    shape_times t = {calloc((size_t)S->nshapes + 1, sizeof(double)),
                     calloc((size_t)S->nshapes + 1, sizeof(double)),
                     calloc((size_t)S->nshapes + 1, sizeof *t.why)};
    int differ = 0;
    tune_say(S, "backend per shape: CLBlast (parameters as kept) against oclseg's own kernels, "
                "each validated against CLBlast's defaults:");
    if (!t.clblast || !t.own || !t.why) {
        tune_say(S, "  out of memory; every shape keeps the device's backend");
    } else if (!time_clblast(S, out, t.clblast)) {
        tune_say(S, "  no CLBlast times to compare with; every shape keeps the device's backend");
    } else {
        const int own_ran = time_own(S, &t);
        if (n < S->nshapes)
            tune_say(S, "  only the first %d of %d shapes get a choice (the file's limit)", n,
                     S->nshapes);
        for (int i = 0; i < n; i++) {
            out->backends[i].shape = S->shapes[i];
            out->backends[i].shape.calls = 0;
            out->backends[i].backend = choose_one(&t, i, default_own, margin);
            r->own_rejected += t.own[i] < 0;
            if (out->backends[i].backend == OCLSEG_GEMM_OWN) r->backend_own++;
            else r->backend_clblast++;
            differ |= (out->backends[i].backend == OCLSEG_GEMM_OWN) != default_own;
        }
        out->nbackends = n;
        print_table(S, &t, out, default_own, margin, own_ran);
        totals(S, &t, out, default_own, r);
    }
    free(t.clblast), free(t.own), free(t.why);
    return differ;
}
