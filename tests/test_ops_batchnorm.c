/* Tests BatchNorm2d forward (train/eval, running statistics) and backward (train/eval) against
 * double-precision references on every device, plus argument errors and NULL outputs.
 *
 * Tolerances. u = FLT_EPSILON (2^-23, twice float32's unit roundoff, for margin). A float32
 * value produced by a chain of L dependent roundings is within ~L*u (relative to the magnitudes
 * involved) of exact. The longest chain in the kernels is a work-item's sequential loop (<= 16
 * values) + the local-memory tree (<= 8 levels, REDUCE_WG <= 256) + the sequential merge of the
 * chunk partials (<= M/512 + 1: chunks hold 16 * wg >= 512 values) + a few elementwise ops, so
 * we use L = 32 + M/512, T = L*u.
 * In the training forward the batch mean is itself rounded (error ~T*max|x|), which shifts every
 * x - mean and hence the variance, invstd, xhat and y by ~T*kappa relative, kappa =
 * max|x| * max invstd (the condition number of the statistics; ~175 for the 100 +- 1 input).
 * E[x^2] - E[x]^2 in float would instead be off by ~u*kappa^2 (~0.004 relative for 100 +- 1)
 * and fails these bounds (checked: save_invstd 2.6x over at 100 +- 1; the same formula per
 * work-item with Chan merges after it 2.2x over at 1000 +- 1). The backward takes mean/invstd
 * as inputs, so there x - mean is one correctly rounded subtraction and no kappa enters; sums
 * are bounded by T * sum|terms|. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const float MOMENTUM = 0.1f, EPS = 1e-5f;

typedef struct shape {
    int n, c, h, w;
    float offset; /* 0: zero-mean-ish data; else data = offset +- 1 (cancellation test) */
    float spread; /* 0: as above; else the data times spread, the variances (running ones too)
                     times spread^2: var << eps, where eps decides invstd */
} shape;

/* Odd sizes (nothing a multiple of 4/8); M = N*H*W from 2 to ~16k so reductions span one
 * partial work-group, several items per work-item, and several chunks per channel. */
static const shape FULL_SHAPES[] = {
    {3, 5, 7, 9, 0.0f, 0.0f},    /* the standard odd shape, M = 189 */
    {2, 3, 37, 29, 0.0f, 0.0f},  /* M = 2146: several chunks per channel (1024 each at wg 64) */
    {3, 5, 7, 9, 100.0f, 0.0f},  /* values 100 +- 1: catastrophic cancellation in E[x^2]-E[x]^2 */
    {2, 3, 37, 29, 1000.0f, 0.0f}, /* 1000 +- 1: kappa ~1700, E[x^2] - E[x]^2 is off by ~20% */
    {4, 19, 2, 3, 0.0f, 0.0f},   /* many channels, tiny spatial size (M = 24 < work-group) */
    {2, 3, 1, 1, 0.0f, 0.0f},    /* M = 2, the smallest legal training batch */
    {4, 2, 61, 67, 0.0f, 0.0f},  /* M = 16348: many chunks */
    {2, 240, 2, 2, 0.0f, 0.0f},  /* MobileNetV2 width 0.25 at 64x64, block 17: many channels,
                                    M = 8 */
    {2, 3, 5, 7, 0.0f, 1e-3f}, /* variances ~1e-7, 1/100 of eps: 1/sqrt(var + eps) ~ 310, not
                                  1/(sqrt(var) + eps) ~ 3000 */
};
/* Oclgrind: the same cases, smaller (M = 1334 still spans two chunks at WG 64). */
static const shape SMALL_SHAPES[] = {
    {3, 5, 7, 9, 0.0f, 0.0f},  {2, 2, 23, 29, 0.0f, 0.0f}, {3, 5, 7, 9, 100.0f, 0.0f},
    {2, 2, 23, 29, 1000.0f, 0.0f}, {4, 19, 2, 3, 0.0f, 0.0f}, {2, 3, 1, 1, 0.0f, 0.0f},
    {2, 3, 5, 7, 0.0f, 1e-3f},
};

static const shape *shapes(size_t *count) {
    return HARNESS_CASES(FULL_SHAPES, SMALL_SHAPES, count);
}

static size_t numel(shape s) { return (size_t)s.n * s.c * s.h * s.w; }
static size_t spatial(shape s) { return (size_t)s.h * s.w; }
static size_t per_channel(shape s) { return (size_t)s.n * s.h * s.w; }
/* Index of element (n, c, i) in NCHW. */
static size_t at(shape s, int n, int c, size_t i) { return ((size_t)n * s.c + c) * spatial(s) + i; }

static double chain_tol(shape s) { return (32.0 + (double)per_channel(s) / 512.0) * FLT_EPSILON; }

