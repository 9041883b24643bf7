/* Tests bilinear resize (align_corners=False, any output size) forward and backward against
 * double-precision references that follow PyTorch 1.13's UpSampleBilinear2d, on every device.
 *
 * The reference computes the source index and lambda exactly as PyTorch does (float scale,
 * float source coordinate), then interpolates/accumulates in double. Tolerance: inputs are in
 * [-1, 1); a forward output is a 4-term convex combination (~7 float roundings of values <= 1),
 * so atol 1e-6 (~8 ulp at 1); a backward input gradient sums `terms` products of weights <= 1
 * and dy in [-1, 1), so atol = 2 * terms * FLT_EPSILON; rtol 1e-5 on top of both. A wrong
 * index or weight moves results by O(0.1). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const double FWD_ATOL = 1e-6, RTOL = 1e-5;

typedef struct resize_case {
    int n, c, h, w, ho, wo;
} resize_case;

/* PyTorch's area_pixel_compute_source_index (align_corners=False) for one axis, in float:
 * src = max(scale * (dst + 0.5) - 0.5, 0), i0 = floor(src), i1 = min(i0 + 1, in - 1). */
static void ref_source(int in, int out, int dst, int *i0, int *i1, double *lambda1) {
    const float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    *i0 = (int)src;
    *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
    *lambda1 = (double)(src - (float)*i0);
}

/* y (N, C, Ho, Wo) from x (N, C, H, W). */
static void ref_forward(const resize_case *r, const double *x, double *y) {
    for (int p = 0; p < r->n * r->c; p++)
        for (int oy = 0; oy < r->ho; oy++)
            for (int ox = 0; ox < r->wo; ox++) {
                int y0, y1, x0, x1;
                double ly, lx;
                ref_source(r->h, r->ho, oy, &y0, &y1, &ly);
                ref_source(r->w, r->wo, ox, &x0, &x1, &lx);
                const double *s = x + (size_t)p * r->h * r->w;
                y[((size_t)p * r->ho + oy) * r->wo + ox] =
                    (1 - ly) * ((1 - lx) * s[y0 * r->w + x0] + lx * s[y0 * r->w + x1]) +
                    ly * ((1 - lx) * s[y1 * r->w + x0] + lx * s[y1 * r->w + x1]);
            }
}

/* dx (N, C, H, W) from dy (N, C, Ho, Wo), by scatter (as PyTorch's CPU backward). Also counts,
 * per input element, how many products reach it (for the tolerance). */
static void ref_backward(const resize_case *r, const double *dy, double *dx, double *terms) {
    memset(dx, 0, (size_t)r->n * r->c * r->h * r->w * sizeof *dx);
    if (terms) memset(terms, 0, (size_t)r->n * r->c * r->h * r->w * sizeof *terms);
    for (int p = 0; p < r->n * r->c; p++)
        for (int oy = 0; oy < r->ho; oy++)
            for (int ox = 0; ox < r->wo; ox++) {
                int y0, y1, x0, x1;
                double ly, lx;
                ref_source(r->h, r->ho, oy, &y0, &y1, &ly);
                ref_source(r->w, r->wo, ox, &x0, &x1, &lx);
                double g = dy[((size_t)p * r->ho + oy) * r->wo + ox];
                size_t base = (size_t)p * r->h * r->w;
                int iy[2] = {y0, y1}, ix[2] = {x0, x1};
                double wy[2] = {1 - ly, ly}, wx[2] = {1 - lx, lx};
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++) {
                        dx[base + (size_t)iy[a] * r->w + ix[b]] += g * wy[a] * wx[b];
                        if (terms) terms[base + (size_t)iy[a] * r->w + ix[b]]++;
                    }
            }
}

static size_t x_count(const resize_case *r) { return (size_t)r->n * r->c * r->h * r->w; }
static size_t y_count(const resize_case *r) { return (size_t)r->n * r->c * r->ho * r->wo; }

static void check_case(const resize_case *full) {
    /* Under Oclgrind (slow) keep the spatial sizes but only a couple of planes. */
    resize_case small = {1, 2, full->h, full->w, full->ho, full->wo};
    const resize_case *r = harness_small() ? &small : full;
    const size_t nx = x_count(r), ny = y_count(r);
    harness_arena A = {0};
    const float *x = ha_uniform(&A, nx, -1.0f, 1.0f, 7 + (uint64_t)r->ho);
    const float *dy = ha_uniform(&A, ny, -1.0f, 1.0f, 8 + (uint64_t)r->wo);
    float *got_dx = ha_floats(&A, nx), *again_dx = ha_floats(&A, nx);
    double *ref_y = ha_doubles(&A, ny), *ref_dx = ha_doubles(&A, nx), *terms = ha_doubles(&A, nx);
    ref_forward(r, ha_widen(&A, x, nx), ref_y);
    ref_backward(r, ha_widen(&A, dy, ny), ref_dx, terms);
    double max_terms = 1;
    for (size_t i = 0; i < nx; i++) max_terms = fmax(max_terms, terms[i]);
    const double bwd_atol = 2.0 * max_terms * FLT_EPSILON;
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        const char *dev_name = harness_device_name(dev);
        hbuf *bx = ha_buf_from(&A, ctx, x, nx), *by = ha_buf(&A, ctx, ny);
        hbuf *bdy = ha_buf_from(&A, ctx, dy, ny), *bdx = ha_buf(&A, ctx, nx);
        oclseg_tensor tx = hb_tensor(bx, r->n, r->c, r->h, r->w);
        oclseg_tensor ty = hb_tensor(by, r->n, r->c, r->ho, r->wo);
        oclseg_tensor tdy = hb_tensor(bdy, r->n, r->c, r->ho, r->wo);
        oclseg_tensor tdx = hb_tensor(bdx, r->n, r->c, r->h, r->w);
        ck_assert_int_eq(op_upsample_bilinear_forward(ctx, &tx, &ty), OCLSEG_OK);
        hb_check(by, ref_y, FWD_ATOL, RTOL, "upsample %dx%d -> %dx%d forward on %s", r->h, r->w,
                 r->ho, r->wo, dev_name);
        char what[160];
        snprintf(what, sizeof what, "upsample %dx%d -> %dx%d backward on %s", r->h, r->w, r->ho,
                 r->wo, dev_name);
        ck_assert_int_eq(op_upsample_bilinear_backward(ctx, &tdy, &tdx), OCLSEG_OK);
        hb_download(bdx, got_dx, what);
        harness_compare(what, got_dx, ref_dx, nx, bwd_atol, RTOL);
        /* deterministic: a second run gives the same bits */
        hb_poison(bdx);
        ck_assert_int_eq(op_upsample_bilinear_backward(ctx, &tdy, &tdx), OCLSEG_OK);
        hb_download(bdx, again_dx, what);
        ck_assert_msg(memcmp(got_dx, again_dx, nx * sizeof(float)) == 0,
                      "%s: two runs differ (not deterministic)", what);
    }
    ha_free(&A);
}

