/* The tuning search: record shapes -> baseline -> CLBlast tuners + hand-picked sets -> confirm ->
 * backend per shape (backends.c) -> persist. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oclseg/env.h"
#include "oclseg/runtime.h"
#include "oclseg/safetensors.h"
#include "oclseg/stop.h"
#include "oclseg/tune.h"
#include "oclseg/tuning.h"
#include "tune/tune_internal.h"

/* Every constant the search's choices depend on, in one place (measured on PoCL, 2 cores). */
typedef struct tune_policy {
    double record_timeout_s;     /* recording one training step's shapes */
    double min_tuner_budget_s;   /* a CLBlast tuner runs only with at least this much time left */
    /* XgemmDirect on the representative shape (sides rounded up to 64, at most direct_max_side):
     * fraction 0.002 took 3 s at 256^3, 0.01 over 300 s (one configuration can take minutes to
     * compile or run, hence the kill timeout); the fraction grows with the time granted. */
    double direct_share;         /* of the time left */
    double direct_fraction_per_minute, direct_fraction_max;
    size_t direct_max_side;
    /* Xgemm on xgemm_side^3: fraction 0.005 took 267 s at 512^3. */
    double xgemm_share;
    double xgemm_fraction_ref, xgemm_seconds_ref, xgemm_fraction_min, xgemm_fraction_max;
    size_t xgemm_side;
    double tuner_grace_s;        /* added to a tuner's kill timeout */
    double noise;                /* within this of the fastest, prefer the higher 1024^3 ceiling */
    double min_gain;             /* a winner must beat the defaults by this to be kept */
    /* A shape leaves the device's default backend (the path every test runs) only when the other
     * is faster by more than this share. Per-shape times are single calls, far noisier than the
     * candidates' weighted totals: the fastest of 3 runs differed between two identical trials by
     * a median of 33% (p90 1.2-2.2x) on PoCL with both cores shared (load ~5), while at 128x128,
     * batch 16 CLBlast/own is 0.8x on 1 shape, 1.7-2.9x on 4 and 3-31x (median 12x) on 70. 25%
     * keeps near-ties on the default; a true loss from a switch needs noise beyond 1.33x. */
    double backend_margin;
} tune_policy;

static const tune_policy POLICY = {
    .record_timeout_s = 600, .min_tuner_budget_s = 30,
    .direct_share = 0.45, .direct_fraction_per_minute = 0.002, .direct_fraction_max = 0.006,
    .direct_max_side = 512,
    .xgemm_share = 0.6, .xgemm_fraction_ref = 0.005, .xgemm_seconds_ref = 267,
    .xgemm_fraction_min = 0.0005, .xgemm_fraction_max = 0.005, .xgemm_side = 256,
    .tuner_grace_s = 60, .noise = 0.02, .min_gain = 0.03,
    .backend_margin = 0.25,
};

/* Hand-picked conservative XgemmDirect sets (GEMMK=0; sizes satisfy CLBlast's divisibility
 * rules), always tried whatever the budget. */
static const char *const DIRECT_SETS[][2] = {
    {"direct WGD=32 VW=4",
     "KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=4 VWND=4 WGD=32"},
};

void tune_say(const tune_state *S, const char *fmt, ...) {
    if (!S->o->progress) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    S->o->progress(S->o->progress_user, line);
}

static double remaining(const tune_state *S) {
    return S->o->budget_s - (oclseg_now_s() - S->t_start);
}

void tune_file_in(const tune_state *S, char *out, size_t n, const char *fmt, int index) {
    char name[64];
    snprintf(name, sizeof name, fmt, index);
    snprintf(out, n, "%s/%s", S->dir, name);
}

/* Reads a trial child's result file into c (ok, ms, ceiling or the reason). */
static void read_trial_result(const char *path, int spawned_ok, candidate *c) {
    json_error_t e;
    json_t *r = json_load_file(path, 0, &e);
    if (!r) {
        if (spawned_ok || !c->why[0]) snprintf(c->why, sizeof c->why, "no result: %s", e.text);
        return;
    }
    if (spawned_ok && json_is_true(json_object_get(r, "ok"))) {
        c->ok = 1;
        c->ms = json_number_value(json_object_get(r, "weighted_ms"));
        c->ceiling = json_number_value(json_object_get(r, "sgemm_1024_gflops"));
    } else if (json_is_string(json_object_get(r, "reason"))) {
        snprintf(c->why, sizeof c->why, "%s", json_string_value(json_object_get(r, "reason")));
    }
    json_decref(r);
}