static double max_abs_f(const float *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
    return m;
}
static double max_abs_d(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Input data: each channel has its own spread (0.5..2) and, without offset, a small mean; with
 * an offset, values are offset +- 1; all of it times s.spread when set. */
static void make_x(shape s, float *x, uint64_t seed) {
    harness_fill_uniform(x, numel(s), -1.0f, 1.0f, seed);
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (size_t i = 0; i < spatial(s); i++) {
                float *v = &x[at(s, n, c, i)];
                if (s.offset != 0.0f)
                    *v = s.offset + *v;
                else
                    *v = (0.5f + 0.375f * (float)(c % 5)) * *v + 0.25f * (float)(c % 3) - 0.25f;
                if (s.spread != 0.0f) *v *= s.spread;
            }
}

/* Running variances in [0.25, 2] (times spread^2 for a small-spread shape). */
static void make_running_var(shape s, float *var, uint64_t seed) {
    const float scale = s.spread != 0.0f ? s.spread * s.spread : 1.0f;
    harness_fill_uniform(var, (size_t)s.c, 0.25f * scale, 2.0f * scale, seed);
}

/* gamma in [0.5, 1.5] with one negative value, beta in [-0.5, 0.5]. */
static void make_affine(int c, float *gamma, float *beta, uint64_t seed) {
    harness_fill_uniform(gamma, (size_t)c, 0.5f, 1.5f, seed);
    harness_fill_uniform(beta, (size_t)c, -0.5f, 0.5f, seed + 1);
    if (c > 1) gamma[1] = -0.75f;
}

/* ---- double-precision references ------------------------------------------------------- */

/* Two-pass per-channel mean and biased variance. */
static void ref_stats(shape s, const double *x, double *mean, double *var_biased) {
    const double m = (double)per_channel(s);
    for (int c = 0; c < s.c; c++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < spatial(s); i++) sum += x[at(s, n, c, i)];
        mean[c] = sum / m;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < spatial(s); i++) {
                double d = x[at(s, n, c, i)] - mean[c];
                sq += d * d;
            }
        var_biased[c] = sq / m;
    }
}

/* y = (x - mean) * invstd * gamma + beta. */
static void ref_apply(shape s, const double *x, const double *mean, const double *invstd,
                      const double *gamma, const double *beta, double *y) {
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (size_t i = 0; i < spatial(s); i++) {
                size_t k = at(s, n, c, i);
                y[k] = (x[k] - mean[c]) * invstd[c] * gamma[c] + beta[c];
            }
}

/* Training forward: batch statistics, invstd, y. */
static void ref_forward_train(shape s, const double *x, const double *gamma, const double *beta,
                              double eps, double *y, double *mean, double *var_biased,
                              double *invstd) {
    ref_stats(s, x, mean, var_biased);
    for (int c = 0; c < s.c; c++) invstd[c] = 1.0 / sqrt(var_biased[c] + eps);
    ref_apply(s, x, mean, invstd, gamma, beta, y);
}

/* Gradients given the mean and invstd used by the forward. train != 0: batch statistics (dx
 * includes the paths through mean and variance); else running statistics (constants). */
static void ref_backward(shape s, int train, const double *x, const double *dy,
                         const double *gamma, const double *mean, const double *invstd,
                         double *dx, double *dgamma, double *dbeta) {
    const double m = (double)per_channel(s);
    for (int c = 0; c < s.c; c++) {
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < spatial(s); i++) {
                size_t k = at(s, n, c, i);
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean[c]) * invstd[c];
            }
        dgamma[c] = sum_dy_xhat;
        dbeta[c] = sum_dy;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < spatial(s); i++) {
                size_t k = at(s, n, c, i);
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] = train ? gamma[c] * invstd[c] / m * (m * dy[k] - sum_dy - xhat * sum_dy_xhat)
                              : dy[k] * gamma[c] * invstd[c];
            }
    }
}

/* The loss sum(w * y) of the reference training forward at the current x, gamma, beta. */
typedef struct fd_state {
    shape s;
    const double *x, *w, *gamma, *beta;
    double *y, *mean, *var, *invstd;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    ref_forward_train(f->s, f->x, f->gamma, f->beta, 1e-5, f->y, f->mean, f->var, f->invstd);
    double loss = 0;
    for (size_t j = 0; j < numel(f->s); j++) loss += f->w[j] * f->y[j];
    return loss;
}

/* The reference training backward against central differences of the reference forward, for
 * the loss L = sum(w * y): dL/dx, dL/dgamma, dL/dbeta. In double, h = 1e-6 gives truncation
 * error ~h^2 * |L'''| ~ 1e-12 and cancellation error ~1e-16 * |L| / h ~ 1e-9, so 1e-7 abs +
 * 1e-6 rel is ample while a wrong formula (e.g. a missing term, relative error O(1)) fails. */
START_TEST(reference_backward_matches_finite_differences) {
    const shape s = {2, 3, 2, 3, 0.0f, 0.0f};
    const size_t count = numel(s);
    float xf[36], wf[36], gf[3], bf[3];
    make_x(s, xf, 11);
    harness_fill_uniform(wf, count, -1.0f, 1.0f, 12);
    make_affine(s.c, gf, bf, 13);
    double x[36], w[36], gamma[3], beta[3], y[36], mean[3], var[3], invstd[3];
    double dx[36], dgamma[3], dbeta[3];
    for (size_t i = 0; i < count; i++) x[i] = xf[i], w[i] = wf[i];
    for (int c = 0; c < s.c; c++) gamma[c] = gf[c], beta[c] = bf[c];
    ref_forward_train(s, x, gamma, beta, 1e-5, y, mean, var, invstd);
    ref_backward(s, 1, x, w, gamma, mean, invstd, dx, dgamma, dbeta);
    fd_state f = {s, x, w, gamma, beta, y, mean, var, invstd};
    const harness_fd_arg args[] = {
        {"dx", x, dx, count}, {"dgamma", gamma, dgamma, 3}, {"dbeta", beta, dbeta, 3}};
    harness_check_fd("bn reference", fd_loss, &f, args, 3, 1e-6, 1e-7, 1e-6);
}
END_TEST

