/* Tests the finiteness check (cl/numerics.cl) against the host: NaN, +Inf, -Inf placed at the
 * first, last and random positions of ranges that are smaller than one work-group, exactly one,
 * and larger than all pass-1 work-groups together (the strided loop), at a non-zero offset;
 * FLT_MAX, -FLT_MAX, denormals and -0 are finite. The result must be exactly +0 (all finite) or
 * NaN (any non-finite), and written to its slot only. Every device runs both pass-1 forms: the
 * work-group tree (GPUs) and one item per chunk with vector lanes (CPU devices), whose chunks
 * end in a partial vector and, for small ranges, leave items with nothing to read. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int host_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Fills x with finite values (including the extreme finite ones) and plants `planted`
 * non-finite values of kind `kind` (0 NaN, 1 +Inf, 2 -Inf, 3 mixed): at 0 and n-1 first, then at
 * pseudo-random places. */
static void make_input(float *x, size_t n, int planted, int kind, uint64_t seed) {
    harness_fill_uniform(x, n, -3.0f, 3.0f, seed);
    const float finite_extremes[] = {FLT_MAX, -FLT_MAX, FLT_MIN / 4.0f, -0.0f, FLT_TRUE_MIN};
    for (size_t i = 0; i < 5 && i < n; i++) x[(i * 7919 + 3) % n] = finite_extremes[i];
    const float bad[] = {NAN, INFINITY, -INFINITY};
    uint64_t s = seed * 2654435761u + 1;
    for (int k = 0; k < planted; k++) {
        size_t at = k == 0 ? n - 1 : k == 1 ? 0 : (size_t)((s = s * 6364136223846793005u + 1) >> 33) % n;
        x[at] = bad[kind < 3 ? kind : k % 3];
    }
}

static void check(size_t n, int planted, int kind, uint64_t seed) {
    harness_arena A = {0};
    float *x = ha_floats(&A, n), *poisoned = ha_floats(&A, 3), *out = ha_floats(&A, 3);
    make_input(x, n, planted, kind, seed);
    const int finite = host_all_finite(x, n);
    ck_assert_int_eq(finite, planted == 0);
    for (int run = 0; run < 2 * harness_device_count(); run++) {
        const int d = run / 2;
        oclseg_ctx *ctx = harness_ctx(d);
        ctx->row_kernels = run % 2 ? OCLSEG_ROWS_ON : OCLSEG_ROWS_OFF;
        const char *form = run % 2 ? "rows" : "work-group tree";
        hbuf *bx = ha_buf_from(&A, ctx, x, n), *bout = ha_buf(&A, ctx, 3);
        hb_download(bout, poisoned, "poison");
        /* result in the middle slot of three: the neighbours must keep their poison */
        ck_assert_int_eq(op_check_finite(ctx, bx->buf, bx->lead, n, bout->buf, bout->lead + 1),
                         OCLSEG_OK);
        hb_download(bout, out, "check_finite result");
        if (finite)
            ck_assert_msg(out[1] == 0.0f && !signbit(out[1]), "%s (%s): n=%zu all finite: got %g",
                          harness_device_name(d), form, n, (double)out[1]);
        else
            ck_assert_msg(isnan(out[1]), "%s (%s): n=%zu, %d non-finite of kind %d: got %g",
                          harness_device_name(d), form, n, planted, kind, (double)out[1]);
        ck_assert_msg(memcmp(&out[0], &poisoned[0], sizeof(float)) == 0 &&
                      memcmp(&out[2], &poisoned[2], sizeof(float)) == 0,
                      "%s (%s): wrote outside its slot", harness_device_name(d), form);
        ctx->row_kernels = OCLSEG_ROWS_AUTO;
    }
    ha_free(&A);
}

START_TEST(detects_nonfinite_values) {
    const size_t sizes_full[] = {1, 5, 63, 64, 65, 1000, 4097, 100003};
    const size_t sizes_small[] = {1, 5, 65, 300};
    const size_t *sizes = harness_small() ? sizes_small : sizes_full;
    const int count = harness_small() ? 4 : 8;
    for (int i = 0; i < count; i++) {
        check(sizes[i], 0, 0, 10 + i); /* all finite */
        for (int kind = 0; kind < 3; kind++)
            check(sizes[i], 1, kind, 20 + i); /* one NaN / +Inf / -Inf, in the last element */
        if (sizes[i] >= 2) check(sizes[i], 2, 1, 30 + i); /* first element too */
        check(sizes[i], 9, 3, 40 + i);                     /* several, mixed */
    }
}
END_TEST

START_TEST(rejects_bad_ranges) {
    oclseg_ctx *ctx = harness_ctx(0);
    harness_arena A = {0};
    hbuf *b = ha_buf(&A, ctx, 4);
    HARNESS_REJECTS(op_check_finite(ctx, b->buf, b->lead, 0, b->buf, 0));
    HARNESS_REJECTS(op_check_finite(ctx, b->buf, (size_t)1 << 31, 4, b->buf, 0));
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_numerics");
    TCase *tc = tcase_create("numerics");
    tcase_add_test(tc, detects_nonfinite_values);
    tcase_add_test(tc, rejects_bad_ranges);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
