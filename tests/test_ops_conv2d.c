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

static const conv_case *kernel_cases(size_t *count) {
    return HARNESS_CASES(CASES, SMALL_CASES, count);
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

/* im2col (to_cols: cols (count, K, P) of images [n0, n0 + count) from `image`) and its adjoint
 * col2im (to_cols 0: `image` (N, Cin, H, W) = the scatter-add of cols (N, K, P)). */
static void ref_cols(const conv_case *c, int to_cols, int n0, int count, double *image,
                     double *cols) {
    int ho = out_h(c), wo = out_w(c);
    size_t k_n = k_len(c), p_n = plane(c);
    if (!to_cols) memset(image, 0, x_count(c) * sizeof *image);
    for (int b = 0; b < count; b++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int kx = 0; kx < c->kw; kx++)
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++) {
                            size_t k = ((size_t)ci * c->kh + ky) * c->kw + kx;
                            long i = input_index(c, n0 + b, ci, oy, ox, ky, kx);
                            double *col = &cols[(b * k_n + k) * p_n + (size_t)oy * wo + ox];
                            if (to_cols) *col = i < 0 ? 0.0 : image[i];
                            else if (i >= 0) image[i] += *col;
                        }
}

/* ---- host data and device buffers for one case (in one arena) ---------------------------- */

typedef struct case_data {
    float *x, *w, *b, *dy;      /* inputs */
    double *y, *dx, *dw, *db;   /* references */
} case_data;

static case_data case_data_make(harness_arena *A, const conv_case *c, uint64_t seed) {
    case_data d;
    d.x = ha_uniform(A, x_count(c), -1.0f, 1.0f, seed);
    d.w = ha_uniform(A, w_count(c), -1.0f, 1.0f, seed + 1);
    d.b = ha_uniform(A, (size_t)c->cout, -1.0f, 1.0f, seed + 2);
    d.dy = ha_uniform(A, y_count(c), -1.0f, 1.0f, seed + 3);
    d.y = ha_doubles(A, y_count(c));
    d.dx = ha_doubles(A, x_count(c));
    d.dw = ha_doubles(A, w_count(c));
    d.db = ha_doubles(A, (size_t)c->cout);
    const double *xd = ha_widen(A, d.x, x_count(c)), *wd = ha_widen(A, d.w, w_count(c));
    const double *bd = ha_widen(A, d.b, (size_t)c->cout), *dyd = ha_widen(A, d.dy, y_count(c));
    ref_forward(c, xd, wd, c->bias ? bd : NULL, d.y);
    ref_backward(c, xd, wd, dyd, d.dx, d.dw, d.db);
    return d;
}

/* Device buffers for one case. */
typedef struct case_bufs {
    hbuf *x, *w, *b, *dy, *y, *dx, *dw, *db;
    oclseg_tensor tx, tw, tb, tdy, ty, tdx, tdw, tdb;
} case_bufs;

static case_bufs case_bufs_make(harness_arena *A, oclseg_ctx *ctx, const conv_case *c,
                                const case_data *d) {
    case_bufs B;
    int ho = out_h(c), wo = out_w(c);
    B.x = ha_buf_from(A, ctx, d->x, x_count(c));
    B.w = ha_buf_from(A, ctx, d->w, w_count(c));
    B.b = ha_buf_from(A, ctx, d->b, (size_t)c->cout);
    B.dy = ha_buf_from(A, ctx, d->dy, y_count(c));
    B.y = ha_buf(A, ctx, y_count(c));
    B.dx = ha_buf(A, ctx, x_count(c));
    B.dw = ha_buf(A, ctx, w_count(c));
    B.db = ha_buf(A, ctx, (size_t)c->cout);
    B.tx = hb_tensor(B.x, c->n, c->cin, c->h, c->w);
    B.tw = hb_tensor(B.w, c->cout, c->cin, c->kh, c->kw);
    B.tb = hb_tensor(B.b, c->cout, 1, 1, 1);
    B.tdy = hb_tensor(B.dy, c->n, c->cout, ho, wo);
    B.ty = hb_tensor(B.y, c->n, c->cout, ho, wo);
    B.tdx = hb_tensor(B.dx, c->n, c->cin, c->h, c->w);
    B.tdw = hb_tensor(B.dw, c->cout, c->cin, c->kh, c->kw);
    B.tdb = hb_tensor(B.db, c->cout, 1, 1, 1);
    return B;
}

/* Which gradients a backward call asks for. */
enum { WANT_DX = 1, WANT_DW = 2, WANT_DB = 4, WANT_ALL = 7 };

