/* Tests the depthwise 3x3 conv (pad 1, stride 1/2) forward, dx and dw against naive
 * double-precision references on odd shapes, on every device.
 *
 * Tolerance: each output is a float32 sum of products computed in some fixed order; its rounding
 * error is at most depth * u * sum|terms| (u = 2^-24, depth = longest chain of dependent float
 * additions). Forward and dx: at most 9 taps, depth <= 9. dw: each work-item adds <= 16 positions,
 * then a tree of log2(REDUCE_WG) <= 8 levels, then <= 6 chunk partials for the shapes used here,
 * depth <= 30. We allow depth 16 (forward, dx) and 64 (dw), about 2x the bound, as an absolute
 * tolerance scaled by the largest sum|terms| of the tensor (rtol 0). A dropped or misplaced tap
 * costs ~|x*w| ~ 0.1..1, orders of magnitude above these tolerances (~1e-6 .. 1e-4). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const double U = 5.9604644775390625e-8; /* 2^-24, float32 unit roundoff */
static const double DEPTH_DIRECT = 16.0, DEPTH_DW = 64.0;

typedef struct dw_case {
    int n, c, h, w, stride;
} dw_case;

static int out_size(int in, int stride) { return (in + 2 - 3) / stride + 1; }

/* ---- naive double references -------------------------------------------------------- */
/* y (N, C, Ho, Wo) = depthwise(x (N, C, H, W), w (C, 1, 3, 3)); mag = sum |terms| per output. */
static void ref_forward(const dw_case *s, const double *x, const double *w, double *y,
                        double *mag) {
    const int ho = out_size(s->h, s->stride), wo = out_size(s->w, s->stride);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    double acc = 0, m = 0;
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = oh * s->stride - 1 + kh, iw = ow * s->stride - 1 + kw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            double t = x[((size_t)(n * s->c + c) * s->h + ih) * s->w + iw] *
                                       w[c * 9 + kh * 3 + kw];
                            acc += t;
                            m += fabs(t);
                        }
                    size_t o = ((size_t)(n * s->c + c) * ho + oh) * wo + ow;
                    y[o] = acc;
                    if (mag) mag[o] = m;
                }
}

/* Scatter form (the direct transpose of ref_forward): dx (N, C, H, W), dw (C, 1, 3, 3), and the
 * sum |terms| of each (dx_mag, dw_mag). */
static void ref_backward(const dw_case *s, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *dx_mag, double *dw_mag) {
    const int ho = out_size(s->h, s->stride), wo = out_size(s->w, s->stride);
    const size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->c * 9;
    memset(dx, 0, nx * sizeof *dx);
    memset(dx_mag, 0, nx * sizeof *dx_mag);
    memset(dw, 0, nw * sizeof *dw);
    memset(dw_mag, 0, nw * sizeof *dw_mag);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    double g = dy[((size_t)(n * s->c + c) * ho + oh) * wo + ow];
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = oh * s->stride - 1 + kh, iw = ow * s->stride - 1 + kw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            size_t xi = ((size_t)(n * s->c + c) * s->h + ih) * s->w + iw;
                            size_t wi = (size_t)c * 9 + kh * 3 + kw;
                            dx[xi] += g * w[wi];
                            dx_mag[xi] += fabs(g * w[wi]);
                            dw[wi] += g * x[xi];
                            dw_mag[wi] += fabs(g * x[xi]);
                        }
                }
}

