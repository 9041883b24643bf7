/* Tests dropout (forward, backward, host mask): Philox known answers, bit-exact agreement of
 * every device with the host mask, the kept fraction against a binomial bound, masks that change
 * with step and seed, p = 0 / p = 1, and argument checks.
 * Tolerance: y = x * scale with scale = 1.0f / (float)(1 - p) is two float roundings away from
 * x / (1 - p) in double, so rtol 3e-7 (~2.5 ulp) against the double reference; against the host
 * float computation x * scale the result must be bit-identical (same single multiplication). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* An odd shape: 945 elements, not a multiple of 4 (a partial Philox group at the end). */
#define N 3
#define C 5
#define H 7
#define W 9
#define COUNT ((size_t)N * C * H * W)

static const double ATOL = 0.0, RTOL = 3e-7;

/* A seed and a step with both 32-bit halves non-zero, so both words of key and counter count. */
static const uint64_t SEED = 0x0123456789abcdefULL;
static const uint64_t STEP = 0x0000000500000007ULL;

/* The scale as src/ops/dropout.c computes it: 1.0f / (float)(1 - p), with 1 - p in double from
 * the shortest decimal that reads back as p (what PyTorch gets from the Python float). */
static float host_scale(float p) {
    char text[32];
    double typed = p;
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)p);
        if ((float)strtod(text, NULL) == p) {
            typed = strtod(text, NULL);
            break;
        }
    }
    return p < 1.0f ? 1.0f / (float)(1.0 - typed) : 0.0f;
}

/* The kept value of torch.nn.functional.dropout(torch.ones(n), p) in PyTorch 1.13 (CPU, float32),
 * as float bits: the scale must be bit-identical to PyTorch's. */
static const struct {
    float p;
    uint32_t scale_bits;
} TORCH_SCALES[] = {{0.1f, 0x3f8e38e4u}, {0.2f, 0x3fa00000u}, {0.3f, 0x3fb6db6eu},
                    {0.5f, 0x40000000u}, {0.9f, 0x41200000u}, {0.123f, 0x3f91f3beu},
                    {0.95f, 0x41a00000u}};

/* Random123's known answer for Philox4x32-10 with counter 0 and key 0. */
static const uint32_t KAT_ZERO[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};

/* The known answer is visible through the mask: with seed 0 and step 0, elements 0..3 use
 * counter (0,0,0,0), so element j is kept at p = u_j and dropped at the next float above u_j. */
START_TEST(philox_known_answer) {
    const float ones[4] = {1, 1, 1, 1};
    harness_arena A = {0};
    float *y = ha_floats(&A, 4);
    for (int j = 0; j < 4; j++) {
        const float u = (float)(KAT_ZERO[j] >> 8) * 0x1.0p-24f;
        const float above = nextafterf(u, 2.0f);
        uint8_t keep[4];
        op_dropout_mask_host(4, u, 0, 0, keep);
        ck_assert_msg(keep[j] == 1, "host mask: element %d dropped at p = u", j);
        op_dropout_mask_host(4, above, 0, 0, keep);
        ck_assert_msg(keep[j] == 0, "host mask: element %d kept at p just above u", j);
        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            hbuf *bx = ha_buf_from(&A, ctx, ones, 4), *by = ha_buf(&A, ctx, 4);
            oclseg_tensor tx = hb_tensor(bx, 1, 1, 1, 4), ty = hb_tensor(by, 1, 1, 1, 4);
            ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, u, 0, 0), OCLSEG_OK);
            hb_download(by, y, "dropout known answer");
            ck_assert_msg(y[j] != 0.0f, "%s: element %d dropped at p = u", harness_device_name(d), j);
            ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, above, 0, 0), OCLSEG_OK);
            hb_download(by, y, "dropout known answer");
            ck_assert_msg(y[j] == 0.0f, "%s: element %d kept at p above u", harness_device_name(d), j);
        }
    }
    ha_free(&A);
}
END_TEST

