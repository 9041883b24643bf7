/* Tests ConvTranspose2d forward/backward and its col2im/im2col/bias-gradient kernels against
 * naive double-precision references (PyTorch semantics), on odd shapes, on every device.
 *
 * Tolerance: inputs, weights and dy are uniform in [-1, 1), so every product is <= 1 in
 * magnitude. An output that float32 accumulates from `terms` products (in any order, GEMM
 * tiles included) is off by at most ~terms * u * max|partial sum| (u = 2^-24); for these
 * random-sign sums the partial sums stay within a few units, so we allow
 * atol = terms * FLT_EPSILON (= 2u per term) plus rtol 1e-5 for large sums. Any indexing slip
 * moves results by O(0.1 .. 1), orders of magnitude above that. Pure copies (im2col) are exact. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv_transpose_internal.h"

static const double RTOL = 1e-5;

typedef struct convt_case {
    const char *name;
    int n, cin, cout, h, w, kh, kw, stride, pad;
    int with_bias;
} convt_case;

static int out_h(const convt_case *c) { return (c->h - 1) * c->stride - 2 * c->pad + c->kh; }
static int out_w(const convt_case *c) { return (c->w - 1) * c->stride - 2 * c->pad + c->kw; }
static size_t x_count(const convt_case *c) { return (size_t)c->n * c->cin * c->h * c->w; }
static size_t w_count(const convt_case *c) { return (size_t)c->cin * c->cout * c->kh * c->kw; }
static size_t y_count(const convt_case *c) {
    return (size_t)c->n * c->cout * out_h(c) * out_w(c);
}
/* cols (N, Cout*KH*KW, H*W) */
static size_t cols_count(const convt_case *c) {
    return (size_t)c->n * c->cout * c->kh * c->kw * c->h * c->w;
}
/* Products summed per output: forward (per y), dx, dw, dbias. */
static int terms_y(const convt_case *c) {
    return c->cin * ((c->kh + c->stride - 1) / c->stride) * ((c->kw + c->stride - 1) / c->stride);
}
static int terms_dx(const convt_case *c) { return c->cout * c->kh * c->kw; }
static int terms_dw(const convt_case *c) { return c->n * c->h * c->w; }
static int terms_db(const convt_case *c) { return c->n * out_h(c) * out_w(c); }
static double atol_for(int terms) { return terms * (double)FLT_EPSILON; }

/* ---- references (double) ---------------------------------------------------------------- */

/* y (N, Cout, Ho, Wo) = bias + scatter of x (N, Cin, H, W) through w (Cin, Cout, KH, KW). */
static void ref_forward(const convt_case *c, const double *x, const double *w, const double *b,
                        double *y) {
    const int ho = out_h(c), wo = out_w(c);
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int i = 0; i < ho * wo; i++)
                y[((size_t)n * c->cout + co) * ho * wo + i] = b ? b[co] : 0.0;
    for (int n = 0; n < c->n; n++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int iy = 0; iy < c->h; iy++)
                for (int ix = 0; ix < c->w; ix++) {
                    double xv = x[(((size_t)n * c->cin + ci) * c->h + iy) * c->w + ix];
                    for (int co = 0; co < c->cout; co++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                int oy = iy * c->stride - c->pad + ky;
                                int ox = ix * c->stride - c->pad + kx;
                                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                                double wv =
                                    w[(((size_t)ci * c->cout + co) * c->kh + ky) * c->kw + kx];
                                y[(((size_t)n * c->cout + co) * ho + oy) * wo + ox] += xv * wv;
                            }
                }
}

