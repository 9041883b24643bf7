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
 * work-item with Chan merges after it 2.2x over at 1000 +- 1). The backward takes mean/invstd as inputs, so there x - mean is one
 * correctly rounded subtraction and no kappa enters; sums are bounded by T * sum|terms|. */
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
} shape;

/* Odd sizes (nothing a multiple of 4/8); M = N*H*W from 2 to ~16k so reductions span one
 * partial work-group, several items per work-item, and several chunks per channel. */
static const shape FULL_SHAPES[] = {
    {3, 5, 7, 9, 0.0f},    /* the standard odd shape, M = 189 */
    {2, 3, 37, 29, 0.0f},  /* M = 2146: several chunks per channel (1024 values each at wg 64) */
    {3, 5, 7, 9, 100.0f},  /* values 100 +- 1: catastrophic cancellation in E[x^2] - E[x]^2 */
    {2, 3, 37, 29, 1000.0f}, /* 1000 +- 1: kappa ~1700, E[x^2] - E[x]^2 is off by ~20% */
    {4, 19, 2, 3, 0.0f},   /* many channels, tiny spatial size (M = 24 < work-group) */
    {2, 3, 1, 1, 0.0f},    /* M = 2, the smallest legal training batch */
    {4, 2, 61, 67, 0.0f},  /* M = 16348: many chunks */
    {2, 240, 2, 2, 0.0f},  /* MobileNetV2 width 0.25 at 64x64, block 17: many channels, M = 8 */
};
/* Oclgrind: the same cases, smaller (M = 1334 still spans two chunks at WG 64). */
static const shape SMALL_SHAPES[] = {
    {3, 5, 7, 9, 0.0f}, {2, 2, 23, 29, 0.0f}, {3, 5, 7, 9, 100.0f}, {2, 2, 23, 29, 1000.0f},
    {4, 19, 2, 3, 0.0f}, {2, 3, 1, 1, 0.0f},
};

static const shape *shapes(size_t *count) {
    if (harness_small()) {
        *count = sizeof SMALL_SHAPES / sizeof SMALL_SHAPES[0];
        return SMALL_SHAPES;
    }
    *count = sizeof FULL_SHAPES / sizeof FULL_SHAPES[0];
    return FULL_SHAPES;
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
 * an offset, values are offset +- 1. */
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
            }
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

/* The reference training backward against central differences of the reference forward, for
 * the loss L = sum(w * y): dL/dx, dL/dgamma, dL/dbeta. In double, h = 1e-6 gives truncation
 * error ~h^2 * |L'''| ~ 1e-12 and cancellation error ~1e-16 * |L| / h ~ 1e-9, so 1e-7 abs +
 * 1e-6 rel is ample while a wrong formula (e.g. a missing term, relative error O(1)) fails. */
START_TEST(reference_backward_matches_finite_differences) {
    const shape s = {2, 3, 2, 3, 0.0f};
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

    const double h = 1e-6;
    /* the loss at the current x, gamma, beta */
#define LOSS(out)                                                                              \
    do {                                                                                       \
        ref_forward_train(s, x, gamma, beta, 1e-5, y, mean, var, invstd);                      \
        (out) = 0;                                                                             \
        for (size_t j = 0; j < count; j++) (out) += w[j] * y[j];                               \
    } while (0)
#define CHECK_FD(param, analytic, what)                                                        \
    do {                                                                                       \
        double saved = (param), lp, lm;                                                        \
        (param) = saved + h;                                                                   \
        LOSS(lp);                                                                              \
        (param) = saved - h;                                                                   \
        LOSS(lm);                                                                              \
        (param) = saved;                                                                       \
        double fd = (lp - lm) / (2 * h);                                                       \
        ck_assert_msg(fabs(fd - (analytic)) <= 1e-7 + 1e-6 * fabs(fd),                         \
                      "%s: analytic %.12g vs finite difference %.12g", what, (analytic), fd);  \
    } while (0)
    for (size_t i = 0; i < count; i++) CHECK_FD(x[i], dx[i], "dx");
    for (int c = 0; c < s.c; c++) {
        CHECK_FD(gamma[c], dgamma[c], "dgamma");
        CHECK_FD(beta[c], dbeta[c], "dbeta");
    }
#undef CHECK_FD
#undef LOSS
}
END_TEST