/* ---- device tests ------------------------------------------------------------------------ */

/* The training forward's buffers on one device. */
typedef struct train_bufs {
    hbuf *x, *y, *rm, *rv, *sm, *si;
    oclseg_tensor tx, ty, tg, tb, trm, trv, tsm, tsi;
} train_bufs;

static train_bufs train_bufs_make(harness_arena *A, oclseg_ctx *ctx, shape s, const float *x,
                                  const float *gamma, const float *beta, const float *rm0,
                                  const float *rv0) {
    const size_t count = numel(s), C = (size_t)s.c;
    train_bufs B;
    B.x = ha_buf_from(A, ctx, x, count), B.y = ha_buf(A, ctx, count);
    B.rm = ha_buf_from(A, ctx, rm0, C), B.rv = ha_buf_from(A, ctx, rv0, C);
    B.sm = ha_buf(A, ctx, C), B.si = ha_buf(A, ctx, C);
    B.tx = hb_tensor(B.x, s.n, s.c, s.h, s.w), B.ty = hb_tensor(B.y, s.n, s.c, s.h, s.w);
    B.tg = hb_tensor(ha_buf_from(A, ctx, gamma, C), s.c, 1, 1, 1);
    B.tb = hb_tensor(ha_buf_from(A, ctx, beta, C), s.c, 1, 1, 1);
    B.trm = hb_tensor(B.rm, s.c, 1, 1, 1), B.trv = hb_tensor(B.rv, s.c, 1, 1, 1);
    B.tsm = hb_tensor(B.sm, s.c, 1, 1, 1), B.tsi = hb_tensor(B.si, s.c, 1, 1, 1);
    return B;
}

static int train_forward(oclseg_ctx *ctx, train_bufs *B, int relu6) {
    if (!relu6)
        return op_batchnorm_forward_train(ctx, &B->tx, &B->tg, &B->tb, &B->trm, &B->trv, &B->ty,
                                          &B->tsm, &B->tsi, MOMENTUM, EPS);
    return op_batchnorm_forward_train_act(ctx, &B->tx, &B->tg, &B->tb, &B->trm, &B->trv, &B->ty,
                                          &B->tsm, &B->tsi, MOMENTUM, EPS, 1);
}

/* One training call on xf (what B->x holds): save_mean, save_invstd, y and the running
 * statistics (rm, rv: the reference's, updated here) against the reference; y is the device's
 * output, downloaded. */
static void check_train_call(oclseg_ctx *ctx, shape s, train_bufs *B, const float *xf,
                             const float *gamma, const float *beta, double *rm, double *rv,
                             float *y, double *yr) {
    const size_t count = numel(s), C = (size_t)s.c;
    const double m = (double)per_channel(s), mom = MOMENTUM;
    double mean[256], var[256], invstd[256];
    double *xd = harness_to_double(xf, count), *g = harness_to_double(gamma, C);
    double *b = harness_to_double(beta, C);
    ref_forward_train(s, xd, g, b, (double)EPS, yr, mean, var, invstd);
    free(g);
    free(b);
    double rm_before = max_abs_d(rm, C), rv_before = max_abs_d(rv, C);
    for (size_t c = 0; c < C; c++) {
        rm[c] = (1 - mom) * rm[c] + mom * mean[c];
        rv[c] = (1 - mom) * rv[c] + mom * var[c] * m / (m - 1);
    }
    const double T = chain_tol(s);
    const double max_x = max_abs_f(xf, count), max_inv = max_abs_d(invstd, C);
    const double kappa = max_x * max_inv;
    const double max_var_unbiased = max_abs_d(var, C) * m / (m - 1);
    double max_xhat = 0;
    for (size_t i = 0; i < count; i++) {
        size_t c = (i / spatial(s)) % C;
        max_xhat = fmax(max_xhat, fabs((xd[i] - mean[c]) * invstd[c]));
    }
    free(xd);

    ck_assert_int_eq(train_forward(ctx, B, 0), OCLSEG_OK);
    hb_check(B->sm, mean, T * max_x, 0, "bn save_mean");
    hb_check(B->si, invstd, 0, T * (1 + kappa), "bn save_invstd");
    hb_download(B->y, y, "bn train y");
    harness_compare("bn train y", y, yr, count,
                    T * (1 + kappa) * max_abs_f(gamma, C) * (1 + max_xhat) +
                        T * max_abs_f(beta, C),
                    0);
    hb_check(B->rm, rm, T * (max_x + rm_before), 0, "bn running_mean");
    hb_check(B->rv, rv, T * (1 + kappa) * (rv_before + max_var_unbiased), 0, "bn running_var");
}