/* Runs forward (or backward) on every device and checks it against the host mask: bit-exact
 * against x * noise in float, within RTOL of x / (1 - p) in double, and the same bits on every
 * device. Also runs in place (y aliasing x). */
static void check_against_host(int backward, float p) {
    const char *what = backward ? "dropout backward" : "dropout forward";
    harness_arena A = {0};
    const float *x = ha_uniform(&A, COUNT, -4.0f, 4.0f, backward ? 12 : 11);
    float *y = ha_floats(&A, COUNT), *first_device = ha_floats(&A, COUNT);
    float *expect = ha_floats(&A, COUNT);
    double *r = ha_doubles(&A, COUNT);
    uint8_t keep[COUNT];
    op_dropout_mask_host(COUNT, p, SEED, STEP, keep);
    const float scale = host_scale(p);
    for (size_t i = 0; i < COUNT; i++) {
        expect[i] = x[i] * (keep[i] ? scale : 0.0f);
        r[i] = keep[i] ? (double)x[i] / (1.0 - (double)p) : 0.0;
    }
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        int st = backward ? op_dropout_backward(ctx, &tx, &ty, p, SEED, STEP)
                          : op_dropout_forward(ctx, &tx, &ty, p, SEED, STEP);
        ck_assert_int_eq(st, OCLSEG_OK);
        hb_download(by, y, what);
        harness_compare(what, y, r, COUNT, ATOL, RTOL);
        for (size_t i = 0; i < COUNT; i++)
            ck_assert_msg(memcmp(&y[i], &expect[i], sizeof(float)) == 0,
                          "%s on %s (p %g): element %zu = %.9g, host mask gives %.9g", what,
                          harness_device_name(d), (double)p, i, (double)y[i], (double)expect[i]);
        if (d == 0) memcpy(first_device, y, COUNT * sizeof *y);
        else
            ck_assert_msg(memcmp(first_device, y, COUNT * sizeof *y) == 0, "%s: %s differs from %s",
                          what, harness_device_name(d), harness_device_name(0));
        /* in place */
        st = backward ? op_dropout_backward(ctx, &tx, &tx, p, SEED, STEP)
                      : op_dropout_forward(ctx, &tx, &tx, p, SEED, STEP);
        ck_assert_int_eq(st, OCLSEG_OK);
        hb_download(bx, y, what);
        ck_assert_msg(memcmp(y, expect, COUNT * sizeof *y) == 0, "%s in place differs", what);
    }
    ha_free(&A);
}

START_TEST(forward_matches_host_mask) {
    check_against_host(0, 0.3f);
    check_against_host(0, 0.8f);
}
END_TEST

START_TEST(backward_matches_host_mask) { check_against_host(1, 0.3f); }
END_TEST

START_TEST(scale_matches_pytorch) {
    enum { COUNT_ONES = 64 };
    harness_arena A = {0};
    float *ones = ha_floats(&A, COUNT_ONES), *y = ha_floats(&A, COUNT_ONES);
    for (int i = 0; i < COUNT_ONES; i++) ones[i] = 1.0f;
    for (size_t k = 0; k < sizeof TORCH_SCALES / sizeof TORCH_SCALES[0]; k++) {
        float torch_scale;
        memcpy(&torch_scale, &TORCH_SCALES[k].scale_bits, sizeof torch_scale);
        ck_assert_msg(host_scale(TORCH_SCALES[k].p) == torch_scale, "test scale for p %g",
                      (double)TORCH_SCALES[k].p);
        for (int d = 0; d < harness_device_count(); d++) {
            oclseg_ctx *ctx = harness_ctx(d);
            hbuf *bx = ha_buf_from(&A, ctx, ones, COUNT_ONES), *by = ha_buf(&A, ctx, COUNT_ONES);
            oclseg_tensor tx = hb_tensor(bx, 1, 1, 8, 8), ty = hb_tensor(by, 1, 1, 8, 8);
            ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, TORCH_SCALES[k].p, SEED, STEP),
                             OCLSEG_OK);
            hb_download(by, y, "dropout scale");
            int kept = 0;
            for (int i = 0; i < COUNT_ONES; i++) {
                if (y[i] == 0.0f) continue;
                kept++;
                ck_assert_msg(y[i] == torch_scale, "%s: p %g keeps %.9g, PyTorch %.9g",
                              harness_device_name(d), (double)TORCH_SCALES[k].p, (double)y[i],
                              (double)torch_scale);
            }
            ck_assert_int_gt(kept, 0);
        }
    }
    ha_free(&A);
}
END_TEST