/* ---- device tests ------------------------------------------------------------------------ */

/* Compares a per-channel device vector with a reference. */
static void compare_vec(const char *what, hbuf *b, const double *ref, size_t n, double atol,
                        double rtol) {
    float got[256];
    ck_assert_uint_le(n, 256);
    hb_download(b, got, what);
    harness_compare(what, got, ref, n, atol, rtol);
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
        const double m = (double)per_channel(s), mom = MOMENTUM;
        float *x1 = malloc(count * sizeof *x1), *x2 = malloc(count * sizeof *x2);
        float *y = malloc(count * sizeof *y), *y_again = malloc(count * sizeof *y_again);
        double *yr = malloc(count * sizeof *yr);
        ck_assert(x1 && x2 && y && y_again && yr);
        float gamma[256], beta[256], rm0[256], rv0[256], inv_first[256], inv_again[256];
        double g[256], b[256], mean[256], var[256], invstd[256], rm[256], rv[256];
        make_x(s, x1, 100 + si);
        make_x(s, x2, 200 + si);
        make_affine(s.c, gamma, beta, 300 + si);
        harness_fill_uniform(rm0, C, -0.5f, 0.5f, 400 + si);
        harness_fill_uniform(rv0, C, 0.5f, 2.0f, 500 + si);
        for (size_t c = 0; c < C; c++) g[c] = gamma[c], b[c] = beta[c];

        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            hbuf bx = hb_from(ctx, x1, count), by = hb_create(ctx, count);
            hbuf bg = hb_from(ctx, gamma, C), bb = hb_from(ctx, beta, C);
            hbuf brm = hb_from(ctx, rm0, C), brv = hb_from(ctx, rv0, C);
            hbuf bsm = hb_create(ctx, C), bsi = hb_create(ctx, C);
            oclseg_tensor tx = hb_tensor(&bx, s.n, s.c, s.h, s.w);
            oclseg_tensor ty = hb_tensor(&by, s.n, s.c, s.h, s.w);
            oclseg_tensor tg = hb_tensor(&bg, s.c, 1, 1, 1), tb = hb_tensor(&bb, s.c, 1, 1, 1);
            oclseg_tensor trm = hb_tensor(&brm, s.c, 1, 1, 1), trv = hb_tensor(&brv, s.c, 1, 1, 1);
            oclseg_tensor tsm = hb_tensor(&bsm, s.c, 1, 1, 1), tsi = hb_tensor(&bsi, s.c, 1, 1, 1);
            for (size_t c = 0; c < C; c++) rm[c] = rm0[c], rv[c] = rv0[c];

            for (int call = 0; call < 2; call++) {
                const float *xf = call == 0 ? x1 : x2;
                if (call == 1) {
                    hb_upload(&bx, x2);
                    hb_poison(&by);
                    hb_poison(&bsm);
                    hb_poison(&bsi);
                }
                double *xd = harness_to_double(xf, count);
                ref_forward_train(s, xd, g, b, (double)EPS, yr, mean, var, invstd);
                double rm_before = max_abs_d(rm, C), rv_before = max_abs_d(rv, C);
                for (size_t c = 0; c < C; c++) {
                    rm[c] = (1 - mom) * rm[c] + mom * mean[c];
                    rv[c] = (1 - mom) * rv[c] + mom * var[c] * m / (m - 1);
                }
                const double T = chain_tol(s);
                const double max_x = max_abs_f(xf, count), max_inv = max_abs_d(invstd, C);
                const double kappa = max_x * max_inv, max_var_unbiased = max_abs_d(var, C) * m / (m - 1);
                double max_xhat = 0;
                for (size_t i = 0; i < count; i++) {
                    size_t c = (i / spatial(s)) % C;
                    max_xhat = fmax(max_xhat, fabs((xd[i] - mean[c]) * invstd[c]));
                }
                free(xd);

                ck_assert_int_eq(op_batchnorm_forward_train(ctx, &tx, &tg, &tb, &trm, &trv, &ty,
                                                            &tsm, &tsi, MOMENTUM, EPS),
                                 OCLSEG_OK);
                compare_vec("bn save_mean", &bsm, mean, C, T * max_x, 0);
                compare_vec("bn save_invstd", &bsi, invstd, C, 0, T * (1 + kappa));
                hb_download(&by, y, "bn train y");
                harness_compare("bn train y", y, yr, count,
                                T * (1 + kappa) * max_abs_f(gamma, C) * (1 + max_xhat) +
                                    T * max_abs_f(beta, C),
                                0);
                compare_vec("bn running_mean", &brm, rm, C, T * (max_x + rm_before), 0);
                compare_vec("bn running_var", &brv, rv, C,
                            T * (1 + kappa) * (rv_before + max_var_unbiased), 0);
            }
            /* determinism: the same batch again gives the same bits */
            hb_download(&bsi, inv_first, "bn save_invstd");
            ck_assert_int_eq(op_batchnorm_forward_train(ctx, &tx, &tg, &tb, &trm, &trv, &ty, &tsm,
                                                        &tsi, MOMENTUM, EPS),
                             OCLSEG_OK);
            hb_download(&by, y_again, "bn train y (repeat)");
            hb_download(&bsi, inv_again, "bn save_invstd (repeat)");
            ck_assert_msg(memcmp(y, y_again, count * sizeof *y) == 0,
                          "bn train y differs between identical calls on %s", harness_device_name(d));
            ck_assert_msg(memcmp(inv_first, inv_again, C * sizeof *inv_first) == 0,
                          "bn save_invstd differs between identical calls on %s",
                          harness_device_name(d));
            /* BatchNorm + ReLU6 fused: exactly the clamp of the unfused output (same batch) */
            ck_assert_int_eq(op_batchnorm_forward_train_act(ctx, &tx, &tg, &tb, &trm, &trv, &ty,
                                                            &tsm, &tsi, MOMENTUM, EPS, 1),
                             OCLSEG_OK);
            hb_download(&by, y_again, "bn train y (fused relu6)");
            size_t first_bad = count;
            for (size_t i = 0; i < count && first_bad == count; i++) {
                float clamped = fminf(fmaxf(y[i], 0.0f), 6.0f);
                if (memcmp(&clamped, &y_again[i], sizeof clamped) != 0) first_bad = i;
            }
            ck_assert_msg(first_bad == count, "fused relu6 at %zu: %g vs clamp(%g) on %s",
                          first_bad, (double)y_again[first_bad % count],
                          (double)y[first_bad % count], harness_device_name(d));
            hb_free(&bx);
            hb_free(&by);
            hb_free(&bg);
            hb_free(&bb);
            hb_free(&brm);
            hb_free(&brv);
            hb_free(&bsm);
            hb_free(&bsi);
        }
        free(x1);
        free(x2);
        free(y);
        free(y_again);
        free(yr);
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
        float *x = malloc(count * sizeof *x), *y = malloc(count * sizeof *y);
        double *yr = malloc(count * sizeof *yr);
        ck_assert(x && y && yr);
        float gamma[256], beta[256], rmf[256], rvf[256];
        double g[256], b[256], rm[256], invstd[256];
        make_x(s, x, 600 + si);
        make_affine(s.c, gamma, beta, 700 + si);
        harness_fill_uniform(rmf, C, s.offset - 0.5f, s.offset + 0.5f, 800 + si);
        harness_fill_uniform(rvf, C, 0.25f, 2.0f, 900 + si);
        for (size_t c = 0; c < C; c++) {
            g[c] = gamma[c], b[c] = beta[c], rm[c] = rmf[c];
            invstd[c] = 1.0 / sqrt((double)rvf[c] + (double)EPS);
        }
        double *xd = harness_to_double(x, count);
        ref_apply(s, xd, rm, invstd, g, b, yr);
        double max_xhat = 0;
        for (size_t i = 0; i < count; i++) {
            size_t c = (i / spatial(s)) % C;
            max_xhat = fmax(max_xhat, fabs((xd[i] - rm[c]) * invstd[c]));
        }
        free(xd);
        const double atol = chain_tol(s) * (max_abs_f(gamma, C) * max_xhat + max_abs_f(beta, C));

        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            hbuf bx = hb_from(ctx, x, count), by = hb_create(ctx, count);
            hbuf bg = hb_from(ctx, gamma, C), bb = hb_from(ctx, beta, C);
            hbuf brm = hb_from(ctx, rmf, C), brv = hb_from(ctx, rvf, C);
            oclseg_tensor tx = hb_tensor(&bx, s.n, s.c, s.h, s.w);
            oclseg_tensor ty = hb_tensor(&by, s.n, s.c, s.h, s.w);
            oclseg_tensor tg = hb_tensor(&bg, s.c, 1, 1, 1), tb = hb_tensor(&bb, s.c, 1, 1, 1);
            oclseg_tensor trm = hb_tensor(&brm, s.c, 1, 1, 1), trv = hb_tensor(&brv, s.c, 1, 1, 1);
            ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &ty, EPS),
                             OCLSEG_OK);
            hb_download(&by, y, "bn eval y");
            harness_compare("bn eval y", y, yr, count, atol, 0);
            /* BatchNorm + ReLU6 fused: the clamp of the reference (clamping is 1-Lipschitz,
             * the same tolerance holds) */
            ck_assert_int_eq(op_batchnorm_forward_eval_act(ctx, &tx, &tg, &tb, &trm, &trv, &ty,
                                                           EPS, 1),
                             OCLSEG_OK);
            hb_download(&by, y, "bn eval y (fused relu6)");
            double *yc = malloc(count * sizeof *yc);
            ck_assert_ptr_nonnull(yc);
            for (size_t i = 0; i < count; i++) yc[i] = fmin(fmax(yr[i], 0.0), 6.0);
            harness_compare("bn eval y (fused relu6)", y, yc, count, atol, 0);
            /* beta + 6 on odd channels puts most of those outputs above 6: the upper clamp */
            float beta6[256];
            for (size_t ch = 0; ch < C; ch++) beta6[ch] = beta[ch] + (ch % 2 ? 6.0f : 0.0f);
            hbuf bb6 = hb_from(ctx, beta6, C);
            oclseg_tensor tb6 = hb_tensor(&bb6, s.c, 1, 1, 1);
            ck_assert_int_eq(op_batchnorm_forward_eval_act(ctx, &tx, &tg, &tb6, &trm, &trv, &ty,
                                                           EPS, 1),
                             OCLSEG_OK);
            hb_download(&by, y, "bn eval y (fused relu6, shifted)");
            for (size_t i = 0; i < count; i++) {
                size_t ch = (i / spatial(s)) % C;
                yc[i] = fmin(fmax(yr[i] + (ch % 2 ? 6.0 : 0.0), 0.0), 6.0);
            }
            /* beta6 rounds once more, and |y| grows by 6: ~2 ulp of 12 more */
            harness_compare("bn eval y (fused relu6, shifted)", y, yc, count,
                            atol + 4.0 * 12.0 * FLT_EPSILON, 0);
            hb_free(&bb6);
            free(yc);
            /* the running statistics are inputs only */
            float after[256];
            hb_download(&brm, after, "bn eval running_mean");
            ck_assert(memcmp(after, rmf, C * sizeof *after) == 0);
            hb_download(&brv, after, "bn eval running_var");
            ck_assert(memcmp(after, rvf, C * sizeof *after) == 0);
            hb_free(&bx);
            hb_free(&by);
            hb_free(&bg);
            hb_free(&bb);
            hb_free(&brm);
            hb_free(&brv);
        }
        free(x);
        free(y);
        free(yr);
    }
}
END_TEST

