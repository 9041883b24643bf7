/* Tests channel concatenation (torch.cat dim=1) forward and its backward split against a naive
 * double reference, on every device: odd channel counts and spatial sizes, one channel, batches,
 * guards around every buffer (hbuf), the backward with either gradient not wanted, and shape
 * errors. Both directions are pure copies, so the tolerance is zero: every element must be the
 * exact float. The reference's backward is itself checked against finite differences of its
 * forward (harness_check_fd). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct concat_case {
    int n, ca, cb, h, w;
} concat_case;

static size_t a_count(const concat_case *c) { return (size_t)c->n * c->ca * c->h * c->w; }
static size_t b_count(const concat_case *c) { return (size_t)c->n * c->cb * c->h * c->w; }
static size_t y_count(const concat_case *c) { return a_count(c) + b_count(c); }

/* y[n, k] = a[n, k] for k < Ca, b[n, k - Ca] otherwise (one plane of H*W per channel). */
static void ref_forward(const concat_case *c, const double *a, const double *b, double *y) {
    const size_t hw = (size_t)c->h * c->w;
    const int cy = c->ca + c->cb;
    for (int n = 0; n < c->n; n++)
        for (int k = 0; k < cy; k++)
            for (size_t i = 0; i < hw; i++)
                y[((size_t)n * cy + k) * hw + i] =
                    k < c->ca ? a[((size_t)n * c->ca + k) * hw + i]
                              : b[((size_t)n * c->cb + (k - c->ca)) * hw + i];
}

/* The gradient of sum(y * dy): da and db are dy's two channel blocks. */
static void ref_backward(const concat_case *c, const double *dy, double *da, double *db) {
    const size_t hw = (size_t)c->h * c->w;
    const int cy = c->ca + c->cb;
    for (int n = 0; n < c->n; n++)
        for (int k = 0; k < cy; k++)
            for (size_t i = 0; i < hw; i++) {
                const double g = dy[((size_t)n * cy + k) * hw + i];
                if (k < c->ca) da[((size_t)n * c->ca + k) * hw + i] = g;
                else db[((size_t)n * c->cb + (k - c->ca)) * hw + i] = g;
            }
}

typedef struct fd_user {
    const concat_case *c;
    double *a, *b, *y;
    const double *dy;
} fd_user;

static double fd_loss(void *user) {
    fd_user *u = user;
    ref_forward(u->c, u->a, u->b, u->y);
    double s = 0;
    for (size_t i = 0; i < y_count(u->c); i++) s += u->y[i] * u->dy[i];
    return s;
}

START_TEST(reference_gradients_fd) {
    const concat_case c = {2, 3, 2, 3, 2};
    harness_arena A = {0};
    double *a = ha_widen(&A, ha_uniform(&A, a_count(&c), -1.0f, 1.0f, 1), a_count(&c));
    double *b = ha_widen(&A, ha_uniform(&A, b_count(&c), -1.0f, 1.0f, 2), b_count(&c));
    double *dy = ha_widen(&A, ha_uniform(&A, y_count(&c), -1.0f, 1.0f, 3), y_count(&c));
    double *da = ha_doubles(&A, a_count(&c)), *db = ha_doubles(&A, b_count(&c));
    ref_backward(&c, dy, da, db);
    fd_user u = {&c, a, b, ha_doubles(&A, y_count(&c)), dy};
    const harness_fd_arg args[2] = {{"a", a, da, a_count(&c)}, {"b", b, db, b_count(&c)}};
    harness_check_fd("concat reference", fd_loss, &u, args, 2, 1e-3, 1e-9, 1e-7);
    ha_free(&A);
}
END_TEST

