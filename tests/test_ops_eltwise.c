/* Tests relu, relu6, add and sigmoid (forward and backward) against double-precision references
 * on every device. Tolerance: these are single correctly-rounded float ops (sigmoid uses exp,
 * which OpenCL allows 3 ulp), so rtol 1e-6 / atol 1e-7 is ~10 ulp of float32. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"

/* An odd shape: no dimension a multiple of 4/8, > one work-group of elements. */
#define N 3
#define C 5
#define H 7
#define W 9
#define COUNT ((size_t)N * C * H * W)

static const double ATOL = 1e-7, RTOL = 1e-6;

typedef int (*unary_fn)(oclseg_ctx *, const oclseg_tensor *, oclseg_tensor *);
typedef double (*unary_ref)(double);
typedef int (*backward_fn)(oclseg_ctx *, const oclseg_tensor *, const oclseg_tensor *,
                           oclseg_tensor *);

static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_relu6(double x) { return x < 0 ? 0 : (x > 6 ? 6 : x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_relu_grad(double y) { return y > 0 ? 1 : 0; }
static double ref_relu6_grad(double y) { return (y > 0 && y < 6) ? 1 : 0; }

/* Inputs span both sides of every kink, and include exact 0 and 6. */
static void make_input(float *x, uint64_t seed) {
    harness_fill_uniform(x, COUNT, -8.0f, 8.0f, seed);
    x[0] = 0.0f;
    x[1] = 6.0f;
    x[2] = -0.0f;
}

static void check_unary(const char *what, unary_fn fn, unary_ref ref) {
    float x[COUNT], y[COUNT];
    double r[COUNT];
    make_input(x, 1);
    for (size_t i = 0; i < COUNT; i++) r[i] = ref((double)x[i]);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf bx = hb_from(ctx, x, COUNT), by = hb_create(ctx, COUNT);
        oclseg_tensor tx = hb_tensor(&bx, N, C, H, W), ty = hb_tensor(&by, N, C, H, W);
        ck_assert_int_eq(fn(ctx, &tx, &ty), OCLSEG_OK);
        hb_download(&by, y, what);
        harness_compare(what, y, r, COUNT, ATOL, RTOL);
        /* in place (y aliases x) */
        ck_assert_int_eq(fn(ctx, &tx, &tx), OCLSEG_OK);
        hb_download(&bx, y, what);
        harness_compare(what, y, r, COUNT, ATOL, RTOL);
        hb_free(&bx);
        hb_free(&by);
    }
}

/* dx = dy * ref_grad(y), with y the forward output. */
static void check_backward(const char *what, unary_fn fwd, backward_fn bwd, unary_ref grad) {
    float x[COUNT], y[COUNT], dy[COUNT], dx[COUNT];
    double r[COUNT];
    make_input(x, 2);
    harness_fill_uniform(dy, COUNT, -1.0f, 1.0f, 3);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf bx = hb_from(ctx, x, COUNT), by = hb_create(ctx, COUNT);
        hbuf bdy = hb_from(ctx, dy, COUNT), bdx = hb_create(ctx, COUNT);
        oclseg_tensor tx = hb_tensor(&bx, N, C, H, W), ty = hb_tensor(&by, N, C, H, W);
        oclseg_tensor tdy = hb_tensor(&bdy, N, C, H, W), tdx = hb_tensor(&bdx, N, C, H, W);
        ck_assert_int_eq(fwd(ctx, &tx, &ty), OCLSEG_OK);
        hb_download(&by, y, what);
        for (size_t i = 0; i < COUNT; i++) r[i] = dy[i] * grad((double)y[i]);
        ck_assert_int_eq(bwd(ctx, &ty, &tdy, &tdx), OCLSEG_OK);
        hb_download(&bdx, dx, what);
        harness_compare(what, dx, r, COUNT, ATOL, RTOL);
        hb_free(&bx);
        hb_free(&by);
        hb_free(&bdy);
        hb_free(&bdx);
    }
}