/* The same batch again gives the same bits (y as last computed); BatchNorm + ReLU6 fused is
 * exactly the clamp of the unfused output. */
static void check_train_repeat(oclseg_ctx *ctx, shape s, train_bufs *B, const float *y,
                               float *y_again) {
    const size_t count = numel(s), C = (size_t)s.c;
    float inv_first[256], inv_again[256];
    hb_download(B->si, inv_first, "bn save_invstd");
    ck_assert_int_eq(train_forward(ctx, B, 0), OCLSEG_OK);
    hb_download(B->y, y_again, "bn train y (repeat)");
    hb_download(B->si, inv_again, "bn save_invstd (repeat)");
    ck_assert_msg(memcmp(y, y_again, count * sizeof *y) == 0,
                  "bn train y differs between identical calls on %s", ctx->info.name);
    ck_assert_msg(memcmp(inv_first, inv_again, C * sizeof *inv_first) == 0,
                  "bn save_invstd differs between identical calls on %s", ctx->info.name);
    ck_assert_int_eq(train_forward(ctx, B, 1), OCLSEG_OK);
    hb_download(B->y, y_again, "bn train y (fused relu6)");
    size_t first_bad = count;
    for (size_t i = 0; i < count && first_bad == count; i++) {
        float clamped = fminf(fmaxf(y[i], 0.0f), 6.0f);
        if (memcmp(&clamped, &y_again[i], sizeof clamped) != 0) first_bad = i;
    }
    ck_assert_msg(first_bad == count, "fused relu6 at %zu: %g vs clamp(%g) on %s", first_bad,
                  (double)y_again[first_bad % count], (double)y[first_bad % count],
                  ctx->info.name);
}

/* Training forward on each shape: y, save_mean, save_invstd, and the running statistics after
 * one and after two calls (second call on a different batch); a third call on the same batch
 * must reproduce y and save_invstd bit for bit. */
START_TEST(forward_train) {
    size_t nshapes;
    const shape *list = shapes(&nshapes);
    for (size_t si = 0; si < nshapes; si++) {
        const shape s = list[si];
        const size_t count = numel(s), C = (size_t)s.c;
        harness_arena A = {0};
        float *x1 = ha_floats(&A, count), *x2 = ha_floats(&A, count);
        float *y = ha_floats(&A, count), *y_again = ha_floats(&A, count);
        double *yr = ha_doubles(&A, count);
        float gamma[256], beta[256], rm0[256], rv0[256];
        double rm[256], rv[256];
        make_x(s, x1, 100 + si);
        make_x(s, x2, 200 + si);
        make_affine(s.c, gamma, beta, 300 + si);
        harness_fill_uniform(rm0, C, -0.5f, 0.5f, 400 + si);
        harness_fill_uniform(rv0, C, 0.5f, 2.0f, 500 + si);
        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            train_bufs B = train_bufs_make(&A, ctx, s, x1, gamma, beta, rm0, rv0);
            for (size_t c = 0; c < C; c++) rm[c] = rm0[c], rv[c] = rv0[c];
            check_train_call(ctx, s, &B, x1, gamma, beta, rm, rv, y, yr);
            hb_upload(B.x, x2);
            hb_poison(B.y);
            hb_poison(B.sm);
            hb_poison(B.si);
            check_train_call(ctx, s, &B, x2, gamma, beta, rm, rv, y, yr);
            check_train_repeat(ctx, s, &B, y, y_again);
        }
        ha_free(&A);
    }
}
END_TEST

/* Eval forward: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta. Only
 * elementwise float ops on exact inputs (x - rm is one rounding, invstd a few), so the error is
 * a few u times the magnitudes: T * (max|gamma| * max|xhat| + max|beta|). */