/* p == 0 is a plain copy; p == 1 gives zeros (as PyTorch: input * 0). */
START_TEST(p_zero_and_one) {
    harness_arena A = {0};
    const float *x = ha_uniform(&A, COUNT, -4.0f, 4.0f, 13);
    float *y = ha_floats(&A, COUNT);
    const double *zeros = ha_doubles(&A, COUNT);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, 0.0f, SEED, STEP), OCLSEG_OK);
        hb_download(by, y, "dropout p=0");
        ck_assert_msg(memcmp(x, y, COUNT * sizeof *y) == 0, "dropout p=0 is not a copy");
        ck_assert_int_eq(op_dropout_backward(ctx, &tx, &ty, 1.0f, SEED, STEP), OCLSEG_OK);
        hb_check(by, zeros, 0.0, 0.0, "dropout p=1");
    }
    ha_free(&A);
    uint8_t keep[COUNT];
    op_dropout_mask_host(COUNT, 0.0f, SEED, STEP, keep);
    for (size_t i = 0; i < COUNT; i++) ck_assert_int_eq(keep[i], 1);
    op_dropout_mask_host(COUNT, 1.0f, SEED, STEP, keep);
    for (size_t i = 0; i < COUNT; i++) ck_assert_int_eq(keep[i], 0);
}
END_TEST

START_TEST(invalid_arguments) {
    harness_arena A = {0};
    const float *x = ha_uniform(&A, COUNT, -1.0f, 1.0f, 14);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        oclseg_tensor wrong = hb_tensor(by, N, C, W, H);
        HARNESS_REJECTS(op_dropout_forward(ctx, &tx, &wrong, 0.5f, 1, 1));
        HARNESS_REJECTS(op_dropout_forward(ctx, &tx, &ty, 1.5f, 1, 1));
        HARNESS_REJECTS(op_dropout_forward(ctx, &tx, &ty, -0.1f, 1, 1));
        HARNESS_REJECTS(op_dropout_backward(ctx, &tx, &ty, NAN, 1, 1));
    }
    ha_free(&A);
}
END_TEST

/* |kept - n(1-p)| <= 5 standard deviations of Binomial(n, 1-p): a false alarm has probability
 * ~6e-7, while a biased generator (a wrong shift, a wrong comparison) is far outside. */
static void check_binomial(const char *what, size_t kept, size_t n, double p_keep) {
    const double mean = (double)n * p_keep, sd = sqrt((double)n * p_keep * (1.0 - p_keep));
    ck_assert_msg(fabs((double)kept - mean) <= 5.0 * sd,
                  "%s: kept %zu of %zu, expected %.1f +- %.1f (5 sd)", what, kept, n, mean, 5 * sd);
}