/* dx, dw, db (any may be NULL) from dy, by the same index map as ref_forward. */
static void ref_backward(const convt_case *c, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *db) {
    const int ho = out_h(c), wo = out_w(c);
    if (dx) memset(dx, 0, x_count(c) * sizeof *dx);
    if (dw) memset(dw, 0, w_count(c) * sizeof *dw);
    if (db) {
        for (int co = 0; co < c->cout; co++) {
            db[co] = 0.0;
            for (int n = 0; n < c->n; n++)
                for (int i = 0; i < ho * wo; i++)
                    db[co] += dy[((size_t)n * c->cout + co) * ho * wo + i];
        }
    }
    for (int n = 0; n < c->n; n++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int iy = 0; iy < c->h; iy++)
                for (int ix = 0; ix < c->w; ix++) {
                    size_t xi = (((size_t)n * c->cin + ci) * c->h + iy) * c->w + ix;
                    for (int co = 0; co < c->cout; co++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                int oy = iy * c->stride - c->pad + ky;
                                int ox = ix * c->stride - c->pad + kx;
                                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                                size_t wi = (((size_t)ci * c->cout + co) * c->kh + ky) * c->kw + kx;
                                double g = dy[(((size_t)n * c->cout + co) * ho + oy) * wo + ox];
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                }
}

/* to_cols: im2col, cols[n, (co, ky, kx), (iy, ix)] = y[n, co, iy*s - p + ky, ix*s - p + kx]
 * or 0 (y is dy); else col2im, y = bias (b may be NULL) + the scatter of cols: the forward's
 * second half. */
static void ref_cols(const convt_case *c, int to_cols, double *cols, double *y,
                     const double *b) {
    const int ho = out_h(c), wo = out_w(c);
    if (!to_cols)
        for (size_t i = 0; i < y_count(c); i++) y[i] = b ? b[(i / ((size_t)ho * wo)) % c->cout] : 0;
    size_t i = 0;
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int kx = 0; kx < c->kw; kx++)
                    for (int iy = 0; iy < c->h; iy++)
                        for (int ix = 0; ix < c->w; ix++, i++) {
                            int oy = iy * c->stride - c->pad + ky;
                            int ox = ix * c->stride - c->pad + kx;
                            if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) {
                                if (to_cols) cols[i] = 0.0;
                                continue;
                            }
                            double *yv = &y[(((size_t)n * c->cout + co) * ho + oy) * wo + ox];
                            if (to_cols) cols[i] = *yv;
                            else *yv += cols[i];
                        }
}

/* ---- test data and device buffers (one arena per case) ------------------------------------ */

typedef struct convt_data {
    float *x, *w, *b, *dy;   /* (N,Cin,H,W), (Cin,Cout,KH,KW), (Cout), (N,Cout,Ho,Wo) */
    double *y, *dx, *dw, *db; /* references */
} convt_data;

static convt_data make_data(harness_arena *A, const convt_case *c, uint64_t seed) {
    convt_data d;
    d.x = ha_uniform(A, x_count(c), -1.0f, 1.0f, seed);
    d.w = ha_uniform(A, w_count(c), -1.0f, 1.0f, seed + 1);
    d.b = ha_uniform(A, (size_t)c->cout, -1.0f, 1.0f, seed + 2);
    d.dy = ha_uniform(A, y_count(c), -1.0f, 1.0f, seed + 3);
    const double *x = ha_widen(A, d.x, x_count(c)), *w = ha_widen(A, d.w, w_count(c));
    const double *b = ha_widen(A, d.b, (size_t)c->cout), *dy = ha_widen(A, d.dy, y_count(c));
    d.y = ha_doubles(A, y_count(c));
    d.dx = ha_doubles(A, x_count(c));
    d.dw = ha_doubles(A, w_count(c));
    d.db = ha_doubles(A, (size_t)c->cout);
    ref_forward(c, x, w, c->with_bias ? b : NULL, d.y);
    ref_backward(c, x, w, dy, d.dx, d.dw, d.db);
    return d;
}

/* Device buffers of one case on one device: inputs uploaded, outputs poisoned. */
typedef struct convt_bufs {
    hbuf *y, *dx, *dw, *db;
    oclseg_tensor tx, tw, tb, tdy, ty, tdx, tdw, tdb;
} convt_bufs;

static convt_bufs make_bufs(harness_arena *A, oclseg_ctx *ctx, const convt_case *c,
                            const convt_data *d) {
    const int ho = out_h(c), wo = out_w(c);
    convt_bufs B;
    B.tx = hb_tensor(ha_buf_from(A, ctx, d->x, x_count(c)), c->n, c->cin, c->h, c->w);
    B.tw = hb_tensor(ha_buf_from(A, ctx, d->w, w_count(c)), c->cin, c->cout, c->kh, c->kw);
    B.tb = hb_tensor(ha_buf_from(A, ctx, d->b, (size_t)c->cout), c->cout, 1, 1, 1);
    B.tdy = hb_tensor(ha_buf_from(A, ctx, d->dy, y_count(c)), c->n, c->cout, ho, wo);
    B.y = ha_buf(A, ctx, y_count(c));
    B.dx = ha_buf(A, ctx, x_count(c));
    B.dw = ha_buf(A, ctx, w_count(c));
    B.db = ha_buf(A, ctx, (size_t)c->cout);
    B.ty = hb_tensor(B.y, c->n, c->cout, ho, wo);
    B.tdx = hb_tensor(B.dx, c->n, c->cin, c->h, c->w);
    B.tdw = hb_tensor(B.dw, c->cin, c->cout, c->kh, c->kw);
    B.tdb = hb_tensor(B.db, c->cout, 1, 1, 1);
    return B;
}

