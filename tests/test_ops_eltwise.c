/* Tests relu, relu6, add and sigmoid (forward and backward) against double-precision references
 * on every device. This file is the template for an op test: copy it for a new op, keep its
 * parts, and see test_ops_conv2d.c for an op with a table of cases and several gradients.
 *
 * The parts of an op test, in the order of this file:
 *  1. the case: an odd shape (no dimension a multiple of 4 or 8, more than one work-group of
 *     elements), and a small one under Oclgrind (harness_small, HARNESS_CASES) if it is slow;
 *  2. a naive double-precision reference of the forward and of the backward (ref_*);
 *  3. the reference backward against central differences of the reference forward
 *     (harness_check_fd), so that a wrong reference cannot make a wrong kernel pass;
 *  4. per case one harness_arena: host inputs (ha_uniform), references (ha_doubles) and guarded
 *     device buffers (ha_buf_from: holding data; ha_buf: its body NaN-poisoned, so an element
 *     the op does not write fails), all freed by one ha_free;
 *  5. on every device (harness_device_count, harness_ctx): run the op, then hb_check the output
 *     (guards asserted) against the reference with the tolerance stated below; name each
 *     comparison after op, case and device: harness_run prints its worst error on every run;
 *  6. edge values (extremes, NaN) and invalid arguments (HARNESS_REJECTS).
 *
 * Tolerance: these are single correctly-rounded float ops (sigmoid uses exp, which OpenCL allows
 * 3 ulp), so rtol 1e-6 / atol 1e-7 is ~10 ulp of float32. A wrong element (a kink on the wrong
 * side, a missed or misplaced element) is off by O(1). */
#include <math.h>

#include "harness.h"

/* 1. The case: an odd shape, > one work-group of elements (cheap enough for Oclgrind too). */
#define N 3
#define C 5
#define H 7
#define W 9
#define COUNT ((size_t)N * C * H * W)

static const double ATOL = 1e-7, RTOL = 1e-6;

/* 2. The double-precision references. The backward of an activation reads its forward output y:
 * dx = dy * grad(y). */