static void check_forward(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                          case_bufs *B) {
    hb_poison(B->y);
    ck_assert_int_eq(op_conv2d_forward(ctx, &B->tx, &B->tw, c->bias ? &B->tb : NULL, &B->ty,
                                       params(c)),
                     OCLSEG_OK);
    hb_check(B->y, d->y, atol_for(k_len(c) + 1), RTOL, "conv2d forward [%s] on %s", c->name,
             ctx->info.name);
}

/* Runs the backward for `want` on poisoned outputs and checks what was asked for. Returns the
 * downloaded dw (caller frees) for determinism checks. */
static float *check_backward(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                             case_bufs *B, int want) {
    char what[512];
    hb_poison(B->dx);
    hb_poison(B->dw);
    hb_poison(B->db);
    ck_assert_int_eq(op_conv2d_backward(ctx, &B->tx, &B->tw, &B->tdy,
                                        (want & WANT_DX) ? &B->tdx : NULL,
                                        (want & WANT_DW) ? &B->tdw : NULL,
                                        (want & WANT_DB) ? &B->tdb : NULL, params(c)),
                     OCLSEG_OK);
    float *dw = malloc(w_count(c) * sizeof(float));
    ck_assert_ptr_nonnull(dw);
    const size_t batch_terms = plane(c) * (size_t)c->n;
    const char *dev = ctx->info.name;
    if (want & WANT_DX)
        hb_check(B->dx, d->dx, atol_for((size_t)c->cout * c->kh * c->kw), RTOL,
                 "conv2d dx [%s] want %d on %s", c->name, want, dev);
    if (want & WANT_DW) {
        snprintf(what, sizeof what, "conv2d dw [%s] want %d on %s", c->name, want, dev);
        hb_download(B->dw, dw, what);
        harness_compare(what, dw, d->dw, w_count(c), atol_for(batch_terms), RTOL);
    }
    if (want & WANT_DB)
        hb_check(B->db, d->db, atol_for(batch_terms), RTOL, "conv2d dbias [%s] want %d on %s",
                 c->name, want, dev);
    return dw;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The loss sum(y * g) of the reference forward at the current x, w, b (for the FD check). */
typedef struct fd_state {
    const conv_case *c;
    const double *x, *w, *b, *g;
    double *y;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    ref_forward(f->c, f->x, f->w, f->b, f->y);
    double loss = 0.0;
    for (size_t j = 0; j < y_count(f->c); j++) loss += f->y[j] * f->g[j];
    return loss;
}

/* The reference backward against central differences of the reference forward (in double).
 * L(x, w, b) = sum(y * g) is linear in each argument, so the central difference is exact up to
 * rounding: |error| <~ 1e-16 * |L| / h = 1e-12 for h = 1e-3, |L| < 10; tolerance 1e-8. */
START_TEST(reference_matches_finite_differences) {
    const conv_case c = {"fd 3x2 s(2,1) p(1,1)", 2, 2, 3, 5, 4, 3, 2, 2, 1, 1, 1, 1};
    size_t nx = x_count(&c), nw = w_count(&c), ny = y_count(&c), nb = (size_t)c.cout;
    harness_arena A = {0};
    const float *tmp = ha_uniform(&A, nx + nw + nb + ny, -1.0f, 1.0f, 99);
    double *x = ha_widen(&A, tmp, nx), *w = ha_widen(&A, tmp + nx, nw);
    double *b = ha_widen(&A, tmp + nx + nw, nb), *g = ha_widen(&A, tmp + nx + nw + nb, ny);
    double *dx = ha_doubles(&A, nx), *dw = ha_doubles(&A, nw), *db = ha_doubles(&A, nb);
    ref_backward(&c, x, w, g, dx, dw, db);
    fd_state f = {&c, x, w, b, g, ha_doubles(&A, ny)};
    const harness_fd_arg args[] = {{"dx", x, dx, nx}, {"dw", w, dw, nw}, {"dbias", b, db, nb}};
    harness_check_fd("conv2d reference", fd_loss, &f, args, 3, 1e-3, 1e-8, 0.0);
    ha_free(&A);
}
END_TEST

/* The glue of the GEMM-path tests: for each picked case (NULL: every case), its data seeded
 * `seed + 7 * position` in one arena, and `check` on every device with that case's buffers. */
typedef void (*case_check)(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                           case_bufs *B);

static void run_cases(const size_t *picks, size_t pick_count, uint64_t seed, case_check check) {
    if (harness_no_gemm()) return;
    for (size_t pi = 0; pi < (picks ? pick_count : CASE_COUNT); pi++) {
        const conv_case *c = &CASES[picks ? picks[pi] : pi];
        harness_arena A = {0};
        case_data d = case_data_make(&A, c, seed + 7 * pi);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            case_bufs B = case_bufs_make(&A, harness_ctx(dev), c, &d);
            check(harness_ctx(dev), c, &d, &B);
        }
        ha_free(&A);
    }
}

