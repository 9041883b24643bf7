/* Tests BCE-with-logits (mean loss and gradient), soft Dice (loss and gradient, written or
 * accumulated) and per-image confusion counts against
 * double-precision references: odd shapes spanning many work-groups, extreme logits, the loss
 * written to one slot of a ring buffer, empty masks, and argument checks.
 * Tolerances: the loss is a mean of positive terms, each within ~4 ulp (exp, log1p), summed in
 * float with a depth of at most ~20 additions (per-item loop + two log2(work-group) trees), so
 * rtol 2e-6 (~30 ulp). Each gradient element is sigmoid(x) - y (a few ulp of 1 absolute, with
 * cancellation when sigmoid(x) ~ y) divided by numel: atol 4e-7/numel, rtol 1e-6. Counts are
 * integers and must match exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const double LOSS_RTOL = 2e-6, GRAD_RTOL = 1e-6, GRAD_ATOL_NUMEL = 4e-7;
static const uint32_t POISON = 0x7fc0dead; /* the harness's poison (a quiet NaN) */

/* N=3 images of 1 channel, 37x29 (3219 elements: > 50 work-groups of 64); Oclgrind: 11x13. */
static void test_shape(int *n, int *c, int *h, int *w) {
    *n = 3;
    *c = 1;
    *h = harness_small() ? 11 : 37;
    *w = harness_small() ? 13 : 29;
}

static double ref_term(double x, double y) { return fmax(x, 0.0) - x * y + log1p(exp(-fabs(x))); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double ref_loss(const float *x, const float *y, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += ref_term(x[i], y[i]);
    return sum / (double)n;
}

static void ref_grad(const float *x, const float *y, size_t n, double *g) {
    for (size_t i = 0; i < n; i++) g[i] = (ref_sigmoid(x[i]) - y[i]) / (double)n;
}

/* Logits in [-8, 8]; targets binary for most elements, soft (0..1) for every 7th. */
static void make_inputs(float *x, float *y, size_t n, uint64_t seed) {
    harness_fill_uniform(x, n, -8.0f, 8.0f, seed);
    harness_fill_uniform(y, n, 0.0f, 1.0f, seed + 100);
    for (size_t i = 0; i < n; i++)
        if (i % 7 != 0) y[i] = y[i] < 0.4f ? 1.0f : 0.0f;
}

/* The test shape (test_shape) and its logits and targets (make_inputs) in the arena; returns the
 * element count. */
static size_t shape_inputs(harness_arena *A, uint64_t seed, int *n, int *c, int *h, int *w,
                           float **x, float **y) {
    test_shape(n, c, h, w);
    const size_t count = (size_t)*n * *c * *h * *w;
    *x = ha_floats(A, count);
    *y = ha_floats(A, count);
    make_inputs(*x, *y, count, seed);
    return count;
}

/* Runs op_bce_with_logits on every device and compares loss (and gradient, if with_grad). */
static void check_bce(const char *what, const float *x, const float *y, int n, int c, int h,
                      int w, int with_grad) {
    const size_t count = (size_t)n * c * h * w;
    harness_arena A = {0};
    double loss_ref = ref_loss(x, y, count);
    double *grad_ref = ha_doubles(&A, count);
    float *loss = ha_floats(&A, 1), *again = ha_floats(&A, 1);
    ref_grad(x, y, count, grad_ref);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, count), *by = ha_buf_from(&A, ctx, y, count);
        hbuf *bg = ha_buf(&A, ctx, count), *bl = ha_buf(&A, ctx, 1);
        oclseg_tensor tx = hb_tensor(bx, n, c, h, w), ty = hb_tensor(by, n, c, h, w);
        oclseg_tensor tg = hb_tensor(bg, n, c, h, w), tl = hb_tensor(bl, 1, 1, 1, 1);
        ck_assert_int_eq(op_bce_with_logits(ctx, &tx, &ty, &tl, with_grad ? &tg : NULL), OCLSEG_OK);
        hb_download(bl, loss, what);
        harness_compare(what, loss, &loss_ref, 1, 0.0, LOSS_RTOL);
        if (with_grad) hb_check(bg, grad_ref, GRAD_ATOL_NUMEL / (double)count, GRAD_RTOL, "%s", what);
        /* deterministic: a second run gives the same bits */
        ck_assert_int_eq(op_bce_with_logits(ctx, &tx, &ty, &tl, NULL), OCLSEG_OK);
        hb_download(bl, again, what);
        ck_assert_msg(memcmp(loss, again, sizeof *loss) == 0, "%s: two runs differ", what);
    }
    ha_free(&A);
}