/* The shared scratch workspace belongs to the context, but the harness reports every buffer
 * still live at exit as a leak; give it back after each test that used it. */
static void release_scratch(void) {
    for (int dev = 0; dev < harness_device_count(); dev++)
        ck_assert_int_eq(oclseg_finish(harness_ctx(dev)), OCLSEG_OK);
    harness_release_scratch();
}

/* ---- the op against the references ---------------------------------------------------------- */

/* Forward (plain and with the fused ReLU: the ReLU of the reference, 1-Lipschitz: same
 * tolerance) on one device. */
static void check_forward(oclseg_ctx *ctx, const convt_case *c, const convt_data *d,
                          convt_bufs *B, harness_arena *A) {
    const char *dev = ctx->info.name;
    const oclseg_tensor *bias = c->with_bias ? &B->tb : NULL;
    ck_assert_int_eq(op_conv_transpose2d_forward(ctx, &B->tx, &B->tw, bias, &B->ty, c->stride,
                                                 c->pad),
                     OCLSEG_OK);
    hb_check(B->y, d->y, atol_for(terms_y(c) + 1), RTOL, "%s forward on %s", c->name, dev);
    ck_assert_int_eq(op_conv_transpose2d_forward_act(ctx, &B->tx, &B->tw, bias, &B->ty,
                                                     c->stride, c->pad, 1),
                     OCLSEG_OK);
    double *y_relu = ha_doubles(A, y_count(c));
    for (size_t i = 0; i < y_count(c); i++) y_relu[i] = d->y[i] > 0 ? d->y[i] : 0.0;
    hb_check(B->y, y_relu, atol_for(terms_y(c) + 1), RTOL, "%s forward on %s", c->name, dev);
}

/* All three gradients at once, then each alone (the NULL ones are skipped, the requested one
 * is still right, dw and dbias bit for bit the same: determinism). */
static void check_backward(oclseg_ctx *ctx, const convt_case *c, const convt_data *d,
                           convt_bufs *B, harness_arena *A) {
    const char *dev = ctx->info.name;
    char what[512];
    float *got_dw = ha_floats(A, w_count(c)), *again_dw = ha_floats(A, w_count(c));
    float *got_db = ha_floats(A, (size_t)c->cout), *again_db = ha_floats(A, (size_t)c->cout);
    ck_assert_int_eq(op_conv_transpose2d_backward(ctx, &B->tx, &B->tw, &B->tdy, &B->tdx,
                                                  &B->tdw, &B->tdb, c->stride, c->pad),
                     OCLSEG_OK);
    hb_check(B->dx, d->dx, atol_for(terms_dx(c)), RTOL, "%s dx on %s", c->name, dev);
    snprintf(what, sizeof what, "%s dw on %s", c->name, dev);
    hb_download(B->dw, got_dw, what);
    harness_compare(what, got_dw, d->dw, w_count(c), atol_for(terms_dw(c)), RTOL);
    snprintf(what, sizeof what, "%s dbias on %s", c->name, dev);
    hb_download(B->db, got_db, what);
    harness_compare(what, got_db, d->db, (size_t)c->cout, atol_for(terms_db(c)), RTOL);

    hb_poison(B->dx);
    hb_poison(B->dw);
    hb_poison(B->db);
    ck_assert_int_eq(op_conv_transpose2d_backward(ctx, &B->tx, &B->tw, &B->tdy, &B->tdx, NULL,
                                                  NULL, c->stride, c->pad),
                     OCLSEG_OK);
    hb_check(B->dx, d->dx, atol_for(terms_dx(c)), RTOL, "%s dx alone on %s", c->name, dev);
    ck_assert_int_eq(op_conv_transpose2d_backward(ctx, &B->tx, &B->tw, &B->tdy, NULL, &B->tdw,
                                                  NULL, c->stride, c->pad),
                     OCLSEG_OK);
    snprintf(what, sizeof what, "%s dw alone on %s", c->name, dev);
    hb_download(B->dw, again_dw, what);
    harness_compare(what, again_dw, d->dw, w_count(c), atol_for(terms_dw(c)), RTOL);
    ck_assert_msg(memcmp(got_dw, again_dw, w_count(c) * sizeof(float)) == 0,
                  "%s: dw differs between two runs (not deterministic)", what);
    ck_assert_int_eq(op_conv_transpose2d_backward(ctx, &B->tx, &B->tw, &B->tdy, NULL, NULL,
                                                  &B->tdb, c->stride, c->pad),
                     OCLSEG_OK);
    snprintf(what, sizeof what, "%s dbias alone on %s", c->name, dev);
    hb_download(B->db, again_db, what);
    ck_assert_msg(memcmp(got_db, again_db, (size_t)c->cout * sizeof(float)) == 0,
                  "%s: dbias differs between two runs (not deterministic)", what);
}

