/* Tests conv2d forward/backward (GEMM paths) and its own kernels (im2col, col2im, bias add and
 * gradient, which also run under Oclgrind) against naive double-precision references.
 *
 * Tolerances. Every GEMM output is a dot product of L float32 products, each |term| <= 1 (data
 * and weights are uniform in [-1, 1)). Recursive float32 summation errs by at most L*eps*sum|t|
 * (eps = 6e-8), and CLBlast's tiled sums (partial sums of a few dozen terms, combined) stay far
 * below that, around sqrt(L)*eps*|partial sum|. We allow atol = 1e-6 * L (16 eps per term at
 * the largest term size, ~10x the observed error) plus rtol 1e-5. A wrong index, a missing or
 * a duplicated tap changes an output by a whole term, typically 0.1-1, i.e. more than 300x the
 * tolerance for the L <= 800 used here. im2col only copies (exact: tolerance 0); col2im and the
 * bias gradient are plain float sums of L terms, checked the same way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv2d_internal.h"

static const double RTOL = 1e-5;
static double atol_for(size_t terms) { return 1e-6 * (double)terms; }

typedef struct conv_case {
    const char *name;
    int n, cin, cout, h, w, kh, kw;
    int stride_h, stride_w, pad_h, pad_w;
    int bias;
} conv_case;

/* Odd sizes everywhere: channels not multiples of 4/8, stride 2 on odd extents. */
static const conv_case CASES[] = {
    {"3x3 s2 p1 bias", 3, 5, 7, 9, 11, 3, 3, 2, 2, 1, 1, 1},
    {"3x3 s2 p1", 3, 5, 7, 9, 11, 3, 3, 2, 2, 1, 1, 0},
    {"1x1 pointwise bias", 3, 13, 7, 9, 11, 1, 1, 1, 1, 0, 0, 1},
    {"1x1 pointwise", 3, 13, 7, 9, 11, 1, 1, 1, 1, 0, 0, 0},
    {"3x5 s(2,1) p(1,2) bias", 3, 5, 6, 9, 11, 3, 5, 2, 1, 1, 2, 1},
    {"1x1 s2 (im2col path)", 3, 6, 5, 9, 11, 1, 1, 2, 2, 0, 0, 0},
    {"2x3 s(1,3) p(0,1) bias", 3, 3, 9, 7, 10, 2, 3, 1, 3, 0, 1, 1},
    /* large enough (m*n*k > 2M) for CLBlast's indirect (padded, tiled) GEMM path */
    {"1x1 64->64 at 16x16", 2, 64, 64, 16, 16, 1, 1, 1, 1, 0, 0, 0},
    {"3x3 s1 p1 24->40 at 20x20 bias", 2, 24, 40, 20, 20, 3, 3, 1, 1, 1, 1, 1},
    /* MobileNetV2 at width 0.25, 64x64: the projection conv of block 17 (tiny planes, tall dx) */
    {"1x1 240->80 at 2x2", 2, 240, 80, 2, 2, 1, 1, 1, 1, 0, 0, 0},
    {"1x1 80->240 at 2x2", 2, 80, 240, 2, 2, 1, 1, 1, 1, 0, 0, 0},
};
#define CASE_COUNT (sizeof CASES / sizeof CASES[0])

/* Tiny shapes for the kernel-only tests under Oclgrind. */
static const conv_case SMALL_CASES[] = {
    {"small 3x3 s2 p1", 3, 2, 3, 5, 6, 3, 3, 2, 2, 1, 1, 1},
    {"small 3x5 s(2,1) p(1,2)", 3, 2, 2, 4, 5, 3, 5, 2, 1, 1, 2, 0},
};
#define SMALL_CASE_COUNT (sizeof SMALL_CASES / sizeof SMALL_CASES[0])

static const conv_case *kernel_cases(size_t *count) {
    if (harness_small()) {
        *count = SMALL_CASE_COUNT;
        return SMALL_CASES;
    }
    *count = CASE_COUNT;
    return CASES;
}