static double max_of(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

static size_t x_count(const dw_case *s) { return (size_t)s->n * s->c * s->h * s->w; }
static size_t w_count(const dw_case *s) { return (size_t)s->c * 9; }
static size_t y_count(const dw_case *s) {
    return (size_t)s->n * s->c * out_size(s->h, s->stride) * out_size(s->w, s->stride);
}

/* ---- the reference backward vs central finite differences of the reference forward ---- */
/* L = sum(y * g) with a fixed random g; dL/dx and dL/dw from ref_backward(dy = g). L is linear in
 * x and in w, so the central difference is exact up to double rounding (~1e-16 * |L| / h):
 * tolerance 1e-9 for h = 1e-3. */
typedef struct fd_state {
    const dw_case *s;
    const double *x, *w, *g;
    double *y;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    ref_forward(f->s, f->x, f->w, f->y, NULL);
    double l = 0;
    for (size_t i = 0; i < y_count(f->s); i++) l += f->y[i] * f->g[i];
    return l;
}

static void fd_check(const dw_case *s) {
    const size_t nx = x_count(s), nw = w_count(s), ny = y_count(s);
    harness_arena A = {0};
    double *x = ha_widen(&A, ha_uniform(&A, nx, -1, 1, 11), nx);
    double *w = ha_widen(&A, ha_uniform(&A, nw, -1, 1, 12), nw);
    double *g = ha_widen(&A, ha_uniform(&A, ny, -1, 1, 13), ny);
    double *dx = ha_doubles(&A, nx), *dw = ha_doubles(&A, nw);
    ref_backward(s, x, w, g, dx, dw, ha_doubles(&A, nx), ha_doubles(&A, nw));
    fd_state f = {s, x, w, g, ha_doubles(&A, ny)};
    const harness_fd_arg args[] = {{"dx", x, dx, nx}, {"dw", w, dw, nw}};
    char what[96];
    snprintf(what, sizeof what, "depthwise reference (%d,%d,%d,%d) stride %d", s->n, s->c, s->h,
             s->w, s->stride);
    harness_check_fd(what, fd_loss, &f, args, 2, 1e-3, 1e-9, 0.0);
    ha_free(&A);
}

START_TEST(reference_backward_matches_finite_differences) {
    const dw_case cases[] = {{2, 3, 5, 4, 1}, {2, 3, 5, 4, 2}, {1, 2, 6, 7, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) fd_check(&cases[i]);
}
END_TEST

/* ---- device vs reference ------------------------------------------------------------- */
enum { GRAD_DX = 1, GRAD_DW = 2, GRAD_DEFAULT_FORM = 4 /* only the device's default form */ };

/* The name of one comparison: output, shape, device and kernel form. */
static const char *what_of(char *what, size_t size, const char *output, const dw_case *s, int d,
                           const char *form) {
    snprintf(what, size, "depthwise %s (%d,%d,%d,%d) stride %d on %s (%s)", output, s->n, s->c,
             s->h, s->w, s->stride, harness_device_name(d), form);
    return what;
}

/* Runs forward and backward (computing the gradients in `grads`) for one shape on every device
 * and compares each output with the reference. */
static void check_case(const dw_case *s, int grads) {
    const int ho = out_size(s->h, s->stride), wo = out_size(s->w, s->stride);
    const size_t nx = x_count(s), nw = w_count(s), ny = y_count(s);
    harness_arena A = {0};
    uint64_t seed = (uint64_t)(s->n * 1000003 + s->c * 10007 + s->h * 101 + s->w * 7 + s->stride);
    const float *x = ha_uniform(&A, nx, -1, 1, seed), *w = ha_uniform(&A, nw, -1, 1, seed + 1);
    const float *dy = ha_uniform(&A, ny, -1, 1, seed + 2);
    float *dw = ha_floats(&A, nw), *dw2 = ha_floats(&A, nw);
    double *ry = ha_doubles(&A, ny), *ry_mag = ha_doubles(&A, ny);
    double *rdx = ha_doubles(&A, nx), *rdx_mag = ha_doubles(&A, nx);
    double *rdw = ha_doubles(&A, nw), *rdw_mag = ha_doubles(&A, nw);
    const double *xd = ha_widen(&A, x, nx), *wd = ha_widen(&A, w, nw);
    ref_forward(s, xd, wd, ry, ry_mag);
    ref_backward(s, xd, wd, ha_widen(&A, dy, ny), rdx, rdw, rdx_mag, rdw_mag);
    const double atol_y = DEPTH_DIRECT * U * max_of(ry_mag, ny);
    const double atol_dx = DEPTH_DIRECT * U * max_of(rdx_mag, nx);
    const double atol_dw = DEPTH_DW * U * max_of(rdw_mag, nw);
    char what[160];

    /* every device runs both kernel forms: per element (GPUs) and per row (CPU devices); with
     * GRAD_DEFAULT_FORM only the form the device gets by default */
    const int forms = (grads & GRAD_DEFAULT_FORM) ? 1 : 2;
    for (int run = 0; run < forms * harness_device_count(); run++) {
        const int d = run / forms;
        oclseg_ctx *ctx = harness_ctx(d);
        ctx->row_kernels = forms == 1 ? OCLSEG_ROWS_AUTO : run % 2 ? OCLSEG_ROWS_ON : OCLSEG_ROWS_OFF;
        const char *form = forms == 1 ? (oclseg_use_row_kernels(ctx) ? "rows, the default"
                                                                      : "elements, the default")
                           : run % 2 ? "rows" : "elements";
        hbuf *bx = ha_buf_from(&A, ctx, x, nx), *bw = ha_buf_from(&A, ctx, w, nw);
        hbuf *bdy = ha_buf_from(&A, ctx, dy, ny);
        hbuf *by = ha_buf(&A, ctx, ny), *bdx = ha_buf(&A, ctx, nx), *bdw = ha_buf(&A, ctx, nw);
        oclseg_tensor tx = hb_tensor(bx, s->n, s->c, s->h, s->w);
        oclseg_tensor tw = hb_tensor(bw, s->c, 1, 3, 3);
        oclseg_tensor tdy = hb_tensor(bdy, s->n, s->c, ho, wo);
        oclseg_tensor ty = hb_tensor(by, s->n, s->c, ho, wo);
        oclseg_tensor tdx = hb_tensor(bdx, s->n, s->c, s->h, s->w);
        oclseg_tensor tdw = hb_tensor(bdw, s->c, 1, 3, 3);

        ck_assert_int_eq(op_depthwise_forward(ctx, &tx, &tw, &ty, s->stride), OCLSEG_OK);
        hb_check(by, ry, atol_y, 0, "%s", what_of(what, sizeof what, "forward", s, d, form));

        ck_assert_int_eq(op_depthwise_backward(ctx, &tx, &tw, &tdy, (grads & GRAD_DX) ? &tdx : NULL,
                                               (grads & GRAD_DW) ? &tdw : NULL, s->stride),
                         OCLSEG_OK);
        if (grads & GRAD_DX)
            hb_check(bdx, rdx, atol_dx, 0, "%s", what_of(what, sizeof what, "dx", s, d, form));
        if (grads & GRAD_DW) {
            hb_download(bdw, dw, what_of(what, sizeof what, "dw", s, d, form));
            harness_compare(what, dw, rdw, nw, atol_dw, 0);
            /* deterministic: a second run gives the same bits */
            hb_poison(bdw);
            ck_assert_int_eq(op_depthwise_backward(ctx, &tx, &tw, &tdy, NULL, &tdw, s->stride),
                             OCLSEG_OK);
            hb_download(bdw, dw2, what);
            ck_assert_msg(memcmp(dw, dw2, nw * sizeof *dw) == 0, "%s: not deterministic", what);
        }
        ctx->row_kernels = OCLSEG_ROWS_AUTO;
    }
    ha_free(&A);
}

static void check_cases(const dw_case *cases, size_t count, int grads) {
    for (size_t i = 0; i < count; i++) check_case(&cases[i], grads);
}
/* Checks every case of the array `full`, or of `small` under Oclgrind (HARNESS_CASES). */
#define CHECK_CASES(full, small, grads)                                                            \
    do {                                                                                           \
        size_t count_;                                                                             \
        const dw_case *cases_ = HARNESS_CASES(full, small, &count_);                               \
        check_cases(cases_, count_, (grads));                                                      \
    } while (0)

/* Odd shapes (N=3, C=5, 7x9; H != W, 8x5), both strides, stride 2 on odd and even sizes. */
START_TEST(odd_shapes) {
    const dw_case small[] = {{2, 3, 5, 4, 1}, {2, 3, 5, 4, 2}, {3, 5, 7, 9, 1}, {3, 5, 7, 9, 2}};
    const dw_case full[] = {{3, 5, 7, 9, 1}, {3, 5, 7, 9, 2}, {3, 5, 8, 5, 1}, {3, 5, 8, 5, 2}};
    CHECK_CASES(full, small, GRAD_DX | GRAD_DW);
}
END_TEST

/* N*Ho*Wo larger than a work-group's (and, for 33x33+, one chunk's) worth of positions, so the
 * dw reduction spans many items, several chunks and the second pass; and many channels. Rows
 * wide enough for several of depthwise_dw_rows's vector runs (DW_LANES columns, 8 or 16) at
 * stride 1 and 2, and W 35 at stride 2, whose last run loads up to the row's last column. */
START_TEST(large_reduction) {
    const dw_case small[] = {{1, 2, 33, 33, 1}, {1, 1, 5, 35, 2}};
    const dw_case full[] = {{2, 3, 33, 31, 1}, {2, 3, 33, 31, 2}, {2, 2, 47, 45, 1},
                            {2, 37, 4, 4, 1},  {3, 19, 9, 6, 2},  {2, 3, 37, 75, 2},
                            {1, 2, 5, 35, 2}};
    CHECK_CASES(full, small, GRAD_DX | GRAD_DW);
}
END_TEST

/* The right edge at stride 2, in every kernel form. Odd W: the last output column's centre tap
 * is the row's last column and its right tap the padding (forward and dw rows must take it out
 * of the interior); even W: the last input column is reached only through tap 0 of an output
 * column past the row (backward_input_row_s2 must take it through the checked path). Widths 20
 * and 21 also end a dw vector run next to the edge. Several rows, so interior rows (the row
 * kernels' fast paths) meet the edge, not only the padded first and last rows. */
START_TEST(stride2_right_edge) {
    const dw_case small[] = {{2, 3, 6, 11, 2}, {1, 2, 5, 10, 2}};
    const dw_case full[] = {{2, 3, 6, 11, 2}, {1, 2, 5, 10, 2}, {2, 2, 7, 21, 2},
                            {1, 2, 5, 20, 2}, {2, 3, 3, 3, 2}};
    CHECK_CASES(full, small, GRAD_DX | GRAD_DW);
}
END_TEST

/* Degenerate sizes: 1x1 (only the centre tap), 2x1 with stride 2 (Ho = Wo = 1). */
START_TEST(tiny_shapes) {
    const dw_case cases[] = {{1, 2, 1, 1, 1}, {2, 3, 2, 1, 2}, {1, 1, 1, 3, 2}};
    CHECK_CASES(cases, cases, GRAD_DX | GRAD_DW);
}
END_TEST

/* A batch-16 training step's first depthwise layer (16 x 64 x 64 positions per channel) with
 * each device's default form: a work-item of the row form loops over 65536 positions for the
 * weight gradient, past llvmpipe's limit of 65535 loop iterations per work-item, where rusticl
 * got dw wrong by up to 42 (the default there is now the element form). */
START_TEST(training_scale) {
    if (harness_small()) return; /* Oclgrind: too slow, and the shapes above cover the code */
    const dw_case cases[] = {{16, 4, 64, 64, 1}};
    CHECK_CASES(cases, cases, GRAD_DX | GRAD_DW | GRAD_DEFAULT_FORM);
}
END_TEST

/* Only one gradient requested (the other is NULL). */
START_TEST(single_gradient) {
    const dw_case cases[] = {{3, 5, 7, 9, 2}, {2, 3, 5, 4, 1}};
    const size_t count = harness_small() ? 1 : 2;
    check_cases(cases, count, GRAD_DX);
    check_cases(cases, count, GRAD_DW);
}
END_TEST

START_TEST(invalid_arguments) {
    harness_arena A = {0};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf(&A, ctx, 2 * 3 * 5 * 4), *bw = ha_buf(&A, ctx, 3 * 9);
        hbuf *by = ha_buf(&A, ctx, 2 * 3 * 5 * 4);
        /* Views of the right and wrong shapes (the op must reject them before any launch). */
        oclseg_tensor tx = hb_tensor(bx, 2, 3, 5, 4), tw = hb_tensor(bw, 3, 1, 3, 3);
        oclseg_tensor ty1 = oclseg_tensor_view(by->buf, by->lead, 2, 3, 5, 4);
        oclseg_tensor ty2 = oclseg_tensor_view(by->buf, by->lead, 2, 3, 3, 2);
        oclseg_tensor bad_w = oclseg_tensor_view(bw->buf, bw->lead, 1, 3, 3, 3);
        oclseg_tensor bad_y = oclseg_tensor_view(by->buf, by->lead, 2, 3, 4, 5);
        oclseg_tensor tdx = oclseg_tensor_view(by->buf, by->lead, 2, 3, 5, 4);
        oclseg_tensor bad_dx = oclseg_tensor_view(by->buf, by->lead, 2, 3, 4, 5);
        HARNESS_REJECTS(op_depthwise_forward(ctx, &tx, &tw, &ty1, 3));
        HARNESS_REJECTS(op_depthwise_forward(ctx, &tx, &bad_w, &ty1, 1));
        HARNESS_REJECTS(op_depthwise_forward(ctx, &tx, &tw, &bad_y, 1));
        HARNESS_REJECTS(op_depthwise_forward(ctx, &tx, &tw, &ty1, 2));
        HARNESS_REJECTS(op_depthwise_backward(ctx, &tx, &tw, &ty1, &tdx, NULL, 2));
        HARNESS_REJECTS(op_depthwise_backward(ctx, &tx, &tw, &ty2, &bad_dx, NULL, 2));
        HARNESS_REJECTS(op_depthwise_backward(ctx, &tx, &tw, &ty2, NULL, &bad_w, 2));
    }
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_depthwise");
    TCase *tc = tcase_create("depthwise");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, reference_backward_matches_finite_differences);
    tcase_add_test(tc, odd_shapes);
    tcase_add_test(tc, large_reduction);
    tcase_add_test(tc, stride2_right_edge);
    tcase_add_test(tc, tiny_shapes);
    tcase_add_test(tc, training_scale);
    tcase_add_test(tc, single_gradient);
    tcase_add_test(tc, invalid_arguments);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