START_TEST(bce_forward_backward) {
    int n, c, h, w;
    float *x, *y;
    harness_arena A = {0};
    shape_inputs(&A, 1, &n, &c, &h, &w, &x, &y);
    check_bce("bce", x, y, n, c, h, w, 1);
    /* a size below one work-group, and one just above */
    check_bce("bce (5 elements)", x, y, 1, 1, 1, 5, 1);
    check_bce("bce (67 elements)", x, y, 1, 1, 1, 67, 0);
    ha_free(&A);
}
END_TEST

/* The mean loss of logits x (double) and targets y (for the finite-difference checks). */
typedef struct fd_state {
    const double *x;
    const float *y;
    int n;
    size_t per; /* per image (Dice) */
} fd_state;

static double bce_fd_loss(void *user) {
    const fd_state *f = user;
    double sum = 0.0;
    for (size_t j = 0; j < f->per; j++) sum += ref_term(f->x[j], f->y[j]);
    return sum / (double)f->per;
}

/* The reference gradient is the derivative of the reference loss: central differences in
 * double (step 1e-5 on logits of size ~8: truncation ~1e-10, rounding ~1e-11 relative). */
START_TEST(bce_reference_gradient_vs_finite_differences) {
    enum { COUNT = 23 };
    harness_arena A = {0};
    float *x = ha_floats(&A, COUNT), *y = ha_floats(&A, COUNT);
    double *g = ha_doubles(&A, COUNT);
    make_inputs(x, y, COUNT, 2);
    ref_grad(x, y, COUNT, g);
    fd_state f = {ha_widen(&A, x, COUNT), y, 1, COUNT};
    const harness_fd_arg args[] = {{"dx", (double *)f.x, g, COUNT}};
    harness_check_fd("bce reference", bce_fd_loss, &f, args, 1, 1e-5, 1e-9, 0.0);
    ha_free(&A);
}
END_TEST

/* Logits of +-1e4 and +-100 with both targets: terms 0, 1e4, 100 and log1p(e^-100) (denormal
 * in float: flushing it is harmless); nothing overflows into Inf/NaN. */
START_TEST(bce_extreme_logits) {
    enum { COUNT = 10 };
    const float x[COUNT] = {1e4f, 1e4f, -1e4f, -1e4f, 100.0f, 100.0f, -100.0f, -100.0f, 0.0f, 0.0f};
    const float y[COUNT] = {1, 0, 0, 1, 1, 0, 0, 1, 0, 1};
    check_bce("bce extremes", x, y, 1, 1, 2, 5, 1);
    /* the exact values: mean = (1e4 + 1e4 + 100 + 100 + 2 log 2 + tiny) / 10 */
    const double exact = (2e4 + 200.0 + 2.0 * log(2.0)) / COUNT;
    ck_assert(fabs(ref_loss(x, y, COUNT) - exact) < 1e-12);
}
END_TEST