static int out_h(const conv_case *c) { return (c->h + 2 * c->pad_h - c->kh) / c->stride_h + 1; }
static int out_w(const conv_case *c) { return (c->w + 2 * c->pad_w - c->kw) / c->stride_w + 1; }
static size_t x_count(const conv_case *c) { return (size_t)c->n * c->cin * c->h * c->w; }
static size_t w_count(const conv_case *c) { return (size_t)c->cout * c->cin * c->kh * c->kw; }
static size_t k_len(const conv_case *c) { return (size_t)c->cin * c->kh * c->kw; }
static size_t plane(const conv_case *c) { return (size_t)out_h(c) * out_w(c); }
static size_t y_count(const conv_case *c) { return (size_t)c->n * c->cout * plane(c); }
static oclseg_conv_params params(const conv_case *c) {
    oclseg_conv_params p = {c->stride_h, c->stride_w, c->pad_h, c->pad_w};
    return p;
}

/* ---- naive double references ---------------------------------------------------------- */

/* Input index of tap (ky, kx) of output (oy, ox), or -1 when it falls in the padding. */
static long input_index(const conv_case *c, int n, int ci, int oy, int ox, int ky, int kx) {
    int iy = oy * c->stride_h - c->pad_h + ky, ix = ox * c->stride_w - c->pad_w + kx;
    if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) return -1;
    return (((long)n * c->cin + ci) * c->h + iy) * c->w + ix;
}

/* y (N, Cout, Ho, Wo) = conv(x, w) + b (b may be NULL). */
static void ref_forward(const conv_case *c, const double *x, const double *w, const double *b,
                        double *y) {
    int ho = out_h(c), wo = out_w(c);
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                long i = input_index(c, n, ci, oy, ox, ky, kx);
                                if (i >= 0)
                                    s += x[i] * w[((co * c->cin + ci) * c->kh + ky) * c->kw + kx];
                            }
                    y[((n * c->cout + co) * ho + oy) * wo + ox] = s;
                }
}

/* Gradients of sum(y * dy): dx, dw, db (each may be NULL). */
static void ref_backward(const conv_case *c, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *db) {
    int ho = out_h(c), wo = out_w(c);
    if (dx) memset(dx, 0, x_count(c) * sizeof *dx);
    if (dw) memset(dw, 0, w_count(c) * sizeof *dw);
    if (db) memset(db, 0, (size_t)c->cout * sizeof *db);
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double g = dy[((n * c->cout + co) * ho + oy) * wo + ox];
                    if (db) db[co] += g;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                long i = input_index(c, n, ci, oy, ox, ky, kx);
                                if (i < 0) continue;
                                size_t wi = ((size_t)(co * c->cin + ci) * c->kh + ky) * c->kw + kx;
                                if (dx) dx[i] += g * w[wi];
                                if (dw) dw[wi] += g * x[i];
                            }
                }
}

/* cols (count, K, P) of images [n0, n0 + count). */
static void ref_im2col(const conv_case *c, const double *x, int n0, int count, double *cols) {
    int ho = out_h(c), wo = out_w(c);
    size_t k_n = k_len(c), p_n = plane(c);
    for (int b = 0; b < count; b++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int kx = 0; kx < c->kw; kx++)
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++) {
                            size_t k = ((size_t)ci * c->kh + ky) * c->kw + kx;
                            long i = input_index(c, n0 + b, ci, oy, ox, ky, kx);
                            cols[(b * k_n + k) * p_n + (size_t)oy * wo + ox] = i < 0 ? 0.0 : x[i];
                        }
}

/* dx (N, Cin, H, W) = scatter-add of cols (N, K, P): the adjoint of im2col. */
static void ref_col2im(const conv_case *c, const double *cols, double *dx) {
    int ho = out_h(c), wo = out_w(c);
    size_t k_n = k_len(c), p_n = plane(c);
    memset(dx, 0, x_count(c) * sizeof *dx);
    for (int n = 0; n < c->n; n++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int kx = 0; kx < c->kw; kx++)
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++) {
                            size_t k = ((size_t)ci * c->kh + ky) * c->kw + kx;
                            long i = input_index(c, n, ci, oy, ox, ky, kx);
                            if (i >= 0) dx[i] += cols[(n * k_n + k) * p_n + (size_t)oy * wo + ox];
                        }
}