static void check_case(const concat_case *c) {
    harness_arena A = {0};
    const size_t na = a_count(c), nb = b_count(c), ny = y_count(c);
    const float *a = ha_uniform(&A, na, -1.0f, 1.0f, 11 + (uint64_t)c->ca);
    const float *b = ha_uniform(&A, nb, -1.0f, 1.0f, 12 + (uint64_t)c->cb);
    const float *dy = ha_uniform(&A, ny, -1.0f, 1.0f, 13 + (uint64_t)c->h);
    double *ref_y = ha_doubles(&A, ny), *ref_da = ha_doubles(&A, na), *ref_db = ha_doubles(&A, nb);
    ref_forward(c, ha_widen(&A, a, na), ha_widen(&A, b, nb), ref_y);
    ref_backward(c, ha_widen(&A, dy, ny), ref_da, ref_db);
    const int cy = c->ca + c->cb;
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        const char *name = harness_device_name(dev);
        hbuf *by = ha_buf(&A, ctx, ny), *bda = ha_buf(&A, ctx, na), *bdb = ha_buf(&A, ctx, nb);
        oclseg_tensor ta = hb_tensor(ha_buf_from(&A, ctx, a, na), c->n, c->ca, c->h, c->w);
        oclseg_tensor tb = hb_tensor(ha_buf_from(&A, ctx, b, nb), c->n, c->cb, c->h, c->w);
        oclseg_tensor tdy = hb_tensor(ha_buf_from(&A, ctx, dy, ny), c->n, cy, c->h, c->w);
        oclseg_tensor ty = hb_tensor(by, c->n, cy, c->h, c->w);
        oclseg_tensor tda = hb_tensor(bda, c->n, c->ca, c->h, c->w);
        oclseg_tensor tdb = hb_tensor(bdb, c->n, c->cb, c->h, c->w);
        ck_assert_int_eq(op_concat_forward(ctx, &ta, &tb, &ty), OCLSEG_OK);
        hb_check(by, ref_y, 0, 0, "concat (%d,%d+%d,%d,%d) forward on %s", c->n, c->ca, c->cb,
                 c->h, c->w, name);
        ck_assert_int_eq(op_concat_backward(ctx, &tdy, &tda, &tdb), OCLSEG_OK);
        hb_check(bda, ref_da, 0, 0, "concat (%d,%d+%d,%d,%d) backward da on %s", c->n, c->ca,
                 c->cb, c->h, c->w, name);
        hb_check(bdb, ref_db, 0, 0, "concat (%d,%d+%d,%d,%d) backward db on %s", c->n, c->ca,
                 c->cb, c->h, c->w, name);
        /* one gradient not wanted: the other is still written, the unwanted buffer untouched */
        hb_poison(bda);
        hb_poison(bdb);
        ck_assert_int_eq(op_concat_backward(ctx, &tdy, NULL, &tdb), OCLSEG_OK);
        hb_check(bdb, ref_db, 0, 0, "concat backward db alone on %s", name);
        ck_assert_int_eq(op_concat_backward(ctx, &tdy, &tda, NULL), OCLSEG_OK);
        hb_check(bda, ref_da, 0, 0, "concat backward da alone on %s", name);
        ck_assert_int_eq(op_concat_backward(ctx, &tdy, NULL, NULL), OCLSEG_OK);
    }
    ha_free(&A);
}

START_TEST(odd_channels) {
    check_case(&(concat_case){3, 5, 7, 9, 11});
    check_case(&(concat_case){2, 1, 3, 5, 3});
}
END_TEST
START_TEST(one_channel_each) { check_case(&(concat_case){4, 1, 1, 1, 1}); }
END_TEST
START_TEST(model_shapes) {
    /* the skip decoder's joins (reduced widths): decoder channels + encoder channels */
    check_case(&(concat_case){2, 33, 13, 6, 6});
    if (!harness_small()) check_case(&(concat_case){2, 16, 8, 48, 48});
}
END_TEST

START_TEST(shape_errors) {
    oclseg_ctx *ctx = harness_ctx(0);
    harness_arena A = {0};
    hbuf *buf = ha_buf(&A, ctx, 4 * 6 * 3 * 3); /* views of one buffer, never launched on */
#define VIEW(n, c, h, w) oclseg_tensor_view(buf->buf, buf->lead, n, c, h, w)
    oclseg_tensor a = VIEW(1, 2, 3, 3), b = VIEW(1, 3, 3, 3), y = VIEW(1, 5, 3, 3);
    oclseg_tensor y_wrong_c = VIEW(1, 6, 3, 3);
    oclseg_tensor b_wrong_h = VIEW(1, 3, 1, 9), b_wrong_n = VIEW(3, 1, 3, 3);
    oclseg_tensor empty = VIEW(1, 0, 3, 3);
#undef VIEW
    HARNESS_REJECTS(op_concat_forward(ctx, &a, &b, &y_wrong_c));
    HARNESS_REJECTS(op_concat_forward(ctx, &a, &b_wrong_h, &y));
    HARNESS_REJECTS(op_concat_forward(ctx, &a, &b_wrong_n, &y));
    HARNESS_REJECTS(op_concat_forward(ctx, &empty, &b, &y));
    HARNESS_REJECTS(op_concat_backward(ctx, &y_wrong_c, &a, &b));
    HARNESS_REJECTS(op_concat_backward(ctx, &y, &a, &b_wrong_h));
    HARNESS_REJECTS(op_concat_backward(ctx, &y, NULL, &y));   /* nothing left for a */
    HARNESS_REJECTS(op_concat_backward(ctx, &y, &b_wrong_h, NULL));
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_concat");
    TCase *tc = tcase_create("concat");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, reference_gradients_fd);
    tcase_add_test(tc, odd_channels);
    tcase_add_test(tc, one_channel_each);
    tcase_add_test(tc, model_shapes);
    tcase_add_test(tc, shape_errors);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