/* The loss goes to slot k of a ring buffer of 8 floats; the other slots stay untouched. */
START_TEST(bce_loss_in_ring_buffer) {
    int n, c, h, w;
    float *x, *y;
    harness_arena A = {0};
    const size_t count = shape_inputs(&A, 3, &n, &c, &h, &w, &x, &y);
    float *got = ha_floats(&A, 8), *got2 = ha_floats(&A, 8);
    double loss_ref[2] = {ref_loss(x, y, count), ref_loss(y, y, count)};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, count), *by = ha_buf_from(&A, ctx, y, count);
        hbuf *ring = ha_buf(&A, ctx, 8);
        oclseg_tensor tx = hb_tensor(bx, n, c, h, w), ty = hb_tensor(by, n, c, h, w);
        oclseg_tensor slot5 = oclseg_tensor_view(ring->buf, ring->lead + 5, 1, 1, 1, 1);
        oclseg_tensor slot2 = oclseg_tensor_view(ring->buf, ring->lead + 2, 1, 1, 1, 1);
        ck_assert_int_eq(op_bce_with_logits(ctx, &tx, &ty, &slot5, NULL), OCLSEG_OK);
        hb_download(ring, got, "bce ring");
        for (int s = 0; s < 8; s++) {
            uint32_t bits;
            memcpy(&bits, &got[s], sizeof bits);
            if (s == 5) harness_compare("bce ring slot 5", &got[s], loss_ref, 1, 0.0, LOSS_RTOL);
            else ck_assert_msg(bits == POISON, "bce ring: slot %d was written", s);
        }
        /* the next step writes slot 2 from other data; slot 5 keeps its value */
        ck_assert_int_eq(op_bce_with_logits(ctx, &ty, &ty, &slot2, NULL), OCLSEG_OK);
        hb_download(ring, got2, "bce ring");
        harness_compare("bce ring slot 2", &got2[2], &loss_ref[1], 1, 0.0, LOSS_RTOL);
        ck_assert(memcmp(&got2[5], &got[5], sizeof(float)) == 0);
    }
    ha_free(&A);
}
END_TEST

/* Host counting with the real definition: sigmoid(x) > t (double), y > 0.5. */
static void ref_counts(const float *x, const float *y, int n, size_t per_image, double t,
                       uint32_t *counts) {
    for (int img = 0; img < n; img++) {
        uint32_t tp = 0, pred = 0, truth = 0, tn = 0;
        for (size_t i = 0; i < per_image; i++) {
            const size_t e = (size_t)img * per_image + i;
            const int p = ref_sigmoid(x[e]) > t, g = y[e] > 0.5f;
            tp += p && g;
            pred += p;
            truth += g;
            tn += !p && !g;
        }
        counts[4 * img + 0] = tp;
        counts[4 * img + 1] = pred;
        counts[4 * img + 2] = truth;
        counts[4 * img + 3] = tn;
    }
}