/* All three gradients at once, twice: the second run must give the same bits (determinism). */
static void backward_twice(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                           case_bufs *B) {
    float *dw1 = check_backward(ctx, c, d, B, WANT_ALL);
    float *dw2 = check_backward(ctx, c, d, B, WANT_ALL);
    ck_assert_msg(memcmp(dw1, dw2, w_count(c) * sizeof(float)) == 0,
                  "conv2d dw [%s] differs between two runs on %s", c->name, ctx->info.name);
    free(dw1);
    free(dw2);
}

/* Each gradient alone (the others NULL), and none (a valid no-op). */
static void backward_each_alone(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                                case_bufs *B) {
    const int wants[] = {WANT_DX, WANT_DW, WANT_DB, WANT_DX | WANT_DB};
    for (size_t wi = 0; wi < sizeof wants / sizeof wants[0]; wi++)
        free(check_backward(ctx, c, d, B, wants[wi]));
    ck_assert_int_eq(op_conv2d_backward(ctx, &B->tx, &B->tw, &B->tdy, NULL, NULL, NULL,
                                        params(c)),
                     OCLSEG_OK);
}

/* A column budget of two images forces chunks [0, 2) and [2, 3): offsets across chunks. */
static void chunked_columns(oclseg_ctx *ctx, const conv_case *c, const case_data *d,
                            case_bufs *B) {
    conv2d_set_cols_budget(2 * k_len(c) * plane(c) * sizeof(float) + 4);
    check_forward(ctx, c, d, B);
    free(check_backward(ctx, c, d, B, WANT_ALL));
    conv2d_set_cols_budget(0);
}

START_TEST(forward_matches_reference) { run_cases(NULL, 0, 10, check_forward); }
END_TEST

START_TEST(backward_matches_reference) { run_cases(NULL, 0, 200, backward_twice); }
END_TEST

/* on a general and on the pointwise path */
START_TEST(backward_with_null_outputs) {
    const size_t picks[] = {0, 2, 4};
    run_cases(picks, 3, 400, backward_each_alone);
}
END_TEST

