/* Tests the GEMM helpers: sum_slices (fixed-order sum of a batch of matrices, also under
 * Oclgrind) and gemm_batched / gemm_batched_sum against a double reference at arena-like offsets.
 * Tolerance: sums of at most K = 37 products of values in [-1, 1) plus a 5-term batch sum;
 * atol 1e-5 is ~100 float32 roundings of the largest partial sum. */
#include <stdlib.h>

#include "harness.h"
#include "ops/gemm.h"

START_TEST(sum_slices_fixed_order) {
    const size_t slice = harness_small() ? 13 : 1001;
    const int count = 5;
    float *src = malloc(slice * count * sizeof *src), *dst0 = malloc(slice * sizeof *dst0);
    float *got = malloc(slice * sizeof *got);
    double *ref = malloc(slice * sizeof *ref);
    harness_fill_uniform(src, slice * count, -1, 1, 1);
    harness_fill_uniform(dst0, slice, -1, 1, 2);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            for (size_t i = 0; i < slice; i++) {
                ref[i] = accumulate ? dst0[i] : 0.0;
                for (int s = 0; s < count; s++) ref[i] += src[s * slice + i];
            }
            hbuf bs = hb_from(ctx, src, slice * count), bd = hb_from(ctx, dst0, slice);
            ck_assert_int_eq(gemm_sum_slices(ctx, bs.buf, bs.lead, slice, count, bd.buf, bd.lead,
                                             accumulate), OCLSEG_OK);
            hb_download(&bd, got, "sum_slices");
            harness_compare("sum_slices", got, ref, slice, 1e-6, 1e-6);
            hb_free(&bs);
            hb_free(&bd);
        }
    }
    free(src);
    free(dst0);
    free(got);
    free(ref);
}
END_TEST

/* C = sum_i A_i * B_i^T with A_i (m x k), B_i (n x k), and the per-image products C_i. */
START_TEST(batched_gemms_match_reference) {
    if (harness_no_gemm()) return;
    const size_t m = 7, n = 64, k = 37;
    const int count = 5;
    const size_t a_stride = m * k + 3, b_stride = n * k + 5; /* gaps between the matrices */
    float *a = malloc(a_stride * count * sizeof *a), *b = malloc(b_stride * count * sizeof *b);
    float *got = malloc(m * n * count * sizeof *got);
    double *ref = calloc(m * n * count, sizeof *ref), *sum = calloc(m * n, sizeof *sum);
    harness_fill_uniform(a, a_stride * count, -1, 1, 3);
    harness_fill_uniform(b, b_stride * count, -1, 1, 4);
    for (int s = 0; s < count; s++)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double acc = 0;
                for (size_t q = 0; q < k; q++)
                    acc += (double)a[s * a_stride + i * k + q] * b[s * b_stride + j * k + q];
                ref[s * m * n + i * n + j] = acc;
                sum[i * n + j] += acc;
            }
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf ba = hb_from(ctx, a, a_stride * count), bb = hb_from(ctx, b, b_stride * count);
        hbuf bc = hb_create(ctx, m * n * count), bs = hb_create(ctx, m * n);
        const gemm_dims dims = {0, 1, m, n, k};
        const gemm_operand oa = gemm_mat(ba.buf, ba.lead, k, a_stride);
        const gemm_operand ob = gemm_mat(bb.buf, bb.lead, k, b_stride);
        ck_assert_int_eq(gemm_batched(ctx, dims, oa, ob, 0.0f, gemm_mat(bc.buf, bc.lead, n, m * n),
                                      count), OCLSEG_OK);
        hb_download(&bc, got, "gemm_batched");
        harness_compare("gemm_batched", got, ref, m * n * count, 1e-5, 1e-5);
        ck_assert_int_eq(gemm_batched_sum(ctx, dims, oa, ob, bs.buf, bs.lead, count), OCLSEG_OK);
        hb_download(&bs, got, "gemm_batched_sum");
        harness_compare("gemm_batched_sum", got, sum, m * n, 1e-5, 1e-5);
        hb_free(&ba);
        hb_free(&bb);
        hb_free(&bc);
        hb_free(&bs);
    }
    free(a);
    free(b);
    free(got);
    free(ref);
    free(sum);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sum_slices_fixed_order);
    tcase_add_test(tc, batched_gemms_match_reference);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