/* ---- host data for one case ------------------------------------------------------------ */

typedef struct case_data {
    float *x, *w, *b, *dy;      /* inputs */
    double *y, *dx, *dw, *db;   /* references */
} case_data;

static double *widen(const float *src, size_t n) { return harness_to_double(src, n); }

static case_data case_data_make(const conv_case *c, uint64_t seed) {
    case_data d;
    d.x = malloc(x_count(c) * sizeof(float));
    d.w = malloc(w_count(c) * sizeof(float));
    d.b = malloc((size_t)c->cout * sizeof(float));
    d.dy = malloc(y_count(c) * sizeof(float));
    d.y = malloc(y_count(c) * sizeof(double));
    d.dx = malloc(x_count(c) * sizeof(double));
    d.dw = malloc(w_count(c) * sizeof(double));
    d.db = malloc((size_t)c->cout * sizeof(double));
    ck_assert(d.x && d.w && d.b && d.dy && d.y && d.dx && d.dw && d.db);
    harness_fill_uniform(d.x, x_count(c), -1.0f, 1.0f, seed);
    harness_fill_uniform(d.w, w_count(c), -1.0f, 1.0f, seed + 1);
    harness_fill_uniform(d.b, (size_t)c->cout, -1.0f, 1.0f, seed + 2);
    harness_fill_uniform(d.dy, y_count(c), -1.0f, 1.0f, seed + 3);
    double *xd = widen(d.x, x_count(c)), *wd = widen(d.w, w_count(c));
    double *bd = widen(d.b, (size_t)c->cout), *dyd = widen(d.dy, y_count(c));
    ref_forward(c, xd, wd, c->bias ? bd : NULL, d.y);
    ref_backward(c, xd, wd, dyd, d.dx, d.dw, d.db);
    free(xd);
    free(wd);
    free(bd);
    free(dyd);
    return d;
}

static void case_data_free(case_data *d) {
    free(d->x);
    free(d->w);
    free(d->b);
    free(d->dy);
    free(d->y);
    free(d->dx);
    free(d->dw);
    free(d->db);
}

/* Device buffers for one case. */
typedef struct case_bufs {
    hbuf x, w, b, dy, y, dx, dw, db;
    oclseg_tensor tx, tw, tb, tdy, ty, tdx, tdw, tdb;
} case_bufs;

static case_bufs case_bufs_make(oclseg_ctx *ctx, const conv_case *c, const case_data *d) {
    case_bufs B;
    int ho = out_h(c), wo = out_w(c);
    B.x = hb_from(ctx, d->x, x_count(c));
    B.w = hb_from(ctx, d->w, w_count(c));
    B.b = hb_from(ctx, d->b, (size_t)c->cout);
    B.dy = hb_from(ctx, d->dy, y_count(c));
    B.y = hb_create(ctx, y_count(c));
    B.dx = hb_create(ctx, x_count(c));
    B.dw = hb_create(ctx, w_count(c));
    B.db = hb_create(ctx, (size_t)c->cout);
    B.tx = hb_tensor(&B.x, c->n, c->cin, c->h, c->w);
    B.tw = hb_tensor(&B.w, c->cout, c->cin, c->kh, c->kw);
    B.tb = hb_tensor(&B.b, c->cout, 1, 1, 1);
    B.tdy = hb_tensor(&B.dy, c->n, c->cout, ho, wo);
    B.ty = hb_tensor(&B.y, c->n, c->cout, ho, wo);
    B.tdx = hb_tensor(&B.dx, c->n, c->cin, c->h, c->w);
    B.tdw = hb_tensor(&B.dw, c->cout, c->cin, c->kh, c->kw);
    B.tdb = hb_tensor(&B.db, c->cout, 1, 1, 1);
    return B;
}