START_TEST(upsample_odd) { check_case(&(resize_case){3, 5, 7, 9, 13, 20}); }
END_TEST
START_TEST(downsample) {
    check_case(&(resize_case){3, 5, 5, 5, 3, 4});
    check_case(&(resize_case){2, 3, 13, 20, 7, 9});
}
END_TEST
START_TEST(from_one_pixel) { check_case(&(resize_case){3, 5, 1, 1, 3, 3}); }
END_TEST
START_TEST(identity_size) { check_case(&(resize_case){3, 5, 7, 9, 7, 9}); }
END_TEST
START_TEST(mixed_and_large_factor) {
    check_case(&(resize_case){2, 3, 9, 2, 4, 11}); /* down in H, x5.5 up in W */
    check_case(&(resize_case){1, 2, 2, 3, 1, 17}); /* to one row, x5.67 up in W */
}
END_TEST
/* The model's 64x64 -> 128x128 (scale 2). */
START_TEST(model_scale_2) {
    if (harness_small()) {
        check_case(&(resize_case){1, 2, 6, 5, 12, 10});
        return;
    }
    check_case(&(resize_case){2, 3, 64, 64, 128, 128});
}
END_TEST

/* The loss sum(dy * y(x)) of the reference forward at the current x (for the FD check). */
typedef struct fd_state {
    const resize_case *r;
    const double *x, *dy;
    double *y;
} fd_state;

static double fd_loss(void *user) {
    const fd_state *f = user;
    ref_forward(f->r, f->x, f->y);
    double loss = 0.0;
    for (size_t j = 0; j < y_count(f->r); j++) loss += f->dy[j] * f->y[j];
    return loss;
}

/* Reference backward vs central differences of the reference forward (double):
 * L = sum(dy * y(x)) is linear in x, so the difference is exact up to rounding of L
 * (~1e-16 * |L| / h ~ 1e-12 for h = 1e-3): tolerance 1e-9 + 1e-9 |fd|. */
START_TEST(reference_gradient_fd) {
    const resize_case cases[] = {{1, 2, 3, 4, 5, 7}, {1, 1, 5, 5, 3, 4}, {1, 1, 1, 1, 3, 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const resize_case *r = &cases[k];
        const size_t nx = x_count(r), ny = y_count(r);
        harness_arena A = {0};
        double *x = ha_widen(&A, ha_uniform(&A, nx, -1.0f, 1.0f, 51), nx);
        double *dy = ha_widen(&A, ha_uniform(&A, ny, -1.0f, 1.0f, 52), ny);
        double *dx = ha_doubles(&A, nx);
        ref_backward(r, dy, dx, NULL);
        double total = 0;
        for (size_t i = 0; i < nx; i++) total += fabs(dx[i]);
        ck_assert(total > 0); /* not vacuous */
        fd_state f = {r, x, dy, ha_doubles(&A, ny)};
        const harness_fd_arg args[] = {{"dx", x, dx, nx}};
        char what[64];
        snprintf(what, sizeof what, "upsample reference, case %zu", k);
        harness_check_fd(what, fd_loss, &f, args, 1, 1e-3, 1e-9, 1e-9);
        ha_free(&A);
    }
}
END_TEST

START_TEST(shape_errors) {
    oclseg_ctx *ctx = harness_ctx(0);
    harness_arena A = {0};
    hbuf *b = ha_buf(&A, ctx, 1024);
    oclseg_tensor x = oclseg_tensor_view(b->buf, b->lead, 2, 3, 4, 4);
    oclseg_tensor y_bad_n = oclseg_tensor_view(b->buf, b->lead, 1, 3, 8, 8);
    oclseg_tensor y_bad_c = oclseg_tensor_view(b->buf, b->lead, 2, 2, 8, 8);
    HARNESS_REJECTS(op_upsample_bilinear_forward(ctx, &x, &y_bad_n));
    HARNESS_REJECTS(op_upsample_bilinear_backward(ctx, &y_bad_c, &x));
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_upsample");
    TCase *tc = tcase_create("upsample");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, reference_gradient_fd);
    tcase_add_test(tc, upsample_odd);
    tcase_add_test(tc, downsample);
    tcase_add_test(tc, from_one_pixel);
    tcase_add_test(tc, identity_size);
    tcase_add_test(tc, mixed_and_large_factor);
    tcase_add_test(tc, model_scale_2);
    tcase_add_test(tc, shape_errors);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