candidate *tune_run_trial(tune_state *S, const char *name, const oclseg_tuning *t) {
    if (S->nc == MAX_CANDIDATES) {
        tune_say(S, "  %-28s skipped: no candidate slot left (%d)", name, MAX_CANDIDATES);
        return NULL;
    }
    candidate *c = &S->c[S->nc++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->t = *t;
    char cand[320], result[320], log[320], rep[16], note[600];
    tune_file_in(S, cand, sizeof cand, "cand%d.json", S->nc);
    tune_file_in(S, result, sizeof result, "result%d.json", S->nc);
    tune_file_in(S, log, sizeof log, "trial%d.log", S->nc);
    snprintf(rep, sizeof rep, "%d", S->o->repeats);
    char *text = oclseg_tuning_format(t, 1);
    if (!text || oclseg_file_write_atomic(cand, text, strlen(text)) != OCLSEG_OK) {
        free(text);
        snprintf(c->why, sizeof c->why, "cannot write %s", cand);
        tune_say(S, "  %-28s REJECTED: %s", c->name, c->why);
        return c;
    }
    free(text);
    char *args[] = {"--device", S->device_arg, "--trial", cand, "--shapes", S->shapes_path,
                    "--result", result, "--repeats", rep, NULL};
    int st = tune_spawn(S->o->exe, args, log, S->o->trial_timeout_s, c->why, sizeof c->why,
                        &c->took);
    read_trial_result(result, st == OCLSEG_OK, c);
    if (c->ok)
        tune_say(S, "  %-28s %9.1f ms  (1024^3 SGEMM %.1f GFLOP/s; trial %.0f s)", c->name,
                 c->ms, c->ceiling, c->took);
    else
        tune_say(S, "  %-28s REJECTED: %s (%s)", c->name, c->why,
                 tune_log_note(log, note, sizeof note));
    return c;
}

/* Runs CLBlast's tuner for `kernel` in a child; OCLSEG_OK and *out on success. */
static int run_tuner(tune_state *S, const char *kernel, size_t m, size_t n, size_t k,
                     double fraction, double timeout_s, oclseg_tuning *out) {
    char result[320], log[320], dims[3][24], frac[32], note[600];
    snprintf(result, sizeof result, "%s/tuner-%s.json", S->dir, kernel);
    snprintf(log, sizeof log, "%s/tuner-%s.log", S->dir, kernel);
    snprintf(dims[0], 24, "%zu", m), snprintf(dims[1], 24, "%zu", n), snprintf(dims[2], 24, "%zu", k);
    snprintf(frac, sizeof frac, "%g", fraction);
    char *args[] = {"--device", S->device_arg, "--tuner", (char *)kernel, "--m", dims[0], "--n",
                    dims[1], "--k", dims[2], "--fraction", frac, "--result", result, NULL};
    char why[512] = "";
    double took = 0;
    tune_say(S, "  CLBlast tuner %s on %zux%zux%zu, fraction %g (at most %.0f s) ...", kernel, m,
             n, k, fraction, timeout_s);
    int st = tune_spawn(S->o->exe, args, log, timeout_s, why, sizeof why, &took);
    char *text = NULL;
    size_t len = 0;
    if (st == OCLSEG_OK) st = oclseg_read_file(result, 0, &text, &len);
    if (st == OCLSEG_OK) st = oclseg_tuning_parse(text, len, 1, out, why, sizeof why);
    free(text);
    if (st != OCLSEG_OK) {
        tune_say(S, "    tuner %s gave no candidate: %s (%s)", kernel,
                 why[0] ? why : "no result", tune_log_note(log, note, sizeof note));
        return st;
    }
    tune_say(S, "    tuner %s finished in %.0f s", kernel, took);
    return OCLSEG_OK;
}

/* spec: "NAME=V NAME=V ..." into kernel slot ki of t. */
static void set_params(oclseg_tuning *t, int ki, const char *spec) {
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
static size_t at_most(size_t x, size_t limit) { return x < limit ? x : limit; }

/* Phase 1: the GEMM shapes of one training step, recorded in a child. */
static int record_shapes(tune_state *S, oclseg_tune_report *r) {
    char bs[16], ss[16], why[512] = "", log[320], note[600];
    snprintf(bs, sizeof bs, "%d", S->o->batch), snprintf(ss, sizeof ss, "%d", S->o->size);
    snprintf(log, sizeof log, "%s/record.log", S->dir);
    char *args[] = {"--device", S->device_arg, "--record", S->shapes_path, "--batch", bs,
                    "--size", ss, NULL};
    double took = 0;
    int st = tune_spawn(S->o->exe, args, log, POLICY.record_timeout_s, why, sizeof why, &took);
    if (st == OCLSEG_OK)
        st = tune_shapes_load(S->shapes_path, &S->shapes, &S->nshapes, &S->default_own);
    if (st == OCLSEG_ERR_INTERRUPTED && oclseg_stop_signal()) return st;
    if (st != OCLSEG_OK) {
        OCLSEG_ERROR("oclseg tune: recording the GEMM shapes failed: %s (%s)",
                     why[0] ? why : oclseg_status_str(st), tune_log_note(log, note, sizeof note));
        return st;
    }
    r->shapes = S->nshapes;
    for (int i = 0; i < S->nshapes; i++) r->calls += S->shapes[i].calls;
    tune_say(S, "recorded %d GEMM shapes, %ld GEMM calls per step (batch %d, %dx%d) in %.0f s",
             S->nshapes, r->calls, S->o->batch, S->o->size, S->o->size, took);
    return OCLSEG_OK;
}

/* The shape with the largest share of the baseline's time: the tuners' representative size. */
static const oclseg_gemm_shape *representative_shape(tune_state *S) {
    char path[320];
    tune_file_in(S, path, sizeof path, "result%d.json", 1);
    json_error_t e;
    json_t *res = json_load_file(path, 0, &e), *per = json_object_get(res, "per_shape_ms");
    int top = 0;
    double top_ms = -1;
    for (int i = 0; i < S->nshapes; i++) {
        double ms = json_number_value(json_array_get(per, (size_t)i)) * (double)S->shapes[i].calls;
        if (ms > top_ms) top_ms = ms, top = i;
    }
    json_decref(res);
    const oclseg_gemm_shape *rep = &S->shapes[top];
    tune_say(S, "  (largest share: %zux%zux%zu batch %d, %ld calls, %.1f ms)", rep->m, rep->n,
             rep->k, rep->batch, rep->calls, top_ms);
    return rep;
}

/* Phase 3: CLBlast's own tuners, their search fractions fitted to the time left. */
static void run_tuners(tune_state *S, const oclseg_gemm_shape *rep, oclseg_tuning *xgemm,
                       int *have_xgemm) {
    const tune_policy *P = &POLICY;
    double left = remaining(S) - 4 * S->trial_cost;
    if (left > P->min_tuner_budget_s) {
        double tmax = left * P->direct_share;
        double fraction = P->direct_fraction_per_minute * (tmax > 60 ? tmax / 60 : 1);
        if (fraction > P->direct_fraction_max) fraction = P->direct_fraction_max;
        size_t m = at_most(round_up(rep->m, 64), P->direct_max_side);
        size_t n = at_most(round_up(rep->n, 64), P->direct_max_side);
        size_t k = at_most(round_up(rep->k, 64), P->direct_max_side);
        oclseg_tuning direct;
        if (run_tuner(S, "XgemmDirect", m, n, k, fraction, tmax + P->tuner_grace_s, &direct) ==
                OCLSEG_OK &&
            remaining(S) > S->trial_cost)
            tune_run_trial(S, "tuned XgemmDirect", &direct);
    }
    left = remaining(S) - 2 * S->trial_cost;
    *have_xgemm = 0;
    if (left > P->min_tuner_budget_s) {
        double tmax = left * P->xgemm_share;
        double fraction = P->xgemm_fraction_ref * tmax / P->xgemm_seconds_ref;
        if (fraction < P->xgemm_fraction_min) fraction = P->xgemm_fraction_min;
        if (fraction > P->xgemm_fraction_max) fraction = P->xgemm_fraction_max;
        *have_xgemm = run_tuner(S, "Xgemm", P->xgemm_side, P->xgemm_side, P->xgemm_side, fraction,
                                tmax + P->tuner_grace_s, xgemm) == OCLSEG_OK;
    }
}

static candidate *fastest(tune_state *S) {
    candidate *best = &S->c[0];
    for (int i = 0; i < S->nc; i++)
        if (S->c[i].ok && S->c[i].ms < best->ms) best = &S->c[i];
    return best;
}

/* Phases 4-5: hand-picked sets, then the best direct set with the tuned Xgemm (alone and with a
 * lower threshold for the indirect path, so big model GEMMs use the tuned Xgemm kernel). */
static void run_combinations(tune_state *S, const oclseg_tuning *xgemm, int have_xgemm) {
    for (size_t i = 0; i < sizeof DIRECT_SETS / sizeof DIRECT_SETS[0]; i++) {
        oclseg_tuning t;
        memset(&t, 0, sizeof t);
        set_params(&t, 1, DIRECT_SETS[i][1]);
        tune_run_trial(S, DIRECT_SETS[i][0], &t);
    }
    if (!have_xgemm) return;
    oclseg_tuning best = fastest(S)->t;
    static const size_t thresholds[] = {0, 384};
    for (int i = 0; i < 2 && remaining(S) > S->trial_cost; i++) {
        oclseg_tuning t = best;
        t.params[0] = xgemm->params[0];
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
        tune_run_trial(S, name, &t);
    }
}

/* Phase 6: the fastest (within the noise, the higher ceiling), confirmed back to back against
 * the defaults: other load on the machine moves single trials; each side keeps its faster run.
 * Returns the chosen candidate (the baseline S->c[0] when nothing beats it). */
static candidate *choose(tune_state *S, double *base_ms, double *best_ms) {
    candidate *base = &S->c[0], *best = fastest(S);
    for (int i = 0; i < S->nc; i++)
        if (S->c[i].ok && i != 0 && S->c[i].ms <= (1 + POLICY.noise) * best->ms &&
            S->c[i].ceiling > best->ceiling)
            best = &S->c[i];
    *base_ms = base->ms;
    *best_ms = best->ms;
    if (best == base) return base;
    tune_say(S, "confirming (defaults, then the best again):");
    oclseg_tuning none, bt = best->t;
    memset(&none, 0, sizeof none);
    char bname[64];
    snprintf(bname, sizeof bname, "%s", best->name);
    int bi = (int)(best - S->c);
    candidate *b2 = tune_run_trial(S, "CLBlast defaults", &none);
    if (b2 && b2->ok && b2->ms < *base_ms) *base_ms = b2->ms;
    candidate *c2 = b2 ? tune_run_trial(S, bname, &bt) : NULL;
    best = &S->c[bi];
    if (c2 && !c2->ok) {
        best->ok = 0;
        return base;
    }
    if (c2 && c2->ms < *best_ms) *best_ms = c2->ms;
    return best;
}

/* Phase 9: the file, when the parameters (a clear win only: trial-to-trial noise of these
 * medians is ~1-2% here) or some shape's backend differ from the defaults; else no file. */
static int persist(tune_state *S, const oclseg_device_info *dev, oclseg_tuning *out,
                   int backends_differ, oclseg_tune_report *r) {
    if (!r->params_chosen && !backends_differ) {
        if (unlink(r->path) == 0) tune_say(S, "removed the older tuning file %s", r->path);
        return OCLSEG_OK;
    }
    if (!backends_differ) out->nbackends = 0; /* the device's backend for every shape anyway */
    oclseg_tuning_key(dev, out);
    out->baseline_ms = r->baseline_ms;
    out->tuned_ms = r->params_chosen ? r->best_ms : r->baseline_ms;
    char dir[OCLSEG_PATH_MAX];
    oclseg_tuning_dir(dir, sizeof dir);
    if (oclseg_mkdir_p(dir) != OCLSEG_OK) {
        OCLSEG_ERROR("oclseg tune: cannot create %s: %s", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    char *text = oclseg_tuning_format(out, 0);
    int st = text ? oclseg_file_write_atomic(r->path, text, strlen(text))
                  : OCLSEG_ERR_OUT_OF_MEMORY;
    free(text);
    r->written = st == OCLSEG_OK;
    return st;
}

/* Phases 2-8 after the shapes are recorded: the baseline, tuners, combinations, the choice of
 * parameters, the backend per shape; then the file. */
static int search(tune_state *S, const oclseg_device_info *dev, oclseg_tune_report *r) {
    oclseg_tuning *none = calloc(1, sizeof *none), *out = calloc(1, sizeof *out);
    oclseg_tuning *xgemm = calloc(1, sizeof *xgemm);
    int st = none && out && xgemm ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    tune_say(S, "candidates (weighted GEMM time of one step, median of %d runs per shape):",
             S->o->repeats);
    candidate *base = st == OCLSEG_OK ? tune_run_trial(S, "CLBlast defaults", none) : NULL;
    if (st == OCLSEG_OK && oclseg_stop_signal()) st = OCLSEG_ERR_INTERRUPTED;
    if (st == OCLSEG_OK && !base->ok) {
        OCLSEG_ERROR("oclseg tune: the defaults themselves fail: %s", base->why);
        st = OCLSEG_ERR_CLBLAST;
    }
    if (st == OCLSEG_OK) {
        S->trial_cost = S->c[0].took;
        int have_xgemm = 0;
        run_tuners(S, representative_shape(S), xgemm, &have_xgemm);
        if (!oclseg_stop_signal()) run_combinations(S, xgemm, have_xgemm);
    }
    if (st == OCLSEG_OK && oclseg_stop_signal()) st = OCLSEG_ERR_INTERRUPTED;
    if (st == OCLSEG_OK) {
        double base_ms, best_ms;
        candidate *best = choose(S, &base_ms, &best_ms);
        for (int i = 0; i < S->nc; i++) r->rejected += !S->c[i].ok;
        r->candidates = S->nc;
        snprintf(r->best, sizeof r->best, "%s", best->name);
        r->baseline_ms = base_ms;
        r->best_ms = best_ms;
        r->baseline_gflops = S->c[0].ceiling;
        r->best_gflops = best->ceiling;
        r->params_chosen = best != &S->c[0] && best_ms <= (1 - POLICY.min_gain) * base_ms;
        *out = r->params_chosen ? best->t : *none;
        int differ =
            oclseg_stop_signal() ? 0 : tune_choose_backends(S, POLICY.backend_margin, out, r);
        r->seconds = oclseg_now_s() - S->t_start;
        /* a stop during the last phases: nothing is written from an incomplete search */
        st = oclseg_stop_signal() ? OCLSEG_ERR_INTERRUPTED : persist(S, dev, out, differ, r);
    }
    free(none), free(out), free(xgemm);
    return st;
}

void oclseg_tune_options_default(oclseg_tune_options *o) {
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->size = 128;
    o->repeats = 3;
    o->budget_s = 300;
    o->trial_timeout_s = 300;
}

int oclseg_tune(const oclseg_tune_options *o, oclseg_tune_report *r) {
    memset(r, 0, sizeof *r);
    oclseg_device_info dev;
    TRY(oclseg_device_choose(o->device, &dev));
    tune_state *S = calloc(1, sizeof *S);
    if (!S) return OCLSEG_ERR_OUT_OF_MEMORY;
    S->o = o;
    S->t_start = oclseg_now_s();
    snprintf(S->device_arg, sizeof S->device_arg, "%d:%d", dev.platform_index, dev.device_index);
    snprintf(S->dir, sizeof S->dir, "/tmp/oclseg-tune-XXXXXX");
    oclseg_stop_catch(); /* SIGINT/SIGTERM: the running child is killed, the search ends */
    if (!mkdtemp(S->dir)) {
        OCLSEG_ERROR("oclseg tune: cannot create a work directory: %s", strerror(errno));
        oclseg_stop_release();
        free(S);
        return OCLSEG_ERR_IO;
    }
    snprintf(r->work_dir, sizeof r->work_dir, "%s", S->dir);
    snprintf(S->shapes_path, sizeof S->shapes_path, "%s/shapes.json", S->dir);
    /* children measure against CLBlast's defaults, whatever tuning file exists */
    setenv("OCLSEG_NO_TUNING", "1", 1);
    oclseg_env_reload();
    oclseg_tuning_path(&dev, r->path, sizeof r->path);
    tune_say(S, "tuning GEMM for %s (%s, driver %s), budget %.0f s; work files in %s", dev.name,
             dev.platform_version, dev.driver_version, o->budget_s, S->dir);
    int st = record_shapes(S, r);
    if (st == OCLSEG_OK) st = search(S, &dev, r);
    oclseg_stop_release();
    if (oclseg_remove_flat_dir(S->dir) != OCLSEG_OK)
        tune_say(S, "warning: cannot remove the work folder %s: %s", S->dir, strerror(errno));
    free(S->shapes);
    free(S);
    return st;
}