static void case_bufs_free(case_bufs *B) {
    hb_free(&B->x);
    hb_free(&B->w);
    hb_free(&B->b);
    hb_free(&B->dy);
    hb_free(&B->y);
    hb_free(&B->dx);
    hb_free(&B->dw);
    hb_free(&B->db);
}

/* Which gradients a backward call asks for. */
enum { WANT_DX = 1, WANT_DW = 2, WANT_DB = 4, WANT_ALL = 7 };

static void check_forward(oclseg_ctx *ctx, const conv_case *c, const case_data *d, case_bufs *B) {
    char what[512];
    snprintf(what, sizeof what, "conv2d forward [%s] on %s", c->name, ctx->info.name);
    hb_poison(&B->y);
    ck_assert_int_eq(op_conv2d_forward(ctx, &B->tx, &B->tw, c->bias ? &B->tb : NULL, &B->ty,
                                       params(c)),
                     OCLSEG_OK);
    float *y = malloc(y_count(c) * sizeof(float));
    hb_download(&B->y, y, what);
    harness_compare(what, y, d->y, y_count(c), atol_for(k_len(c) + 1), RTOL);
    free(y);
}

/* Runs the backward for `want` on poisoned outputs and checks what was asked for. Returns the
 * downloaded dw (caller frees) for determinism checks. */
static float *check_backward(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                             case_bufs *B, int want) {
    char what[512];
    hb_poison(&B->dx);
    hb_poison(&B->dw);
    hb_poison(&B->db);
    ck_assert_int_eq(op_conv2d_backward(ctx, &B->tx, &B->tw, &B->tdy,
                                        (want & WANT_DX) ? &B->tdx : NULL,
                                        (want & WANT_DW) ? &B->tdw : NULL,
                                        (want & WANT_DB) ? &B->tdb : NULL, params(c)),
                     OCLSEG_OK);
    float *dx = malloc(x_count(c) * sizeof(float)), *dw = malloc(w_count(c) * sizeof(float));
    float *db = malloc((size_t)c->cout * sizeof(float));
    const size_t batch_terms = plane(c) * (size_t)c->n;
    if (want & WANT_DX) {
        snprintf(what, sizeof what, "conv2d dx [%s] want %d on %s", c->name, want, ctx->info.name);
        hb_download(&B->dx, dx, what);
        harness_compare(what, dx, d->dx, x_count(c),
                        atol_for((size_t)c->cout * c->kh * c->kw), RTOL);
    }
    if (want & WANT_DW) {
        snprintf(what, sizeof what, "conv2d dw [%s] want %d on %s", c->name, want, ctx->info.name);
        hb_download(&B->dw, dw, what);
        harness_compare(what, dw, d->dw, w_count(c), atol_for(batch_terms), RTOL);
    }
    if (want & WANT_DB) {
        snprintf(what, sizeof what, "conv2d dbias [%s] want %d on %s", c->name, want,
                 ctx->info.name);
        hb_download(&B->db, db, what);
        harness_compare(what, db, d->db, (size_t)c->cout, atol_for(batch_terms), RTOL);
    }
    free(dx);
    free(db);
    return dw;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The reference backward against central differences of the reference forward (in double).
 * L(x, w, b) = sum(y * g) is linear in each argument, so the central difference is exact up to
 * rounding: |error| <~ 1e-16 * |L| / h = 1e-12 for h = 1e-3, |L| < 10; tolerance 1e-8. */
START_TEST(reference_matches_finite_differences) {
    const conv_case c = {"fd 3x2 s(2,1) p(1,1)", 2, 2, 3, 5, 4, 3, 2, 2, 1, 1, 1, 1};
    size_t nx = x_count(&c), nw = w_count(&c), ny = y_count(&c), nb = (size_t)c.cout;
    double *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(nb * sizeof *b);
    double *g = malloc(ny * sizeof *g), *y = malloc(ny * sizeof *y);
    double *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw), *db = malloc(nb * sizeof *db);
    float *tmp = malloc((nx + nw + nb + ny) * sizeof *tmp);
    harness_fill_uniform(tmp, nx + nw + nb + ny, -1.0f, 1.0f, 99);
    for (size_t i = 0; i < nx; i++) x[i] = tmp[i];
    for (size_t i = 0; i < nw; i++) w[i] = tmp[nx + i];
    for (size_t i = 0; i < nb; i++) b[i] = tmp[nx + nw + i];
    for (size_t i = 0; i < ny; i++) g[i] = tmp[nx + nw + nb + i];
    ref_backward(&c, x, w, g, dx, dw, db);

    const double h = 1e-3, tol = 1e-8;
    double *params_of[3] = {x, w, b}, *grads[3] = {dx, dw, db};
    size_t counts[3] = {nx, nw, nb};
    const char *names[3] = {"dx", "dw", "dbias"};
    for (int which = 0; which < 3; which++) {
        for (size_t i = 0; i < counts[which]; i++) {
            double saved = params_of[which][i], loss[2];
            for (int s = 0; s < 2; s++) {
                params_of[which][i] = saved + (s ? -h : h);
                ref_forward(&c, x, w, b, y);
                loss[s] = 0.0;
                for (size_t j = 0; j < ny; j++) loss[s] += y[j] * g[j];
            }
            params_of[which][i] = saved;
            double fd = (loss[0] - loss[1]) / (2.0 * h);
            ck_assert_msg(fabs(fd - grads[which][i]) <= tol, "reference %s[%zu] = %.12g, FD %.12g",
                          names[which], i, grads[which][i], fd);
        }
    }
    free(x), free(w), free(b), free(g), free(y), free(dx), free(dw), free(db), free(tmp);
}
END_TEST