START_TEST(seg_counts_vs_host) {
    int n, c, h, w;
    float *x, *y;
    harness_arena A = {0};
    const size_t count = shape_inputs(&A, 4, &n, &c, &h, &w, &x, &y);
    const size_t per_image = count / (size_t)n;
    /* image 1: empty target and empty prediction; image 2: empty target, some predictions */
    for (size_t i = 0; i < per_image; i++) {
        x[per_image + i] = -fabsf(x[per_image + i]) - 2.0f; /* sigmoid < 0.12 */
        y[per_image + i] = 0.0f;
        y[2 * per_image + i] = 0.0f;
    }
    x[0] = 0.0f; /* exactly at t = 0.5: sigmoid(0) > 0.5 is false */
    y[1] = 0.5f; /* exactly 0.5 is not foreground */
    const float thresholds[3] = {0.5f, 0.3f, 0.85f};
    const size_t off = 3, slots = off + 4 * (size_t)n + 5;
    uint32_t *host = ha_bytes(&A, slots * sizeof(uint32_t));
    uint32_t *ref = ha_bytes(&A, 4 * (size_t)n * sizeof(uint32_t));
    const uint32_t SENT = 0xdeadbeefu;
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, count), *by = ha_buf_from(&A, ctx, y, count);
        oclseg_tensor tx = hb_tensor(bx, n, c, h, w), ty = hb_tensor(by, n, c, h, w);
        /* an unguarded buffer of exactly `slots` counts: the sentinels around the range are
         * the test's own */
        cl_mem counts;
        ck_assert_int_eq(oclseg_buffer_create(ctx, slots * sizeof(uint32_t), "counts", &counts),
                         OCLSEG_OK);
        for (int k = 0; k < 3; k++) {
            for (size_t s = 0; s < slots; s++) host[s] = SENT;
            ck_assert_int_eq(oclseg_write(ctx, counts, 0, slots * sizeof(uint32_t), host), OCLSEG_OK);
            ck_assert_int_eq(op_seg_counts(ctx, &tx, &ty, thresholds[k], counts, off), OCLSEG_OK);
            ck_assert_int_eq(oclseg_read(ctx, counts, 0, slots * sizeof(uint32_t), host), OCLSEG_OK);
            ref_counts(x, y, n, per_image, thresholds[k], ref);
            for (size_t s = 0; s < slots; s++) {
                if (s >= off && s < off + 4 * (size_t)n)
                    ck_assert_msg(host[s] == ref[s - off],
                                  "seg_counts on %s, t %g: image %zu count %zu = %u, host %u",
                                  harness_device_name(d), (double)thresholds[k], (s - off) / 4,
                                  (s - off) % 4, host[s], ref[s - off]);
                else
                    ck_assert_msg(host[s] == SENT, "seg_counts: slot %zu outside the range written", s);
            }
            /* the empty masks really are empty */
            ck_assert_uint_eq(ref[4 + 0], 0);
            ck_assert_uint_eq(ref[4 + 1], 0);
            ck_assert_uint_eq(ref[4 + 2], 0);
            ck_assert_uint_eq(ref[4 + 3], per_image);
            ck_assert_uint_eq(ref[8 + 2], 0);
            ck_assert_uint_gt(ref[8 + 1], 0);
        }
        oclseg_buffer_free(ctx, counts);
    }
    ha_free(&A);
}
END_TEST

START_TEST(invalid_arguments) {
    harness_arena A = {0};
    const float *x = ha_uniform(&A, 35, -1.0f, 1.0f, 5);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, 35), *by = ha_buf_from(&A, ctx, x, 35);
        hbuf *bl = ha_buf(&A, ctx, 2);
        oclseg_tensor tx = hb_tensor(bx, 1, 1, 5, 7), ty = hb_tensor(by, 1, 1, 5, 7);
        oclseg_tensor wrong = hb_tensor(by, 1, 1, 7, 5), loss2 = hb_tensor(bl, 1, 1, 1, 2);
        oclseg_tensor loss = oclseg_tensor_view(bl->buf, bl->lead, 1, 1, 1, 1);
        HARNESS_REJECTS(op_bce_with_logits(ctx, &tx, &wrong, &loss, NULL));
        HARNESS_REJECTS(op_bce_with_logits(ctx, &tx, &ty, &loss2, NULL));
        HARNESS_REJECTS(op_bce_with_logits(ctx, &tx, &ty, &loss, &wrong));
        HARNESS_REJECTS(op_soft_dice(ctx, &tx, &wrong, &loss, NULL, 0));
        HARNESS_REJECTS(op_soft_dice(ctx, &tx, &ty, &loss2, NULL, 0));
        HARNESS_REJECTS(op_soft_dice(ctx, &tx, &ty, &loss, &wrong, 0));
        /* exactly the 4 counts of one image: offset 1 runs past its end */
        cl_mem counts;
        ck_assert_int_eq(oclseg_buffer_create(ctx, 4 * sizeof(uint32_t), "counts", &counts), OCLSEG_OK);
        HARNESS_REJECTS(op_seg_counts(ctx, &tx, &wrong, 0.5f, counts, 0));
        HARNESS_REJECTS(op_seg_counts(ctx, &tx, &ty, 1.5f, counts, 0));
        HARNESS_REJECTS(op_seg_counts(ctx, &tx, &ty, 0.5f, counts, 1));
        oclseg_buffer_free(ctx, counts);
    }
    ha_free(&A);
}
END_TEST