static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_relu6(double x) { return x < 0 ? 0 : (x > 6 ? 6 : x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_relu_grad(double y) { return y > 0 ? 1 : 0; }
static double ref_relu6_grad(double y) { return (y > 0 && y < 6) ? 1 : 0; }

/* A unary op under test: the device forward and backward (NULL: none, as for sigmoid, whose
 * gradient the losses compute) and their references. */
typedef struct unary_op {
    const char *name;
    int (*forward)(oclseg_ctx *, const oclseg_tensor *, oclseg_tensor *);
    int (*backward)(oclseg_ctx *, const oclseg_tensor *, const oclseg_tensor *, oclseg_tensor *);
    double (*ref)(double x);
    double (*ref_grad)(double y);
} unary_op;

static const unary_op RELU = {"relu", op_relu_forward, op_relu_backward, ref_relu, ref_relu_grad};
static const unary_op RELU6 = {"relu6", op_relu6_forward, op_relu6_backward, ref_relu6,
                               ref_relu6_grad};
static const unary_op SIGMOID = {"sigmoid", op_sigmoid, NULL, ref_sigmoid, NULL};

/* Inputs span both sides of every kink, and include exact 0, 6 and -0. */
static float *make_input(harness_arena *A, uint64_t seed) {
    float *x = ha_uniform(A, COUNT, -8.0f, 8.0f, seed);
    x[0] = 0.0f;
    x[1] = 6.0f;
    x[2] = -0.0f;
    return x;
}

/* 3. The reference backward against central differences of L(x) = sum(g * f(x)), whose gradient
 * is g * grad(f(x)). relu and relu6 are linear away from their kinks, so with no input within h
 * of a kink (asserted) the difference is exact up to rounding: ~1e-16 * |L| / h < 1e-11 for
 * h = 1e-3, |L| < 100; tolerance 1e-9. */
typedef struct fd_state {
    const unary_op *op;
    const double *x, *g;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    double loss = 0.0;
    for (size_t i = 0; i < COUNT; i++) loss += f->g[i] * f->op->ref(f->x[i]);
    return loss;
}

static void check_reference_backward(const unary_op *op) {
    const double h = 1e-3;
    harness_arena A = {0};
    double *x = ha_widen(&A, ha_uniform(&A, COUNT, -8.0f, 8.0f, 6), COUNT);
    double *g = ha_widen(&A, ha_uniform(&A, COUNT, -1.0f, 1.0f, 7), COUNT);
    double *dx = ha_doubles(&A, COUNT);
    for (size_t i = 0; i < COUNT; i++) {
        ck_assert_msg(fabs(x[i]) > h && fabs(x[i] - 6.0) > h, "input %zu on a kink", i);
        dx[i] = g[i] * op->ref_grad(op->ref(x[i]));
    }
    fd_state f = {op, x, g};
    const harness_fd_arg args[] = {{"dx", x, dx, COUNT}};
    harness_check_fd(op->name, fd_loss, &f, args, 1, h, 1e-9, 0.0);
    ha_free(&A);
}

/* 4.-5. Forward on every device, out of place and in place (y aliases x). */
static void check_forward(const unary_op *op) {
    harness_arena A = {0};
    const float *x = make_input(&A, 1);
    double *ref = ha_doubles(&A, COUNT);
    for (size_t i = 0; i < COUNT; i++) ref[i] = op->ref((double)x[i]);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        ck_assert_int_eq(op->forward(ctx, &tx, &ty), OCLSEG_OK);
        hb_check(by, ref, ATOL, RTOL, "%s forward on %s", op->name, harness_device_name(d));
        ck_assert_int_eq(op->forward(ctx, &tx, &tx), OCLSEG_OK);
        hb_check(bx, ref, ATOL, RTOL, "%s forward in place on %s", op->name,
                 harness_device_name(d));
    }
    ha_free(&A);
}

/* dx = dy * grad(y), with y the device's forward output (so the gradient's reference sees the
 * same y the device backward reads). */
static void check_backward(const unary_op *op) {
    harness_arena A = {0};
    const float *x = make_input(&A, 2), *dy = ha_uniform(&A, COUNT, -1.0f, 1.0f, 3);
    float *y = ha_floats(&A, COUNT);
    double *ref = ha_doubles(&A, COUNT);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        hbuf *bdy = ha_buf_from(&A, ctx, dy, COUNT), *bdx = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        oclseg_tensor tdy = hb_tensor(bdy, N, C, H, W), tdx = hb_tensor(bdx, N, C, H, W);
        ck_assert_int_eq(op->forward(ctx, &tx, &ty), OCLSEG_OK);
        hb_download(by, y, op->name);
        for (size_t i = 0; i < COUNT; i++) ref[i] = dy[i] * op->ref_grad((double)y[i]);
        ck_assert_int_eq(op->backward(ctx, &ty, &tdy, &tdx), OCLSEG_OK);
        hb_check(bdx, ref, ATOL, RTOL, "%s backward on %s", op->name, harness_device_name(d));
    }
    ha_free(&A);
}

START_TEST(reference_backward_matches_finite_differences) {
    check_reference_backward(&RELU);
    check_reference_backward(&RELU6);
}
END_TEST

START_TEST(relu_forward) { check_forward(&RELU); }
END_TEST
START_TEST(relu6_forward) { check_forward(&RELU6); }
END_TEST
START_TEST(sigmoid_forward) { check_forward(&SIGMOID); }
END_TEST
START_TEST(relu_backward) { check_backward(&RELU); }
END_TEST
START_TEST(relu6_backward) { check_backward(&RELU6); }
END_TEST