START_TEST(forward_matches_reference) {
    if (harness_no_gemm()) return;
    for (size_t ci = 0; ci < CASE_COUNT; ci++) {
        const conv_case *c = &CASES[ci];
        case_data d = case_data_make(c, 10 + 7 * ci);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            case_bufs B = case_bufs_make(ctx, c, &d);
            check_forward(ctx, c, &d, &B);
            case_bufs_free(&B);
        }
        case_data_free(&d);
    }
}
END_TEST

/* All three gradients at once, twice: the second run must give the same bits (determinism). */
START_TEST(backward_matches_reference) {
    if (harness_no_gemm()) return;
    for (size_t ci = 0; ci < CASE_COUNT; ci++) {
        const conv_case *c = &CASES[ci];
        case_data d = case_data_make(c, 200 + 7 * ci);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            case_bufs B = case_bufs_make(ctx, c, &d);
            float *dw1 = check_backward(ctx, c, &d, &B, WANT_ALL);
            float *dw2 = check_backward(ctx, c, &d, &B, WANT_ALL);
            ck_assert_msg(memcmp(dw1, dw2, w_count(c) * sizeof(float)) == 0,
                          "conv2d dw [%s] differs between two runs on %s", c->name,
                          ctx->info.name);
            free(dw1);
            free(dw2);
            case_bufs_free(&B);
        }
        case_data_free(&d);
    }
}
END_TEST

/* Each gradient alone (the others NULL), on a general and on the pointwise path. */
START_TEST(backward_with_null_outputs) {
    if (harness_no_gemm()) return;
    const size_t picks[] = {0, 2, 4};
    const int wants[] = {WANT_DX, WANT_DW, WANT_DB, WANT_DX | WANT_DB};
    for (size_t pi = 0; pi < sizeof picks / sizeof picks[0]; pi++) {
        const conv_case *c = &CASES[picks[pi]];
        case_data d = case_data_make(c, 400 + 7 * pi);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            case_bufs B = case_bufs_make(ctx, c, &d);
            for (size_t wi = 0; wi < sizeof wants / sizeof wants[0]; wi++)
                free(check_backward(ctx, c, &d, &B, wants[wi]));
            /* nothing asked for: a valid no-op */
            ck_assert_int_eq(op_conv2d_backward(ctx, &B.tx, &B.tw, &B.tdy, NULL, NULL, NULL,
                                                params(c)),
                             OCLSEG_OK);
            case_bufs_free(&B);
        }
        case_data_free(&d);
    }
}
END_TEST