/* ---- soft Dice -------------------------------------------------------------------------------
 * Tolerances: per image, sum p*y and sum p + sum y run over <= 1073 terms in [0, 2], each item
 * accumulating <= 17 terms before a log2(64)-deep tree: <= ~25 roundings, relative error
 * <= 25 * 6e-8 = 1.5e-6 per sum; D_i is a ratio of them (~3e-6) and the loss 1 - mean D_i is a
 * mean of such terms, so atol 1e-5 on a value <= 1. A gradient element is
 * -(1/N) (2 y S - 2 I - 1) / S^2 * p(1-p) with S >= 2I (no cancellation in the numerator for
 * binary y; soft y can bring it near zero, hence atol relative to the largest element):
 * rtol 2e-5, atol 1e-5 * max|ref|. */
static const double DICE_LOSS_ATOL = 1e-5, DICE_GRAD_RTOL = 2e-5, DICE_GRAD_ATOL_REL = 1e-5;

static double ref_dice_loss_d(const double *x, const float *y, int n, size_t per) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double inter = 0.0, total = 0.0;
        for (size_t j = 0; j < per; j++) {
            const double p = ref_sigmoid(x[i * per + j]);
            inter += p * y[i * per + j];
            total += p + y[i * per + j];
        }
        sum += (2.0 * inter + 1.0) / (total + 1.0);
    }
    return 1.0 - sum / n;
}

static double ref_dice_loss(harness_arena *A, const float *x, const float *y, int n, size_t per) {
    return ref_dice_loss_d(ha_widen(A, x, (size_t)n * per), y, n, per);
}

static void ref_dice_grad(const float *x, const float *y, int n, size_t per, double *g) {
    for (int i = 0; i < n; i++) {
        double inter = 0.0, total = 0.0;
        for (size_t j = 0; j < per; j++) {
            const double p = ref_sigmoid(x[i * per + j]);
            inter += p * y[i * per + j];
            total += p + y[i * per + j];
        }
        const double s = total + 1.0;
        for (size_t j = 0; j < per; j++) {
            const double p = ref_sigmoid(x[i * per + j]);
            g[i * per + j] = -(2.0 * y[i * per + j] * s - (2.0 * inter + 1.0)) / (s * s) *
                             p * (1.0 - p) / n;
        }
    }
}

/* op_soft_dice on every device: loss and gradient, written (accumulate 0) and added to a
 * previous loss/gradient (accumulate 1), deterministic over two runs. */