/* The same op in batch chunks of one image (strided offsets into x, dx, y, dy). */
static void check_chunked(oclseg_ctx *ctx, const convt_case *c, const convt_data *d,
                          convt_bufs *B) {
    const char *dev = ctx->info.name;
    size_t saved = convt_cols_max_bytes;
    convt_cols_max_bytes = 1;
    hb_poison(B->y);
    hb_poison(B->dx);
    hb_poison(B->dw);
    int st_f = op_conv_transpose2d_forward(ctx, &B->tx, &B->tw, c->with_bias ? &B->tb : NULL,
                                           &B->ty, c->stride, c->pad);
    int st_b = op_conv_transpose2d_backward(ctx, &B->tx, &B->tw, &B->tdy, &B->tdx, &B->tdw, NULL,
                                            c->stride, c->pad);
    convt_cols_max_bytes = saved;
    ck_assert_int_eq(st_f, OCLSEG_OK);
    ck_assert_int_eq(st_b, OCLSEG_OK);
    hb_check(B->y, d->y, atol_for(terms_y(c) + 1), RTOL, "%s chunked on %s", c->name, dev);
    hb_check(B->dx, d->dx, atol_for(terms_dx(c)), RTOL, "%s chunked on %s", c->name, dev);
    hb_check(B->dw, d->dw, atol_for(terms_dw(c)), RTOL, "%s chunked on %s", c->name, dev);
}

/* Forward, full backward, each gradient alone, determinism, and batch chunks: on every
 * device, in one arena. */
static void check_case(const convt_case *c) {
    harness_arena A = {0};
    convt_data d = make_data(&A, c, 11);
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        convt_bufs B = make_bufs(&A, ctx, c, &d);
        check_forward(ctx, c, &d, &B, &A);
        check_backward(ctx, c, &d, &B, &A);
        check_chunked(ctx, c, &d, &B);
    }
    ha_free(&A);
    release_scratch();
}

/* The model's kernel 4, stride 2, pad 1, on odd sizes, with bias. */
static const convt_case CASE_K4S2 = {"k4 s2 p1", 3, 5, 7, 5, 6, 4, 4, 2, 1, 1};
/* Kernel 3, stride 1, pad 0, no bias. */
static const convt_case CASE_K3S1 = {"k3 s1 p0", 3, 5, 7, 5, 6, 3, 3, 1, 0, 0};
/* Stride 3 with a non-square kernel; KW = 2 < stride leaves output columns that no input
 * reaches (bias only). */
static const convt_case CASE_S3 = {"k5x2 s3 p1", 3, 5, 7, 5, 6, 5, 2, 3, 1, 1};
/* Longer GEMM reductions (Cin 160, Cout*KH*KW 400), the model's 4x4 -> 8x8. */
static const convt_case CASE_WIDE = {"wide k4 s2 p1", 2, 160, 25, 4, 4, 4, 4, 2, 1, 1};
/* The model's last layer shape, reduced: Cout 1 at 16x16 -> 32x32. */
static const convt_case CASE_HEAD = {"head 64->1", 2, 64, 1, 16, 16, 4, 4, 2, 1, 1};