/* One backward case: inputs (float) and reference outputs (double) for train or eval mode. */
typedef struct backward_case {
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
    bc->x = malloc(count * sizeof(float));
    bc->dy = malloc(count * sizeof(float));
    bc->dx = malloc(count * sizeof(double));
    ck_assert(bc->x && bc->dy && bc->dx);
    float beta_unused[256];
    make_x(s, bc->x, seed);
    harness_fill_uniform(bc->dy, count, -1.0f, 1.0f, seed + 1);
    make_affine(s.c, bc->gamma, beta_unused, seed + 2);
    double *xd = harness_to_double(bc->x, count), *dyd = harness_to_double(bc->dy, count);
    double g[256], mean[256], invstd[256], var[256];
    if (train) {
        ref_stats(s, xd, mean, var);
        for (size_t c = 0; c < C; c++) {
            bc->stat_a[c] = (float)mean[c];
            bc->stat_b[c] = (float)(1.0 / sqrt(var[c] + (double)EPS));
        }
    } else {
        harness_fill_uniform(bc->stat_a, C, s.offset - 0.5f, s.offset + 0.5f, seed + 3);
        harness_fill_uniform(bc->stat_b, C, 0.25f, 2.0f, seed + 4);
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
    free(xd);
    free(dyd);
}

static void backward_case_free(backward_case *bc) {
    free(bc->x);
    free(bc->dy);
    free(bc->dx);
}

/* Runs the op for one case on one device with the outputs selected by want_{dx,dgamma,dbeta}
 * (the others NULL) and compares what was computed. */
static void run_backward(oclseg_ctx *ctx, const backward_case *bc, int want_dx, int want_dgamma,
                         int want_dbeta) {
    const shape s = bc->s;
    const size_t count = numel(s), C = (size_t)s.c;
    const char *mode = bc->train ? "train" : "eval";
    char what[96];
    hbuf bx = hb_from(ctx, bc->x, count), bdy = hb_from(ctx, bc->dy, count);
    hbuf bg = hb_from(ctx, bc->gamma, C), ba = hb_from(ctx, bc->stat_a, C);
    hbuf bb = hb_from(ctx, bc->stat_b, C);
    hbuf bdx = hb_create(ctx, count), bdg = hb_create(ctx, C), bdb = hb_create(ctx, C);
    oclseg_tensor tx = hb_tensor(&bx, s.n, s.c, s.h, s.w), tdy = hb_tensor(&bdy, s.n, s.c, s.h, s.w);
    oclseg_tensor tdx = hb_tensor(&bdx, s.n, s.c, s.h, s.w);
    oclseg_tensor tg = hb_tensor(&bg, s.c, 1, 1, 1), ta = hb_tensor(&ba, s.c, 1, 1, 1);
    oclseg_tensor tb = hb_tensor(&bb, s.c, 1, 1, 1);
    oclseg_tensor tdg = hb_tensor(&bdg, s.c, 1, 1, 1), tdb = hb_tensor(&bdb, s.c, 1, 1, 1);
    oclseg_tensor *pdx = want_dx ? &tdx : NULL, *pdg = want_dgamma ? &tdg : NULL;
    oclseg_tensor *pdb = want_dbeta ? &tdb : NULL;
    int st = bc->train ? op_batchnorm_backward_train(ctx, &tx, &tdy, &tg, &ta, &tb, pdx, pdg, pdb)
                       : op_batchnorm_backward_eval(ctx, &tx, &tdy, &tg, &ta, &tb, EPS, pdx, pdg,
                                                    pdb);
    ck_assert_int_eq(st, OCLSEG_OK);
    if (want_dx) {
        float *dx = malloc(count * sizeof *dx);
        ck_assert_ptr_nonnull(dx);
        snprintf(what, sizeof what, "bn %s dx (%dx%dx%dx%d)", mode, s.n, s.c, s.h, s.w);
        hb_download(&bdx, dx, what);
        harness_compare(what, dx, bc->dx, count, bc->atol_dx, 0);
        free(dx);
    }
    if (want_dgamma) {
        snprintf(what, sizeof what, "bn %s dgamma (%dx%dx%dx%d)", mode, s.n, s.c, s.h, s.w);
        compare_vec(what, &bdg, bc->dgamma, C, bc->atol_dgamma, 0);
    }
    if (want_dbeta) {
        snprintf(what, sizeof what, "bn %s dbeta (%dx%dx%dx%d)", mode, s.n, s.c, s.h, s.w);
        compare_vec(what, &bdb, bc->dbeta, C, bc->atol_dbeta, 0);
    }
    hb_free(&bx);
    hb_free(&bdy);
    hb_free(&bg);
    hb_free(&ba);
    hb_free(&bb);
    hb_free(&bdx);
    hb_free(&bdg);
    hb_free(&bdb);
}

static void check_backward_all_shapes(int train) {
    size_t nshapes;
    const shape *list = shapes(&nshapes);
    for (size_t si = 0; si < nshapes; si++) {
        backward_case bc;
        backward_case_init(&bc, list[si], train, 1000 + 10 * si);
        for (int d = 0; d < harness_device_count(); d++) run_backward(harness_ctx(d), &bc, 1, 1, 1);
        backward_case_free(&bc);
    }
}

START_TEST(backward_train) { check_backward_all_shapes(1); }
END_TEST
START_TEST(backward_eval) { check_backward_all_shapes(0); }
END_TEST

/* Each output alone (the others NULL), and none at all, in both modes. */
START_TEST(backward_null_outputs) {
    const shape s = {3, 5, 7, 9, 0.0f};
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
        backward_case_free(&bc);
    }
}
END_TEST