/* A column budget of two images forces chunks [0, 2) and [2, 3): offsets across chunks. */
START_TEST(chunked_columns_match_reference) {
    if (harness_no_gemm()) return;
    const size_t picks[] = {0, 4};
    for (size_t pi = 0; pi < sizeof picks / sizeof picks[0]; pi++) {
        const conv_case *c = &CASES[picks[pi]];
        case_data d = case_data_make(c, 600 + 7 * pi);
        conv2d_set_cols_budget(2 * k_len(c) * plane(c) * sizeof(float) + 4);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            case_bufs B = case_bufs_make(ctx, c, &d);
            check_forward(ctx, c, &d, &B);
            free(check_backward(ctx, c, &d, &B, WANT_ALL));
            case_bufs_free(&B);
        }
        conv2d_set_cols_budget(0);
        case_data_free(&d);
    }
}
END_TEST

/* im2col of images [1, 3) into a guarded buffer at a non-zero column offset: an exact copy. */
START_TEST(im2col_matches_reference) {
    size_t count;
    const conv_case *cases = kernel_cases(&count);
    for (size_t ci = 0; ci < count; ci++) {
        const conv_case *c = &cases[ci];
        const int n0 = 1, images = c->n - 1;
        size_t ncols = (size_t)images * k_len(c) * plane(c);
        float *x = malloc(x_count(c) * sizeof *x), *cols = malloc(ncols * sizeof *cols);
        double *ref = malloc(ncols * sizeof *ref);
        harness_fill_uniform(x, x_count(c), -1.0f, 1.0f, 800 + ci);
        double *xd = widen(x, x_count(c));
        ref_im2col(c, xd, n0, images, ref);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            char what[512];
            snprintf(what, sizeof what, "conv2d im2col [%s] on %s", c->name, ctx->info.name);
            hbuf bx = hb_from(ctx, x, x_count(c)), bc = hb_create(ctx, ncols);
            oclseg_tensor tx = hb_tensor(&bx, c->n, c->cin, c->h, c->w);
            oclseg_tensor tw = oclseg_tensor_view(bx.buf, 0, c->cout, c->cin, c->kh, c->kw);
            conv2d_geometry g;
            ck_assert_int_eq(conv2d_geometry_make("test", &tx, &tw, params(c), &g), OCLSEG_OK);
            ck_assert_int_eq(g.ho, out_h(c));
            ck_assert_int_eq(g.wo, out_w(c));
            ck_assert_int_eq(conv2d_im2col(ctx, &g, &tx, n0, images, bc.buf, bc.lead), OCLSEG_OK);
            hb_download(&bc, cols, what);
            harness_compare(what, cols, ref, ncols, 0.0, 0.0);
            hb_free(&bx);
            hb_free(&bc);
        }
        free(x), free(cols), free(ref), free(xd);
    }
}
END_TEST