START_TEST(forward_backward_k4s2) { if (!harness_no_gemm()) check_case(&CASE_K4S2); }
END_TEST
START_TEST(forward_backward_k3s1) { if (!harness_no_gemm()) check_case(&CASE_K3S1); }
END_TEST
START_TEST(forward_backward_s3) { if (!harness_no_gemm()) check_case(&CASE_S3); }
END_TEST
START_TEST(forward_backward_wide) {
    if (harness_no_gemm() || harness_small()) return;
    check_case(&CASE_WIDE);
    check_case(&CASE_HEAD);
}
END_TEST

/* The decoder's real layer shapes (batch 2): these sizes are multiples of CLBlast's tile sizes,
 * which sends strided-batched GEMMs down its direct path (where 1.5.3 mishandles offsets for
 * some shapes) — the odd shapes above never reach it. */
START_TEST(forward_backward_model_shapes) {
    if (harness_no_gemm() || harness_small()) return;
    static const convt_case model_cases[] = {
        {"decoder.0 (Cout cut to 64) 1280->64 4x4", 2, 1280, 64, 4, 4, 4, 4, 2, 1, 1},
        {"decoder.3 256->128 8x8", 2, 256, 128, 8, 8, 4, 4, 2, 1, 1},
        {"decoder.5 128->64 16x16", 2, 128, 64, 16, 16, 4, 4, 2, 1, 1},
        {"decoder.7 64->1 32x32", 2, 64, 1, 32, 32, 4, 4, 2, 1, 1},
    };
    for (size_t i = 0; i < sizeof model_cases / sizeof model_cases[0]; i++)
        check_case(&model_cases[i]);
}
END_TEST

/* ---- the column kernels alone (no CLBlast: these also run under Oclgrind) ------------------ */

static const convt_case SMALL_CASES[] = {
    {"k4 s2 p1", 2, 1, 3, 3, 4, 4, 4, 2, 1, 1},
    {"k3 s1 p0", 2, 1, 3, 3, 4, 3, 3, 1, 0, 0},
    {"k5x2 s3 p1", 2, 1, 3, 3, 4, 5, 2, 3, 1, 1},
};