START_TEST(forward_eval) {
    size_t nshapes;
    const shape *list = shapes(&nshapes);
    for (size_t si = 0; si < nshapes; si++) {
        const shape s = list[si];
        const size_t count = numel(s), C = (size_t)s.c;
        harness_arena A = {0};
        float *x = ha_floats(&A, count);
        double *yr = ha_doubles(&A, count);
        float gamma[256], beta[256], rmf[256], rvf[256];
        double g[256], b[256], rm[256], invstd[256];
        make_x(s, x, 600 + si);
        make_affine(s.c, gamma, beta, 700 + si);
        harness_fill_uniform(rmf, C, s.offset - 0.5f, s.offset + 0.5f, 800 + si);
        make_running_var(s, rvf, 900 + si);
        for (size_t c = 0; c < C; c++) {
            g[c] = gamma[c], b[c] = beta[c], rm[c] = rmf[c];
            invstd[c] = 1.0 / sqrt((double)rvf[c] + (double)EPS);
        }
        const double *xd = ha_widen(&A, x, count);
        ref_apply(s, xd, rm, invstd, g, b, yr);
        double max_xhat = 0;
        for (size_t i = 0; i < count; i++) {
            size_t c = (i / spatial(s)) % C;
            max_xhat = fmax(max_xhat, fabs((xd[i] - rm[c]) * invstd[c]));
        }
        const double atol = chain_tol(s) * (max_abs_f(gamma, C) * max_xhat + max_abs_f(beta, C));

        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            hbuf *by = ha_buf(&A, ctx, count);
            hbuf *brm = ha_buf_from(&A, ctx, rmf, C), *brv = ha_buf_from(&A, ctx, rvf, C);
            oclseg_tensor tx = hb_tensor(ha_buf_from(&A, ctx, x, count), s.n, s.c, s.h, s.w);
            oclseg_tensor ty = hb_tensor(by, s.n, s.c, s.h, s.w);
            oclseg_tensor tg = hb_tensor(ha_buf_from(&A, ctx, gamma, C), s.c, 1, 1, 1);
            oclseg_tensor tb = hb_tensor(ha_buf_from(&A, ctx, beta, C), s.c, 1, 1, 1);
            oclseg_tensor trm = hb_tensor(brm, s.c, 1, 1, 1), trv = hb_tensor(brv, s.c, 1, 1, 1);
            ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &ty, EPS),
                             OCLSEG_OK);
            hb_check(by, yr, atol, 0, "bn eval y");
            /* BatchNorm + ReLU6 fused: the clamp of the reference (clamping is 1-Lipschitz,
             * the same tolerance holds) */
            ck_assert_int_eq(op_batchnorm_forward_eval_act(ctx, &tx, &tg, &tb, &trm, &trv, &ty,
                                                           EPS, 1),
                             OCLSEG_OK);
            double *yc = ha_doubles(&A, count);
            for (size_t i = 0; i < count; i++) yc[i] = fmin(fmax(yr[i], 0.0), 6.0);
            hb_check(by, yc, atol, 0, "bn eval y (fused relu6)");
            /* beta + 6 on odd channels puts most of those outputs above 6: the upper clamp */
            float beta6[256];
            for (size_t ch = 0; ch < C; ch++) beta6[ch] = beta[ch] + (ch % 2 ? 6.0f : 0.0f);
            oclseg_tensor tb6 = hb_tensor(ha_buf_from(&A, ctx, beta6, C), s.c, 1, 1, 1);
            ck_assert_int_eq(op_batchnorm_forward_eval_act(ctx, &tx, &tg, &tb6, &trm, &trv, &ty,
                                                           EPS, 1),
                             OCLSEG_OK);
            for (size_t i = 0; i < count; i++) {
                size_t ch = (i / spatial(s)) % C;
                yc[i] = fmin(fmax(yr[i] + (ch % 2 ? 6.0 : 0.0), 0.0), 6.0);
            }
            /* beta6 rounds once more, and |y| grows by 6: ~2 ulp of 12 more */
            hb_check(by, yc, atol + 4.0 * 12.0 * FLT_EPSILON, 0,
                     "bn eval y (fused relu6, shifted)");
            /* the running statistics are inputs only */
            float after[256];
            hb_download(brm, after, "bn eval running_mean");
            ck_assert(memcmp(after, rmf, C * sizeof *after) == 0);
            hb_download(brv, after, "bn eval running_var");
            ck_assert(memcmp(after, rvf, C * sizeof *after) == 0);
        }
        ha_free(&A);
    }
}
END_TEST

/* One backward case: inputs (float) and reference outputs (double) for train or eval mode. */
typedef struct backward_case {
    harness_arena arena; /* x, dy, dx */
    shape s;
    int train;
    float *x, *dy, gamma[256], stat_a[256], stat_b[256]; /* train: mean, invstd; eval: rm, rv */
    double *dx, dgamma[256], dbeta[256];
    double atol_dx, atol_dgamma, atol_dbeta;
} backward_case;

/* Builds the inputs and the reference. Train mode uses the batch mean/invstd of x rounded to
 * float (as the forward would save them); eval mode uses random running statistics. */