/* col2im of random columns, in chunks [0, N-1) and [N-1, N), vs the scatter-add reference. */
START_TEST(col2im_matches_reference) {
    size_t count;
    const conv_case *cases = kernel_cases(&count);
    for (size_t ci = 0; ci < count; ci++) {
        const conv_case *c = &cases[ci];
        size_t ncols = (size_t)c->n * k_len(c) * plane(c), per_image = k_len(c) * plane(c);
        float *cols = malloc(ncols * sizeof *cols), *dx = malloc(x_count(c) * sizeof *dx);
        double *ref = malloc(x_count(c) * sizeof *ref);
        harness_fill_uniform(cols, ncols, -1.0f, 1.0f, 900 + ci);
        double *cd = widen(cols, ncols);
        ref_col2im(c, cd, ref);
        /* an input element receives at most ceil(KH/sh) * ceil(KW/sw) <= KH*KW column entries */
        double atol = atol_for((size_t)c->kh * c->kw);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            char what[512];
            snprintf(what, sizeof what, "conv2d col2im [%s] on %s", c->name, ctx->info.name);
            hbuf bc = hb_from(ctx, cols, ncols), bx = hb_create(ctx, x_count(c));
            oclseg_tensor tdx = hb_tensor(&bx, c->n, c->cin, c->h, c->w);
            oclseg_tensor tw = oclseg_tensor_view(bc.buf, 0, c->cout, c->cin, c->kh, c->kw);
            conv2d_geometry g;
            ck_assert_int_eq(conv2d_geometry_make("test", &tdx, &tw, params(c), &g), OCLSEG_OK);
            const int split = c->n - 1;
            ck_assert_int_eq(conv2d_col2im(ctx, &g, bc.buf, bc.lead, 0, split, &tdx), OCLSEG_OK);
            ck_assert_int_eq(
                conv2d_col2im(ctx, &g, bc.buf, bc.lead + split * per_image, split, 1, &tdx),
                OCLSEG_OK);
            hb_download(&bx, dx, what);
            harness_compare(what, dx, ref, x_count(c), atol, RTOL);
            hb_free(&bc);
            hb_free(&bx);
        }
        free(cols), free(dx), free(ref), free(cd);
    }
}
END_TEST

/* bias add, bias gradient, and the op's backward with only dbias (no GEMM: runs on Oclgrind).
 * The gradient plane is > REDUCE_WG on one case and < it on the other, so both the strided lane
 * loop and idle lanes are exercised. */
START_TEST(bias_kernels_match_reference) {
    const int shapes[2][4] = {{3, 5, 9, 11}, {2, 3, 3, 5}};
    for (int si = 0; si < 2; si++) {
        if (harness_small() && si == 0) continue;
        const int n = shapes[si][0], co = shapes[si][1], ho = shapes[si][2], wo = shapes[si][3];
        size_t count = (size_t)n * co * ho * wo, pl = (size_t)ho * wo;
        float *y = malloc(count * sizeof *y), *b = malloc((size_t)co * sizeof *b);
        float *got = malloc(count * sizeof *got);
        double *ref = malloc(count * sizeof *ref), *dref = calloc((size_t)co, sizeof *dref);
        harness_fill_uniform(y, count, -1.0f, 1.0f, 1000 + si);
        harness_fill_uniform(b, (size_t)co, -1.0f, 1.0f, 1100 + si);
        for (size_t i = 0; i < count; i++) {
            size_t c = (i / pl) % (size_t)co;
            ref[i] = (double)y[i] + (double)b[c];
            dref[c] += y[i];
        }
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            char what[512];
            hbuf by = hb_from(ctx, y, count), bb = hb_from(ctx, b, (size_t)co);
            hbuf bdb = hb_create(ctx, (size_t)co);
            oclseg_tensor ty = hb_tensor(&by, n, co, ho, wo), tb = hb_tensor(&bb, co, 1, 1, 1);
            oclseg_tensor tdb = hb_tensor(&bdb, co, 1, 1, 1);
            /* gradient first (y still holds dy), through the op with dx = dw = NULL */
            conv_case c = {"bias", n, 2, co, ho, wo, 1, 1, 1, 1, 0, 0, 1};
            float *xdummy = calloc(x_count(&c), sizeof(float));
            float *wdummy = calloc(w_count(&c), sizeof(float));
            hbuf bx = hb_from(ctx, xdummy, x_count(&c)), bw = hb_from(ctx, wdummy, w_count(&c));
            oclseg_tensor tx = hb_tensor(&bx, n, 2, ho, wo), tw = hb_tensor(&bw, co, 2, 1, 1);
            snprintf(what, sizeof what, "conv2d dbias only (%d,%d,%d,%d) on %s", n, co, ho, wo,
                     ctx->info.name);
            ck_assert_int_eq(
                op_conv2d_backward(ctx, &tx, &tw, &ty, NULL, NULL, &tdb, params(&c)), OCLSEG_OK);
            hb_download(&bdb, got, what);
            harness_compare(what, got, dref, (size_t)co, atol_for((size_t)n * pl), RTOL);
            /* and the kernel helper directly, into a re-poisoned buffer */
            hb_poison(&bdb);
            ck_assert_int_eq(conv2d_bias_grad(ctx, &ty, &tdb), OCLSEG_OK);
            hb_download(&bdb, got, what);
            harness_compare(what, got, dref, (size_t)co, atol_for((size_t)n * pl), RTOL);

            snprintf(what, sizeof what, "conv2d bias add (%d,%d,%d,%d) on %s", n, co, ho, wo,
                     ctx->info.name);
            ck_assert_int_eq(conv2d_bias_add(ctx, &tb, &ty), OCLSEG_OK);
            hb_download(&by, got, what);
            harness_compare(what, got, ref, count, atol_for(2), RTOL);
            hb_free(&by), hb_free(&bb), hb_free(&bdb), hb_free(&bx), hb_free(&bw);
            free(xdummy), free(wdummy);
        }
        free(y), free(b), free(got), free(ref), free(dref);
    }
}
END_TEST