static void check_columns(const convt_case *c) {
    const int ho = out_h(c), wo = out_w(c);
    const size_t nc = cols_count(c), ny = y_count(c);
    harness_arena A = {0};
    const float *cols = ha_uniform(&A, nc, -1.0f, 1.0f, 21);
    const float *dy = ha_uniform(&A, ny, -1.0f, 1.0f, 22);
    const float *b = ha_uniform(&A, (size_t)c->cout, -1.0f, 1.0f, 23);
    double *ref_cols_v = ha_doubles(&A, nc), *ref_y = ha_doubles(&A, ny);
    double *dy_d = ha_widen(&A, dy, ny);
    ref_cols(c, 0, ha_widen(&A, cols, nc), ref_y,
             c->with_bias ? ha_widen(&A, b, (size_t)c->cout) : NULL);
    ref_cols(c, 1, ref_cols_v, dy_d, NULL);
    const int per_y = ((c->kh + c->stride - 1) / c->stride) * ((c->kw + c->stride - 1) / c->stride);
    double *expect = ha_doubles(&A, nc > ny ? nc : ny);
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        const char *name = harness_device_name(dev);
        hbuf *bcols = ha_buf_from(&A, ctx, cols, nc), *by = ha_buf(&A, ctx, ny);
        hbuf *bout = ha_buf(&A, ctx, nc), *bpack = ha_buf(&A, ctx, ny);
        oclseg_tensor tb = hb_tensor(ha_buf_from(&A, ctx, b, (size_t)c->cout), c->cout, 1, 1, 1);
        oclseg_tensor ty = hb_tensor(by, c->n, c->cout, ho, wo);
        oclseg_tensor tdy = hb_tensor(ha_buf_from(&A, ctx, dy, ny), c->n, c->cout, ho, wo);
        const size_t per_image = nc / (size_t)c->n;
        /* image by image (n0 > 0 exercises the image offsets), columns at offset lead; then
         * again with the fused ReLU (the ReLU of the reference) */
        for (int relu = 0; relu < 2; relu++) {
            for (int n0 = 0; n0 < c->n; n0++)
                ck_assert_int_eq(convt_col2im(ctx, bcols->buf,
                                              bcols->lead + (size_t)n0 * per_image,
                                              c->with_bias ? &tb : NULL, &ty, n0, 1, c->h, c->w,
                                              c->kh, c->kw, c->stride, c->pad, relu),
                                 OCLSEG_OK);
            if (relu == 0) {
                ck_assert_int_eq(convt_im2col(ctx, &tdy, 0, c->n, c->h, c->w, c->kh, c->kw,
                                              c->stride, c->pad, bout->buf, bout->lead, 0),
                                 OCLSEG_OK);
                hb_check(by, ref_y, atol_for(per_y + 1), RTOL, "%s col2im on %s", c->name, name);
                /* copies and zeros: exact */
                hb_check(bout, ref_cols_v, 0.0, 0.0, "%s im2col on %s", c->name, name);
            }
        }
        for (size_t i = 0; i < ny; i++) expect[i] = ref_y[i] > 0 ? ref_y[i] : 0.0;
        hb_check(by, expect, atol_for(per_y + 1), RTOL, "%s col2im+relu on %s", c->name, name);

        /* im2col in the chunk-interleaved layout: cols[r][n][p] instead of cols[n][r][p] */
        const size_t rows = (size_t)c->cout * c->kh * c->kw, hw = (size_t)c->h * c->w;
        ck_assert_int_eq(convt_im2col(ctx, &tdy, 0, c->n, c->h, c->w, c->kh, c->kw, c->stride,
                                      c->pad, bout->buf, bout->lead, 1),
                         OCLSEG_OK);
        for (size_t r = 0; r < rows; r++)
            for (int n = 0; n < c->n; n++)
                for (size_t p = 0; p < hw; p++)
                    expect[(r * c->n + n) * hw + p] = ref_cols_v[((size_t)n * rows + r) * hw + p];
        hb_check(bout, expect, 0.0, 0.0, "%s im2col interleaved on %s", c->name, name);

        /* packing dy's images side by side per channel: (Cout, N*Ho*Wo) */
        const size_t plane = (size_t)ho * wo;
        ck_assert_int_eq(convt_pack_images(ctx, &tdy, 0, c->n, bpack->buf, bpack->lead),
                         OCLSEG_OK);
        for (int ch = 0; ch < c->cout; ch++)
            for (int n = 0; n < c->n; n++)
                for (size_t p = 0; p < plane; p++)
                    expect[((size_t)ch * c->n + n) * plane + p] =
                        dy_d[((size_t)n * c->cout + ch) * plane + p];
        hb_check(bpack, expect, 0.0, 0.0, "%s pack images on %s", c->name, name);
    }
    ha_free(&A);
}

START_TEST(column_kernels) {
    for (size_t i = 0; i < sizeof SMALL_CASES / sizeof SMALL_CASES[0]; i++)
        check_columns(&SMALL_CASES[i]);
    if (harness_small()) return;
    check_columns(&CASE_K4S2);
    check_columns(&CASE_K3S1);
    check_columns(&CASE_S3);
}
END_TEST

/* The bias gradient alone needs no GEMM (dx = dw = NULL), so it also runs under Oclgrind. */
START_TEST(bias_gradient_only) {
    convt_case c = harness_small() ? (convt_case){"dbias", 2, 2, 3, 3, 4, 4, 4, 2, 1, 1}
                                   : (convt_case){"dbias", 3, 2, 5, 17, 19, 4, 4, 2, 1, 1};
    harness_arena A = {0};
    convt_data d = make_data(&A, &c, 31);
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        convt_bufs B = make_bufs(&A, ctx, &c, &d);
        ck_assert_int_eq(op_conv_transpose2d_backward(ctx, &B.tx, &B.tw, &B.tdy, NULL, NULL,
                                                      &B.tdb, c.stride, c.pad),
                         OCLSEG_OK);
        hb_check(B.db, d.db, atol_for(terms_db(&c)), RTOL, "dbias only");
    }
    ha_free(&A);
    release_scratch();
}
END_TEST