static void backward_case_init(backward_case *bc, shape s, int train, uint64_t seed) {
    const size_t count = numel(s), C = (size_t)s.c;
    bc->s = s;
    bc->train = train;
    harness_arena *A = &bc->arena;
    memset(A, 0, sizeof *A);
    bc->x = ha_floats(A, count);
    bc->dy = ha_uniform(A, count, -1.0f, 1.0f, seed + 1);
    bc->dx = ha_doubles(A, count);
    float beta_unused[256];
    make_x(s, bc->x, seed);
    make_affine(s.c, bc->gamma, beta_unused, seed + 2);
    const double *xd = ha_widen(A, bc->x, count), *dyd = ha_widen(A, bc->dy, count);
    double g[256], mean[256], invstd[256], var[256];
    if (train) {
        ref_stats(s, xd, mean, var);
        for (size_t c = 0; c < C; c++) {
            bc->stat_a[c] = (float)mean[c];
            bc->stat_b[c] = (float)(1.0 / sqrt(var[c] + (double)EPS));
        }
    } else {
        harness_fill_uniform(bc->stat_a, C, s.offset - 0.5f, s.offset + 0.5f, seed + 3);
        make_running_var(s, bc->stat_b, seed + 4);
    }
    for (size_t c = 0; c < C; c++) {
        g[c] = bc->gamma[c];
        mean[c] = bc->stat_a[c];
        invstd[c] = train ? (double)bc->stat_b[c] : 1.0 / sqrt((double)bc->stat_b[c] + (double)EPS);
    }
    ref_backward(s, train, xd, dyd, g, mean, invstd, bc->dx, bc->dgamma, bc->dbeta);

    /* Per-channel sums bounded by T * sum|terms|; dx = g*inv*(dy - mean(dy) - xhat*mean(dy*xhat))
     * by T * max|g*inv| * max|dy| * (2 + 3 max|xhat|^2) (train) or T * max|dy*g*inv| (eval). */
    const double T = chain_tol(s);
    double max_xhat = 0, max_scale = 0, sum_dy_max = 0, sum_dy_xhat_max = 0;
    for (size_t c = 0; c < C; c++) {
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < spatial(s); i++) {
                size_t k = at(s, n, (int)c, i);
                double xhat = (xd[k] - mean[c]) * invstd[c];
                max_xhat = fmax(max_xhat, fabs(xhat));
                sum_dy += fabs(dyd[k]);
                sum_dy_xhat += fabs(dyd[k] * xhat);
            }
        sum_dy_max = fmax(sum_dy_max, sum_dy);
        sum_dy_xhat_max = fmax(sum_dy_xhat_max, sum_dy_xhat);
        max_scale = fmax(max_scale, fabs(g[c] * invstd[c]));
    }
    const double max_dy = max_abs_f(bc->dy, count);
    bc->atol_dx = train ? T * max_scale * max_dy * (2 + 3 * max_xhat * max_xhat)
                        : T * max_scale * max_dy;
    bc->atol_dgamma = T * sum_dy_xhat_max;
    bc->atol_dbeta = T * sum_dy_max;
}

/* Runs the op for one case on one device with the outputs selected by want_{dx,dgamma,dbeta}
 * (the others NULL) and compares what was computed. */
static void run_backward(oclseg_ctx *ctx, const backward_case *bc, int want_dx, int want_dgamma,
                         int want_dbeta) {
    const shape s = bc->s;
    const size_t count = numel(s), C = (size_t)s.c;
    const char *mode = bc->train ? "train" : "eval";
    harness_arena A = {0};
    hbuf *bdx = ha_buf(&A, ctx, count), *bdg = ha_buf(&A, ctx, C), *bdb = ha_buf(&A, ctx, C);
    oclseg_tensor tx = hb_tensor(ha_buf_from(&A, ctx, bc->x, count), s.n, s.c, s.h, s.w);
    oclseg_tensor tdy = hb_tensor(ha_buf_from(&A, ctx, bc->dy, count), s.n, s.c, s.h, s.w);
    oclseg_tensor tg = hb_tensor(ha_buf_from(&A, ctx, bc->gamma, C), s.c, 1, 1, 1);
    oclseg_tensor ta = hb_tensor(ha_buf_from(&A, ctx, bc->stat_a, C), s.c, 1, 1, 1);
    oclseg_tensor tb = hb_tensor(ha_buf_from(&A, ctx, bc->stat_b, C), s.c, 1, 1, 1);
    oclseg_tensor tdx = hb_tensor(bdx, s.n, s.c, s.h, s.w);
    oclseg_tensor tdg = hb_tensor(bdg, s.c, 1, 1, 1), tdb = hb_tensor(bdb, s.c, 1, 1, 1);
    oclseg_tensor *pdx = want_dx ? &tdx : NULL, *pdg = want_dgamma ? &tdg : NULL;
    oclseg_tensor *pdb = want_dbeta ? &tdb : NULL;
    int st = bc->train ? op_batchnorm_backward_train(ctx, &tx, &tdy, &tg, &ta, &tb, pdx, pdg, pdb)
                       : op_batchnorm_backward_eval(ctx, &tx, &tdy, &tg, &ta, &tb, EPS, pdx, pdg,
                                                    pdb);
    ck_assert_int_eq(st, OCLSEG_OK);
    if (want_dx)
        hb_check(bdx, bc->dx, bc->atol_dx, 0, "bn %s dx (%dx%dx%dx%d)", mode, s.n, s.c, s.h, s.w);
    if (want_dgamma)
        hb_check(bdg, bc->dgamma, bc->atol_dgamma, 0, "bn %s dgamma (%dx%dx%dx%d)", mode, s.n,
                 s.c, s.h, s.w);
    if (want_dbeta)
        hb_check(bdb, bc->dbeta, bc->atol_dbeta, 0, "bn %s dbeta (%dx%dx%dx%d)", mode, s.n, s.c,
                 s.h, s.w);
    ha_free(&A);
}

static void check_backward_all_shapes(int train) {
    size_t nshapes;
    const shape *list = shapes(&nshapes);
    for (size_t si = 0; si < nshapes; si++) {
        backward_case bc;
        backward_case_init(&bc, list[si], train, 1000 + 10 * si);
        for (int d = 0; d < harness_device_count(); d++) run_backward(harness_ctx(d), &bc, 1, 1, 1);
        ha_free(&bc.arena);
    }
}

START_TEST(backward_train) { check_backward_all_shapes(1); }
END_TEST
START_TEST(backward_eval) { check_backward_all_shapes(0); }
END_TEST