/* A binary op: y = a + b, and a shape mismatch is an error, not an out-of-bounds access. */
START_TEST(add_forward) {
    harness_arena A = {0};
    const float *a = ha_uniform(&A, COUNT, -3.0f, 3.0f, 4), *b = ha_uniform(&A, COUNT, -3.0f, 3.0f, 5);
    double *ref = ha_doubles(&A, COUNT);
    for (size_t i = 0; i < COUNT; i++) ref[i] = (double)a[i] + (double)b[i];
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *ba = ha_buf_from(&A, ctx, a, COUNT), *bb = ha_buf_from(&A, ctx, b, COUNT);
        hbuf *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor ta = hb_tensor(ba, N, C, H, W), tb = hb_tensor(bb, N, C, H, W);
        oclseg_tensor ty = hb_tensor(by, N, C, H, W);
        ck_assert_int_eq(op_add(ctx, &ta, &tb, &ty), OCLSEG_OK);
        hb_check(by, ref, ATOL, RTOL, "add on %s", harness_device_name(d));
        oclseg_tensor wrong = hb_tensor(bb, N, C, W, H);
        HARNESS_REJECTS(op_add(ctx, &ta, &wrong, &ty));
    }
    ha_free(&A);
}
END_TEST

/* 6. Sigmoid must stay finite and exact at the extremes (no exp overflow -> NaN). */
START_TEST(sigmoid_extremes) {
    const float x[4] = {-1e4f, 1e4f, -88.0f, 88.0f};
    const double ref[4] = {0.0, 1.0, ref_sigmoid(-88.0), ref_sigmoid(88.0)};
    harness_arena A = {0};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, 4), *by = ha_buf(&A, ctx, 4);
        oclseg_tensor tx = hb_tensor(bx, 1, 1, 1, 4), ty = hb_tensor(by, 1, 1, 1, 4);
        ck_assert_int_eq(op_sigmoid(ctx, &tx, &ty), OCLSEG_OK);
        hb_check(by, ref, 1e-30, 1e-5, "sigmoid extremes on %s", harness_device_name(d));
    }
    ha_free(&A);
}
END_TEST

/* NaN and +-Inf pass through relu and relu6 as in PyTorch (torch.relu(nan) is nan): an
 * activation must never hide a NaN from the numerics checks. (harness_compare fails on any NaN,
 * so the NaN is checked by hand.) */
START_TEST(activations_keep_nan) {
    const float x[4] = {NAN, INFINITY, -INFINITY, 1.0f};
    const float relu_ref[4] = {NAN, INFINITY, 0.0f, 1.0f}, relu6_ref[4] = {NAN, 6.0f, 0.0f, 1.0f};
    const unary_op *ops[2] = {&RELU, &RELU6};
    const float *refs[2] = {relu_ref, relu6_ref};
    harness_arena A = {0};
    float *y = ha_floats(&A, 4);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (int k = 0; k < 2; k++) {
            hbuf *bx = ha_buf_from(&A, ctx, x, 4), *by = ha_buf(&A, ctx, 4);
            oclseg_tensor tx = hb_tensor(bx, 1, 1, 1, 4), ty = hb_tensor(by, 1, 1, 1, 4);
            ck_assert_int_eq(ops[k]->forward(ctx, &tx, &ty), OCLSEG_OK);
            hb_download(by, y, ops[k]->name);
            ck_assert_msg(isnan(y[0]), "%s: %s(NaN) = %g", harness_device_name(d), ops[k]->name,
                          (double)y[0]);
            for (int i = 1; i < 4; i++) ck_assert(y[i] == refs[k][i]);
        }
    }
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_eltwise");
    TCase *tc = tcase_create("eltwise");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, reference_backward_matches_finite_differences);
    tcase_add_test(tc, activations_keep_nan);
    tcase_add_test(tc, relu_forward);
    tcase_add_test(tc, relu_backward);
    tcase_add_test(tc, relu6_forward);
    tcase_add_test(tc, relu6_backward);
    tcase_add_test(tc, add_forward);
    tcase_add_test(tc, sigmoid_forward);
    tcase_add_test(tc, sigmoid_extremes);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