/* Shape mismatches and impossible parameters are errors, never launches. */
START_TEST(invalid_arguments_are_rejected) {
    const conv_case *c = &CASES[0];
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        hbuf buf = hb_create(ctx, 4096);
        int ho = out_h(c), wo = out_w(c);
        oclseg_tensor x = oclseg_tensor_view(buf.buf, 0, c->n, c->cin, c->h, c->w);
        oclseg_tensor w = oclseg_tensor_view(buf.buf, 0, c->cout, c->cin, c->kh, c->kw);
        oclseg_tensor w_bad = oclseg_tensor_view(buf.buf, 0, c->cout, c->cin + 1, c->kh, c->kw);
        oclseg_tensor y = oclseg_tensor_view(buf.buf, 0, c->n, c->cout, ho, wo);
        oclseg_tensor y_bad = oclseg_tensor_view(buf.buf, 0, c->n, c->cout, ho + 1, wo);
        oclseg_tensor b_bad = oclseg_tensor_view(buf.buf, 0, c->cout + 1, 1, 1, 1);
        oclseg_tensor dx_bad = oclseg_tensor_view(buf.buf, 0, c->n, c->cin, c->h, c->w + 1);
        oclseg_conv_params p = params(c), p_zero_stride = p, p_neg_pad = p;
        p_zero_stride.stride_w = 0;
        p_neg_pad.pad_h = -1;
        oclseg_conv_params p_big = {1, 1, 0, 0};
        oclseg_tensor w_big = oclseg_tensor_view(buf.buf, 0, 1, c->cin, c->h + 1, 1);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w_bad, NULL, &y, p), OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w, NULL, &y_bad, p), OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w, &b_bad, &y, p), OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w, NULL, &y, p_zero_stride),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w, NULL, &y, p_neg_pad),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_forward(ctx, &x, &w_big, NULL, &y, p_big),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_backward(ctx, &x, &w, &y_bad, NULL, NULL, NULL, p),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_backward(ctx, &x, &w, &y, &dx_bad, NULL, NULL, p),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_backward(ctx, &x, &w, &y, NULL, &w_bad, NULL, p),
                         OCLSEG_ERR_INVALID_ARG);
        ck_assert_int_eq(op_conv2d_backward(ctx, &x, &w, &y, NULL, NULL, &b_bad, p),
                         OCLSEG_ERR_INVALID_ARG);
        hb_free(&buf);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_conv2d");
    TCase *tc = tcase_create("conv2d");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, reference_matches_finite_differences);
    tcase_add_test(tc, im2col_matches_reference);
    tcase_add_test(tc, col2im_matches_reference);
    tcase_add_test(tc, bias_kernels_match_reference);
    tcase_add_test(tc, invalid_arguments_are_rejected);
    tcase_add_test(tc, forward_matches_reference);
    tcase_add_test(tc, backward_matches_reference);
    tcase_add_test(tc, backward_with_null_outputs);
    tcase_add_test(tc, chunked_columns_match_reference);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