/* BatchNorm + ReLU6 fused in the backward (op_batchnorm_backward_train_act, relu6 = 1) equals,
 * bit for bit, relu6_backward on the forward's stored y followed by the plain training backward:
 * the mask is recomputed from x with the forward's exact arithmetic. gamma and beta are chosen
 * so that outputs fall below 0, inside (0, 6) and above 6 (counted: the test cannot pass with a
 * mask that keeps or drops everything). The plain path is checked against the double reference
 * by backward_train. */
static void check_fused_relu6_backward(shape s, uint64_t si) {
    const size_t count = numel(s), C = (size_t)s.c;
    harness_arena A = {0};
    float *x = ha_floats(&A, count), *y = ha_floats(&A, count);
    float *dy = ha_uniform(&A, count, -1.0f, 1.0f, 2000 + si);
    float *gamma = ha_uniform(&A, C, 3.0f, 6.0f, 2001 + si);
    float *beta = ha_uniform(&A, C, -1.0f, 3.0f, 2002 + si);
    float *rm0 = ha_uniform(&A, C, 0.0f, 0.0f, 1), *rv0 = ha_uniform(&A, C, 1.0f, 1.0f, 1);
    float *plain = ha_floats(&A, count + 2 * C), *fused = ha_floats(&A, count + 2 * C);
    make_x(s, x, 2003 + si);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        harness_arena D = {0};
        train_bufs B = train_bufs_make(&D, ctx, s, x, gamma, beta, rm0, rv0);
        ck_assert_int_eq(train_forward(ctx, &B, 1), OCLSEG_OK);
        hb_download(B.y, y, "bn train y (fused relu6)");
        size_t below = 0, inside = 0, above = 0;
        for (size_t i = 0; i < count; i++) {
            below += y[i] <= 0.0f;
            inside += y[i] > 0.0f && y[i] < 6.0f;
            above += y[i] >= 6.0f;
        }
        ck_assert_msg(below && inside && above, "relu6 regions %zu/%zu/%zu", below, inside,
                      above);
        for (int path = 0; path < 2; path++) {
            hbuf *bdy = ha_buf_from(&D, ctx, dy, count), *bdx = ha_buf(&D, ctx, count);
            hbuf *bdg = ha_buf(&D, ctx, C), *bdb = ha_buf(&D, ctx, C);
            oclseg_tensor tdy = hb_tensor(bdy, s.n, s.c, s.h, s.w);
            oclseg_tensor tdx = hb_tensor(bdx, s.n, s.c, s.h, s.w);
            oclseg_tensor tdg = hb_tensor(bdg, s.c, 1, 1, 1), tdb = hb_tensor(bdb, s.c, 1, 1, 1);
            if (path == 0) {
                ck_assert_int_eq(op_relu6_backward(ctx, &B.ty, &tdy, &tdy), OCLSEG_OK);
                ck_assert_int_eq(op_batchnorm_backward_train(ctx, &B.tx, &tdy, &B.tg, &B.tsm,
                                                             &B.tsi, &tdx, &tdg, &tdb),
                                 OCLSEG_OK);
            } else {
                ck_assert_int_eq(op_batchnorm_backward_train_act(ctx, &B.tx, &tdy, &B.tg,
                                                                 &B.tb, &B.tsm, &B.tsi, &tdx,
                                                                 &tdg, &tdb, 1),
                                 OCLSEG_OK);
            }
            float *out = path == 0 ? plain : fused;
            hb_download(bdx, out, "bn fused relu6 dx");
            hb_download(bdg, out + count, "bn fused relu6 dgamma");
            hb_download(bdb, out + count + C, "bn fused relu6 dbeta");
        }
        size_t first_bad = count + 2 * C;
        for (size_t i = 0; i < count + 2 * C && first_bad == count + 2 * C; i++)
            if (memcmp(&plain[i], &fused[i], sizeof(float)) != 0) first_bad = i;
        ck_assert_msg(first_bad == count + 2 * C,
                      "fused relu6 backward (%dx%dx%dx%d) differs at %zu (dx then dgamma, "
                      "dbeta): %a vs %a on %s",
                      s.n, s.c, s.h, s.w, first_bad, (double)fused[first_bad % (count + 2 * C)],
                      (double)plain[first_bad % (count + 2 * C)], ctx->info.name);
        ha_free(&D);
    }
    ha_free(&A);
}

START_TEST(backward_train_fused_relu6) {
    size_t nshapes;
    const shape *list = shapes(&nshapes);
    for (size_t si = 0; si < nshapes; si++)
        if (list[si].spread == 0.0f) /* the regions need |xhat| up to ~2 */
            check_fused_relu6_backward(list[si], si);
}
END_TEST

/* Each output alone (the others NULL), and none at all, in both modes. */
START_TEST(backward_null_outputs) {
    const shape s = {3, 5, 7, 9, 0.0f, 0.0f};
    for (int train = 0; train < 2; train++) {
        backward_case bc;
        backward_case_init(&bc, s, train, 2000 + (uint64_t)train);
        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            run_backward(ctx, &bc, 1, 0, 0);
            run_backward(ctx, &bc, 0, 1, 0);
            run_backward(ctx, &bc, 0, 0, 1);
            run_backward(ctx, &bc, 0, 0, 0);
        }
        ha_free(&bc.arena);
    }
}
END_TEST