static void check_dice(const char *what, const float *x, const float *y, int n, int h, int w) {
    const size_t per = (size_t)h * w, count = n * per;
    harness_arena A = {0};
    double loss_ref = ref_dice_loss(&A, x, y, n, per), maxg = 0.0;
    double *grad_ref = ha_doubles(&A, count), *acc_ref = ha_doubles(&A, count);
    float *loss = ha_floats(&A, 1), *again = ha_floats(&A, 1);
    ref_dice_grad(x, y, n, per, grad_ref);
    const float *prev = ha_uniform(&A, count, -1e-3f, 1e-3f, 77);
    for (size_t i = 0; i < count; i++) {
        acc_ref[i] = grad_ref[i] + prev[i];
        if (fabs(grad_ref[i]) > maxg) maxg = fabs(grad_ref[i]);
    }
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        /* Under Oclgrind the shared scratch is grown up front: after a regrowth (old buffer
         * released, a larger one created) Oclgrind reports values the first kernel writes into
         * the new buffer as uninitialised when the second reads them, although the values are
         * right (the Oclgrind issue test_ops_batchnorm.c works around the same way; reproduced
         * here with bce on 15 elements, then dice on 5 images). Real devices keep the growth. */
        cl_mem grown;
        if (harness_small()) ck_assert_int_eq(oclseg_scratch(ctx, 4096, &grown), OCLSEG_OK);
        hbuf *bx = ha_buf_from(&A, ctx, x, count), *by = ha_buf_from(&A, ctx, y, count);
        hbuf *bg = ha_buf(&A, ctx, count), *bl = ha_buf(&A, ctx, 1);
        oclseg_tensor tx = hb_tensor(bx, n, 1, h, w), ty = hb_tensor(by, n, 1, h, w);
        oclseg_tensor tg = hb_tensor(bg, n, 1, h, w), tl = hb_tensor(bl, 1, 1, 1, 1);
        ck_assert_int_eq(op_soft_dice(ctx, &tx, &ty, &tl, &tg, 0), OCLSEG_OK);
        hb_download(bl, loss, what);
        harness_compare(what, loss, &loss_ref, 1, DICE_LOSS_ATOL, 0.0);
        hb_check(bg, grad_ref, DICE_GRAD_ATOL_REL * maxg, DICE_GRAD_RTOL, "%s", what);
        /* accumulate: loss 0.25 + dice, gradient prev + dice */
        const float quarter = 0.25f;
        const double acc_loss = loss_ref + 0.25;
        hb_upload(bl, &quarter);
        hb_upload(bg, prev);
        ck_assert_int_eq(op_soft_dice(ctx, &tx, &ty, &tl, &tg, 1), OCLSEG_OK);
        hb_check(bl, &acc_loss, DICE_LOSS_ATOL, 0.0, "%s", what);
        hb_check(bg, acc_ref, DICE_GRAD_ATOL_REL * maxg, DICE_GRAD_RTOL, "%s", what);
        /* loss only, twice: the same bits */
        ck_assert_int_eq(op_soft_dice(ctx, &tx, &ty, &tl, NULL, 0), OCLSEG_OK);
        hb_download(bl, again, what);
        ck_assert_msg(memcmp(loss, again, sizeof *loss) == 0, "%s: two runs differ", what);
    }
    ha_free(&A);
}

START_TEST(dice_forward_backward) {
    int n, c, h, w;
    float *x, *y;
    harness_arena A = {0};
    shape_inputs(&A, 11, &n, &c, &h, &w, &x, &y);
    /* image 1: empty target (D = 1 / (sum p + 1)) */
    for (size_t i = 0; i < (size_t)h * w; i++) y[(size_t)h * w + i] = 0.0f;
    check_dice("dice", x, y, n, h, w);
    check_dice("dice (5 images of 1x3)", x, y, 5, 1, 3);
    check_dice("dice (1 image of 67)", x, y, 1, 1, 67);
    ha_free(&A);
}
END_TEST

static double dice_fd_loss(void *user) {
    const fd_state *f = user;
    return ref_dice_loss_d(f->x, f->y, f->n, f->per);
}

/* The reference gradient against central differences of the reference loss in double
 * (step 1e-5 on logits up to 8: truncation ~1e-11, rounding ~1e-11). */
START_TEST(dice_reference_gradient_vs_finite_differences) {
    enum { N = 2, PER = 11, COUNT = N * PER };
    harness_arena A = {0};
    float *x = ha_floats(&A, COUNT), *y = ha_floats(&A, COUNT);
    double *g = ha_doubles(&A, COUNT);
    make_inputs(x, y, COUNT, 12);
    ref_dice_grad(x, y, N, PER, g);
    fd_state f = {ha_widen(&A, x, COUNT), y, N, PER};
    const harness_fd_arg args[] = {{"dx", (double *)f.x, g, COUNT}};
    harness_check_fd("dice reference", dice_fd_loss, &f, args, 1, 1e-5, 1e-9, 0.0);
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_loss");
    TCase *tc = tcase_create("loss");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, NULL, harness_release_scratch);
    tcase_add_test(tc, bce_forward_backward);
    tcase_add_test(tc, bce_reference_gradient_vs_finite_differences);
    tcase_add_test(tc, bce_extreme_logits);
    tcase_add_test(tc, bce_loss_in_ring_buffer);
    tcase_add_test(tc, seg_counts_vs_host);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, dice_forward_backward);
    tcase_add_test(tc, dice_reference_gradient_vs_finite_differences);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