START_TEST(relu_forward) { check_unary("relu forward", op_relu_forward, ref_relu); }
END_TEST
START_TEST(relu6_forward) { check_unary("relu6 forward", op_relu6_forward, ref_relu6); }
END_TEST
START_TEST(sigmoid_forward) { check_unary("sigmoid", op_sigmoid, ref_sigmoid); }
END_TEST
START_TEST(relu_backward) {
    check_backward("relu backward", op_relu_forward, op_relu_backward, ref_relu_grad);
}
END_TEST
START_TEST(relu6_backward) {
    check_backward("relu6 backward", op_relu6_forward, op_relu6_backward, ref_relu6_grad);
}
END_TEST

START_TEST(add_forward) {
    float a[COUNT], b[COUNT], y[COUNT];
    double r[COUNT];
    harness_fill_uniform(a, COUNT, -3.0f, 3.0f, 4);
    harness_fill_uniform(b, COUNT, -3.0f, 3.0f, 5);
    for (size_t i = 0; i < COUNT; i++) r[i] = (double)a[i] + (double)b[i];
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf ba = hb_from(ctx, a, COUNT), bb = hb_from(ctx, b, COUNT), by = hb_create(ctx, COUNT);
        oclseg_tensor ta = hb_tensor(&ba, N, C, H, W), tb = hb_tensor(&bb, N, C, H, W);
        oclseg_tensor ty = hb_tensor(&by, N, C, H, W);
        ck_assert_int_eq(op_add(ctx, &ta, &tb, &ty), OCLSEG_OK);
        hb_download(&by, y, "add");
        harness_compare("add", y, r, COUNT, ATOL, RTOL);
        /* a shape mismatch is an error, not an out-of-bounds access */
        oclseg_tensor wrong = hb_tensor(&bb, N, C, W, H);
        ck_assert_int_eq(op_add(ctx, &ta, &wrong, &ty), OCLSEG_ERR_INVALID_ARG);
        hb_free(&ba);
        hb_free(&bb);
        hb_free(&by);
    }
}
END_TEST

/* Sigmoid must stay finite and exact at the extremes (no exp overflow -> NaN). */
START_TEST(sigmoid_extremes) {
    float x[4] = {-1e4f, 1e4f, -88.0f, 88.0f}, y[4];
    double r[4] = {0.0, 1.0, ref_sigmoid(-88.0), ref_sigmoid(88.0)};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf bx = hb_from(ctx, x, 4), by = hb_create(ctx, 4);
        oclseg_tensor tx = hb_tensor(&bx, 1, 1, 1, 4), ty = hb_tensor(&by, 1, 1, 1, 4);
        ck_assert_int_eq(op_sigmoid(ctx, &tx, &ty), OCLSEG_OK);
        hb_download(&by, y, "sigmoid extremes");
        harness_compare("sigmoid extremes", y, r, 4, 1e-30, 1e-5);
        hb_free(&bx);
        hb_free(&by);
    }
}
END_TEST

/* NaN and +-Inf pass through relu and relu6 as in PyTorch (torch.relu(nan) is nan): an
 * activation must never hide a NaN from the numerics checks. */
START_TEST(activations_keep_nan) {
    float x[4] = {NAN, INFINITY, -INFINITY, 1.0f}, y[4];
    const float relu_ref[4] = {NAN, INFINITY, 0.0f, 1.0f}, relu6_ref[4] = {NAN, 6.0f, 0.0f, 1.0f};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (int k = 0; k < 2; k++) {
            hbuf bx = hb_from(ctx, x, 4), by = hb_create(ctx, 4);
            oclseg_tensor tx = hb_tensor(&bx, 1, 1, 1, 4), ty = hb_tensor(&by, 1, 1, 1, 4);
            ck_assert_int_eq(k ? op_relu6_forward(ctx, &tx, &ty) : op_relu_forward(ctx, &tx, &ty),
                             OCLSEG_OK);
            hb_download(&by, y, k ? "relu6 nan" : "relu nan");
            const float *ref = k ? relu6_ref : relu_ref;
            ck_assert_msg(isnan(y[0]), "%s: %s(NaN) = %g", harness_device_name(d),
                          k ? "relu6" : "relu", (double)y[0]);
            for (int i = 1; i < 4; i++) ck_assert(y[i] == ref[i]);
            hb_free(&bx);
            hb_free(&by);
        }
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_eltwise");
    TCase *tc = tcase_create("eltwise");
    tcase_set_timeout(tc, 600);
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