/* N*H*W == 1 is an error in training (as PyTorch) but fine in eval; mismatched shapes and
 * wrong-sized vectors are errors, never out-of-bounds accesses. */
START_TEST(argument_errors) {
    const int C = 3;
    float x[3] = {0.5f, -1.0f, 2.0f}, gamma[3] = {1, 2, 3}, beta[3] = {0, 1, 2};
    float rm[3] = {0.5f, 0.0f, 1.0f}, rv[3] = {1.0f, 4.0f, 0.25f};
    double yr[3];
    for (int c = 0; c < C; c++)
        yr[c] = ((double)x[c] - rm[c]) / sqrt((double)rv[c] + (double)EPS) * gamma[c] + beta[c];
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        harness_arena A = {0};
        hbuf *by = ha_buf(&A, ctx, 3), *bg = ha_buf_from(&A, ctx, gamma, 3);
        hbuf *brm = ha_buf_from(&A, ctx, rm, 3);
        oclseg_tensor tx = hb_tensor(ha_buf_from(&A, ctx, x, 3), 1, C, 1, 1);
        oclseg_tensor ty = hb_tensor(by, 1, C, 1, 1), tg = hb_tensor(bg, C, 1, 1, 1);
        oclseg_tensor tb = hb_tensor(ha_buf_from(&A, ctx, beta, 3), C, 1, 1, 1);
        oclseg_tensor trm = hb_tensor(brm, C, 1, 1, 1);
        oclseg_tensor trv = hb_tensor(ha_buf_from(&A, ctx, rv, 3), C, 1, 1, 1);
        oclseg_tensor tsm = hb_tensor(ha_buf(&A, ctx, 3), C, 1, 1, 1);
        oclseg_tensor tsi = hb_tensor(ha_buf(&A, ctx, 3), C, 1, 1, 1);
        HARNESS_REJECTS(op_batchnorm_forward_train(ctx, &tx, &tg, &tb, &trm, &trv, &ty, &tsm,
                                                   &tsi, MOMENTUM, EPS));
        /* nothing was touched: running stats unchanged */
        float after[3];
        hb_download(brm, after, "running_mean after error");
        ck_assert(memcmp(after, rm, sizeof rm) == 0);
        ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &ty, EPS),
                         OCLSEG_OK);
        hb_check(by, yr, 1e-6, 1e-6, "bn eval y (1 value per channel)");

        /* gamma with the wrong channel count; y with the wrong shape */
        oclseg_tensor short_gamma = oclseg_tensor_view(bg->buf, bg->lead, 2, 1, 1, 1);
        HARNESS_REJECTS(
            op_batchnorm_forward_eval(ctx, &tx, &short_gamma, &tb, &trm, &trv, &ty, EPS));
        oclseg_tensor wrong_y = hb_tensor(by, 1, 1, 3, 1);
        HARNESS_REJECTS(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &wrong_y, EPS));
        HARNESS_REJECTS(
            op_batchnorm_backward_train(ctx, &tx, &wrong_y, &tg, &tsm, &tsi, &ty, NULL, NULL));
        HARNESS_REJECTS(op_batchnorm_backward_eval(ctx, &tx, &ty, &tg, &trm, &trv, EPS, NULL,
                                                   &short_gamma, NULL));
        ha_free(&A);
    }
}
END_TEST

/* Under Oclgrind (21.10), after oclseg_scratch grows the shared scratch (free + new buffer),
 * kernel writes beyond the old size are still reported as uninitialised when read back, although
 * the values are right (the comparisons pass). So under Oclgrind the scratch is grown once, up
 * front, past what any test here needs; on real devices the growth path stays exercised. */
static void grow_scratch_for_oclgrind(void) {
    if (!harness_small()) return;
    for (int d = 0; d < harness_device_count(); d++) {
        cl_mem scratch;
        if (oclseg_scratch(harness_ctx(d), (size_t)1 << 16, &scratch) != OCLSEG_OK)
            fprintf(stderr, "cannot grow the scratch on %s\n", harness_device_name(d));
    }
}

/* Frees each context's shared scratch workspace, which the harness would otherwise count as a
 * leaked buffer at exit (it belongs to the context, not to a test). */
static void release_scratch(void) {
    for (int d = 0; d < harness_device_count(); d++)
        if (oclseg_finish(harness_ctx(d)) != OCLSEG_OK) fprintf(stderr, "clFinish failed\n");
    harness_release_scratch();
}

int main(void) {
    Suite *s = suite_create("ops_batchnorm");
    TCase *tc = tcase_create("batchnorm");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, grow_scratch_for_oclgrind, release_scratch);
    tcase_add_test(tc, reference_backward_matches_finite_differences);
    tcase_add_test(tc, forward_train);
    tcase_add_test(tc, forward_eval);
    tcase_add_test(tc, backward_train);
    tcase_add_test(tc, backward_eval);
    tcase_add_test(tc, backward_train_fused_relu6);
    tcase_add_test(tc, backward_null_outputs);
    tcase_add_test(tc, argument_errors);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