START_TEST(chunked_columns_match_reference) {
    const size_t picks[] = {0, 4};
    run_cases(picks, 2, 600, chunked_columns);
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
        harness_arena A = {0};
        float *x = ha_uniform(&A, x_count(c), -1.0f, 1.0f, 800 + ci);
        double *ref = ha_doubles(&A, ncols);
        ref_cols(c, 1, n0, images, ha_widen(&A, x, x_count(c)), ref);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            hbuf *bx = ha_buf_from(&A, ctx, x, x_count(c)), *bc = ha_buf(&A, ctx, ncols);
            oclseg_tensor tx = hb_tensor(bx, c->n, c->cin, c->h, c->w);
            oclseg_tensor tw = oclseg_tensor_view(bx->buf, 0, c->cout, c->cin, c->kh, c->kw);
            conv2d_geometry g;
            ck_assert_int_eq(conv2d_geometry_make("test", &tx, &tw, params(c), &g), OCLSEG_OK);
            ck_assert_int_eq(g.ho, out_h(c));
            ck_assert_int_eq(g.wo, out_w(c));
            ck_assert_int_eq(conv2d_im2col(ctx, &g, &tx, n0, images, bc->buf, bc->lead), OCLSEG_OK);
            hb_check(bc, ref, 0.0, 0.0, "conv2d im2col [%s] on %s", c->name, ctx->info.name);
        }
        ha_free(&A);
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
        harness_arena A = {0};
        float *cols = ha_uniform(&A, ncols, -1.0f, 1.0f, 900 + ci);
        double *ref = ha_doubles(&A, x_count(c));
        ref_cols(c, 0, 0, c->n, ref, ha_widen(&A, cols, ncols));
        /* an input element receives at most ceil(KH/sh) * ceil(KW/sw) <= KH*KW column entries */
        double atol = atol_for((size_t)c->kh * c->kw);
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            hbuf *bc = ha_buf_from(&A, ctx, cols, ncols), *bx = ha_buf(&A, ctx, x_count(c));
            oclseg_tensor tdx = hb_tensor(bx, c->n, c->cin, c->h, c->w);
            oclseg_tensor tw = oclseg_tensor_view(bc->buf, 0, c->cout, c->cin, c->kh, c->kw);
            conv2d_geometry g;
            ck_assert_int_eq(conv2d_geometry_make("test", &tdx, &tw, params(c), &g), OCLSEG_OK);
            const int split = c->n - 1;
            ck_assert_int_eq(conv2d_col2im(ctx, &g, bc->buf, bc->lead, 0, split, &tdx), OCLSEG_OK);
            ck_assert_int_eq(
                conv2d_col2im(ctx, &g, bc->buf, bc->lead + split * per_image, split, 1, &tdx),
                OCLSEG_OK);
            hb_check(bx, ref, atol, RTOL, "conv2d col2im [%s] on %s", c->name, ctx->info.name);
        }
        ha_free(&A);
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
        harness_arena A = {0};
        float *y = ha_uniform(&A, count, -1.0f, 1.0f, 1000 + si);
        float *b = ha_uniform(&A, (size_t)co, -1.0f, 1.0f, 1100 + si);
        double *ref = ha_doubles(&A, count), *dref = ha_doubles(&A, (size_t)co);
        for (size_t i = 0; i < count; i++) {
            size_t c = (i / pl) % (size_t)co;
            ref[i] = (double)y[i] + (double)b[c];
            dref[c] += y[i];
        }
        /* the op's backward with dx = dw = NULL needs x and w: zeros of a 2-channel 1x1 conv */
        conv_case c = {"bias", n, 2, co, ho, wo, 1, 1, 1, 1, 0, 0, 1};
        const float *xdummy = ha_floats(&A, x_count(&c)), *wdummy = ha_floats(&A, w_count(&c));
        for (int dev = 0; dev < harness_device_count(); dev++) {
            oclseg_ctx *ctx = harness_ctx(dev);
            hbuf *by = ha_buf_from(&A, ctx, y, count), *bb = ha_buf_from(&A, ctx, b, (size_t)co);
            hbuf *bdb = ha_buf(&A, ctx, (size_t)co);
            oclseg_tensor ty = hb_tensor(by, n, co, ho, wo), tb = hb_tensor(bb, co, 1, 1, 1);
            oclseg_tensor tdb = hb_tensor(bdb, co, 1, 1, 1);
            /* gradient first (y still holds dy), through the op with dx = dw = NULL */
            hbuf *bx = ha_buf_from(&A, ctx, xdummy, x_count(&c));
            hbuf *bw = ha_buf_from(&A, ctx, wdummy, w_count(&c));
            oclseg_tensor tx = hb_tensor(bx, n, 2, ho, wo), tw = hb_tensor(bw, co, 2, 1, 1);
            ck_assert_int_eq(
                op_conv2d_backward(ctx, &tx, &tw, &ty, NULL, NULL, &tdb, params(&c)), OCLSEG_OK);
            const char *dev_name = ctx->info.name;
            hb_check(bdb, dref, atol_for((size_t)n * pl), RTOL,
                     "conv2d dbias only (%d,%d,%d,%d) on %s", n, co, ho, wo, dev_name);
            /* and the kernel helper directly, into a re-poisoned buffer */
            hb_poison(bdb);
            ck_assert_int_eq(conv2d_bias_grad(ctx, &ty, &tdb), OCLSEG_OK);
            hb_check(bdb, dref, atol_for((size_t)n * pl), RTOL,
                     "conv2d dbias only (%d,%d,%d,%d) on %s", n, co, ho, wo, dev_name);
            ck_assert_int_eq(conv2d_bias_add(ctx, &tb, &ty), OCLSEG_OK);
            hb_check(by, ref, atol_for(2), RTOL, "conv2d bias add (%d,%d,%d,%d) on %s", n, co, ho,
                     wo, dev_name);
        }
        ha_free(&A);
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
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w_bad, NULL, &y, p));
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w, NULL, &y_bad, p));
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w, &b_bad, &y, p));
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w, NULL, &y, p_zero_stride));
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w, NULL, &y, p_neg_pad));
        HARNESS_REJECTS(op_conv2d_forward(ctx, &x, &w_big, NULL, &y, p_big));
        HARNESS_REJECTS(op_conv2d_backward(ctx, &x, &w, &y_bad, NULL, NULL, NULL, p));
        HARNESS_REJECTS(op_conv2d_backward(ctx, &x, &w, &y, &dx_bad, NULL, NULL, p));
        HARNESS_REJECTS(op_conv2d_backward(ctx, &x, &w, &y, NULL, &w_bad, NULL, p));
        HARNESS_REJECTS(op_conv2d_backward(ctx, &x, &w, &y, NULL, NULL, &b_bad, p));
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