/* Shape mismatches are errors, not out-of-bounds accesses (no kernel runs). */
START_TEST(shape_errors) {
    oclseg_ctx *ctx = harness_ctx(0);
    hbuf b = hb_create(ctx, 4096);
    oclseg_tensor x = oclseg_tensor_view(b.buf, b.lead, 2, 3, 4, 4);
    oclseg_tensor w = oclseg_tensor_view(b.buf, b.lead, 3, 5, 4, 4);
    oclseg_tensor y = oclseg_tensor_view(b.buf, b.lead, 2, 5, 8, 8);
    oclseg_tensor w_bad_cin = oclseg_tensor_view(b.buf, b.lead, 4, 5, 4, 4);
    oclseg_tensor y_bad = oclseg_tensor_view(b.buf, b.lead, 2, 5, 9, 8);
    oclseg_tensor bias_bad = oclseg_tensor_view(b.buf, b.lead, 4, 1, 1, 1);
    oclseg_tensor dx_bad = oclseg_tensor_view(b.buf, b.lead, 2, 3, 4, 5);
    HARNESS_REJECTS(op_conv_transpose2d_forward(ctx, &x, &w_bad_cin, NULL, &y, 2, 1));
    HARNESS_REJECTS(op_conv_transpose2d_forward(ctx, &x, &w, NULL, &y_bad, 2, 1));
    HARNESS_REJECTS(op_conv_transpose2d_forward(ctx, &x, &w, &bias_bad, &y, 2, 1));
    HARNESS_REJECTS(op_conv_transpose2d_forward(ctx, &x, &w, NULL, &y, 0, 1));
    HARNESS_REJECTS(op_conv_transpose2d_backward(ctx, &x, &w, &y, &dx_bad, NULL, NULL, 2, 1));
    HARNESS_REJECTS(op_conv_transpose2d_backward(ctx, &x, &w, &y_bad, NULL, NULL, NULL, 2, 1));
    hb_free(&b);
}
END_TEST

/* The loss sum(dy * y(x, w, b)) of the reference forward (for the FD check). */
typedef struct fd_state {
    const convt_case *c;
    const double *x, *w, *b, *dy;
    double *y;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    ref_forward(f->c, f->x, f->w, f->b, f->y);
    double loss = 0;
    for (size_t j = 0; j < y_count(f->c); j++) loss += f->dy[j] * f->y[j];
    return loss;
}

/* The reference backward against central differences of the reference forward (in double):
 * L = sum(dy * y(x, w, b)); dL/dv ~ (L(v + h) - L(v - h)) / 2h. L is linear in each
 * variable, so the difference is exact up to rounding of L (~1e-16 * |L| / h). */
START_TEST(reference_gradients_fd) {
    const convt_case c = {"fd", 2, 3, 2, 3, 4, 3, 2, 2, 1, 1};
    const size_t nx = x_count(&c), nw = w_count(&c), ny = y_count(&c), nb = (size_t)c.cout;
    harness_arena A = {0};
    double *x = ha_widen(&A, ha_uniform(&A, nx, -1.0f, 1.0f, 41), nx);
    double *w = ha_widen(&A, ha_uniform(&A, nw, -1.0f, 1.0f, 42), nw);
    double *b = ha_widen(&A, ha_uniform(&A, nb, -1.0f, 1.0f, 43), nb);
    double *dy = ha_widen(&A, ha_uniform(&A, ny, -1.0f, 1.0f, 44), ny);
    double *dx = ha_doubles(&A, nx), *dw = ha_doubles(&A, nw), *db = ha_doubles(&A, nb);
    ref_backward(&c, x, w, dy, dx, dw, db);
    fd_state f = {&c, x, w, b, dy, ha_doubles(&A, ny)};
    const harness_fd_arg args[] = {{"dx", x, dx, nx}, {"dw", w, dw, nw}, {"db", b, db, nb}};
    harness_check_fd("conv_transpose reference", fd_loss, &f, args, 3, 1e-3, 1e-9, 1e-9);
    /* the check is not vacuous: the gradients are not all zero */
    ck_assert(fabs(dx[0]) + fabs(dw[0]) + fabs(db[0]) > 0);
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_conv_transpose");
    TCase *tc = tcase_create("conv_transpose");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, reference_gradients_fd);
    tcase_add_test(tc, column_kernels);
    tcase_add_test(tc, bias_gradient_only);
    tcase_add_test(tc, shape_errors);
    tcase_add_test(tc, forward_backward_k4s2);
    tcase_add_test(tc, forward_backward_k3s1);
    tcase_add_test(tc, forward_backward_s3);
    tcase_add_test(tc, forward_backward_wide);
    tcase_add_test(tc, forward_backward_model_shapes);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