START_TEST(kept_fraction_is_binomial) {
    const float ps[3] = {0.1f, 0.5f, 0.9f};
    harness_arena A = {0};
    /* host: many elements */
    const size_t host_n = 200003;
    uint8_t *keep = ha_bytes(&A, host_n);
    for (int k = 0; k < 3; k++) {
        op_dropout_mask_host(host_n, ps[k], SEED, STEP + (uint64_t)k, keep);
        size_t kept = 0;
        for (size_t i = 0; i < host_n; i++) kept += keep[i];
        check_binomial("host mask", kept, host_n, 1.0 - ps[k]);
        /* each of the 4 words of a Philox call: positions i % 4 == j separately */
        for (size_t j = 0; j < 4; j++) {
            size_t kept_j = 0, n_j = 0;
            for (size_t i = j; i < host_n; i += 4, n_j++) kept_j += keep[i];
            check_binomial("host mask, one word of 4", kept_j, n_j, 1.0 - ps[k]);
        }
    }
    /* devices: fewer elements (Oclgrind: fewer still) */
    const size_t n = harness_small() ? 1001 : 20001;
    float *x = ha_floats(&A, n), *y = ha_floats(&A, n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, n), *by = ha_buf(&A, ctx, n);
        oclseg_tensor tx = hb_tensor(bx, 1, 1, 1, (int)n), ty = hb_tensor(by, 1, 1, 1, (int)n);
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, ps[k], SEED, (uint64_t)k), OCLSEG_OK);
            hb_download(by, y, "dropout fraction");
            size_t kept = 0;
            for (size_t i = 0; i < n; i++) kept += y[i] != 0.0f;
            check_binomial(harness_device_name(d), kept, n, 1.0 - ps[k]);
        }
    }
    ha_free(&A);
}
END_TEST

/* Masks for different steps (and seeds) are independent: they disagree on a fraction 2p(1-p)
 * of elements (binomial bound as above); a counter or key that ignores step/seed (or one of
 * their 32-bit halves) makes them identical. */
START_TEST(masks_change_with_step_and_seed) {
    const size_t n = 40001;
    const float p = 0.5f;
    harness_arena A = {0};
    uint8_t *a = ha_bytes(&A, n);
    uint8_t *b = ha_bytes(&A, n);
    const uint64_t variants[4][2] = {
        {SEED, STEP + 1}, {SEED, STEP + (1ULL << 32)}, {SEED + 1, STEP}, {SEED + (1ULL << 32), STEP}};
    op_dropout_mask_host(n, p, SEED, STEP, a);
    for (int v = 0; v < 4; v++) {
        op_dropout_mask_host(n, p, variants[v][0], variants[v][1], b);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += a[i] != b[i];
        check_binomial("masks differing between steps/seeds", differ, n, 2.0 * p * (1.0 - p));
    }
    /* the device follows the step: step 0 and step 1 differ */
    float *x = ha_floats(&A, COUNT), *y0 = ha_floats(&A, COUNT), *y1 = ha_floats(&A, COUNT);
    for (size_t i = 0; i < COUNT; i++) x[i] = 1.0f;
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bx = ha_buf_from(&A, ctx, x, COUNT), *by = ha_buf(&A, ctx, COUNT);
        oclseg_tensor tx = hb_tensor(bx, N, C, H, W), ty = hb_tensor(by, N, C, H, W);
        ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, p, SEED, 0), OCLSEG_OK);
        hb_download(by, y0, "dropout step 0");
        ck_assert_int_eq(op_dropout_forward(ctx, &tx, &ty, p, SEED, 1), OCLSEG_OK);
        hb_download(by, y1, "dropout step 1");
        size_t differ = 0;
        for (size_t i = 0; i < COUNT; i++) differ += (y0[i] != 0.0f) != (y1[i] != 0.0f);
        check_binomial(harness_device_name(d), differ, COUNT, 2.0 * p * (1.0 - p));
    }
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_dropout");
    TCase *tc = tcase_create("dropout");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, philox_known_answer);
    tcase_add_test(tc, forward_matches_host_mask);
    tcase_add_test(tc, backward_matches_host_mask);
    tcase_add_test(tc, scale_matches_pytorch);
    tcase_add_test(tc, p_zero_and_one);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, kept_fraction_is_binomial);
    tcase_add_test(tc, masks_change_with_step_and_seed);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