/* N*H*W == 1 is an error in training (as PyTorch) but fine in eval; mismatched shapes and
 * wrong-sized vectors are errors, never out-of-bounds accesses. */
START_TEST(argument_errors) {
    const int C = 3;
    float x[3] = {0.5f, -1.0f, 2.0f}, gamma[3] = {1, 2, 3}, beta[3] = {0, 1, 2};
    float rm[3] = {0.5f, 0.0f, 1.0f}, rv[3] = {1.0f, 4.0f, 0.25f}, y[3];
    double yr[3];
    for (int c = 0; c < C; c++)
        yr[c] = ((double)x[c] - rm[c]) / sqrt((double)rv[c] + (double)EPS) * gamma[c] + beta[c];
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf bx = hb_from(ctx, x, 3), by = hb_create(ctx, 3), bg = hb_from(ctx, gamma, 3);
        hbuf bb = hb_from(ctx, beta, 3), brm = hb_from(ctx, rm, 3), brv = hb_from(ctx, rv, 3);
        hbuf bsm = hb_create(ctx, 3), bsi = hb_create(ctx, 3);
        oclseg_tensor tx = hb_tensor(&bx, 1, C, 1, 1), ty = hb_tensor(&by, 1, C, 1, 1);
        oclseg_tensor tg = hb_tensor(&bg, C, 1, 1, 1), tb = hb_tensor(&bb, C, 1, 1, 1);
        oclseg_tensor trm = hb_tensor(&brm, C, 1, 1, 1), trv = hb_tensor(&brv, C, 1, 1, 1);
        oclseg_tensor tsm = hb_tensor(&bsm, C, 1, 1, 1), tsi = hb_tensor(&bsi, C, 1, 1, 1);
        ck_assert_int_eq(op_batchnorm_forward_train(ctx, &tx, &tg, &tb, &trm, &trv, &ty, &tsm,
                                                    &tsi, MOMENTUM, EPS),
                         OCLSEG_ERR_INVALID_ARG);
        /* nothing was touched: running stats unchanged */
        float after[3];
        hb_download(&brm, after, "running_mean after error");
        ck_assert(memcmp(after, rm, sizeof rm) == 0);
        ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &ty, EPS),
                         OCLSEG_OK);
        hb_download(&by, y, "bn eval y (1 value per channel)");
        harness_compare("bn eval y (1 value per channel)", y, yr, 3, 1e-6, 1e-6);

        /* gamma with the wrong channel count; y with the wrong shape */
        oclseg_tensor short_gamma = oclseg_tensor_view(bg.buf, bg.lead, 2, 1, 1, 1);
        ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &short_gamma, &tb, &trm, &trv, &ty,
                                                   EPS),
                         OCLSEG_ERR_INVALID_ARG);
        oclseg_tensor wrong_y = hb_tensor(&by, 1, 1, 3, 1);
        ck_assert_int_eq(op_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, &wrong_y, EPS),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_batchnorm_backward_train(ctx, &tx, &wrong_y, &tg, &tsm, &tsi, &ty,
                                                     NULL, NULL),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_batchnorm_backward_eval(ctx, &tx, &ty, &tg, &trm, &trv, EPS, NULL,
                                                    &short_gamma, NULL),
                         OCLSEG_ERR_INVALID_ARG);
        hb_free(&bx);
        hb_free(&by);
        hb_free(&bg);
        hb_free(&bb);
        hb_free(&brm);
        hb_free(&brv);
        hb_free(&bsm);
        hb_free(&bsi);
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
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        if (oclseg_finish(ctx) != OCLSEG_OK) fprintf(stderr, "clFinish failed\n");
        if (ctx->scratch) oclseg_buffer_free(ctx, ctx->scratch);
        ctx->scratch = NULL;
        ctx->scratch_bytes = 0;
    }
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
    tcase_add_test(tc, backward_null_outputs);
    tcase_add_test(tc, argument_errors);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
