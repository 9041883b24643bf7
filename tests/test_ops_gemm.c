/* Tests the GEMM helpers: sum_slices (fixed-order sum of a batch of matrices, also under
 * Oclgrind) and gemm_batched / gemm_batched_sum against a double reference at arena-like offsets.
 * Tolerance: sums of at most K = 37 products of values in [-1, 1) plus a 5-term batch sum;
 * atol 1e-5 is ~100 float32 roundings of the largest partial sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "oclseg/env.h"
#include "ops/gemm.h"

START_TEST(sum_slices_fixed_order) {
    const size_t slice = harness_small() ? 13 : 1001;
    const int count = 5;
    harness_arena A = {0};
    const float *src = ha_uniform(&A, slice * count, -1, 1, 1);
    const float *dst0 = ha_uniform(&A, slice, -1, 1, 2);
    double *ref = ha_doubles(&A, slice);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            for (size_t i = 0; i < slice; i++) {
                ref[i] = accumulate ? dst0[i] : 0.0;
                for (int s = 0; s < count; s++) ref[i] += src[s * slice + i];
            }
            hbuf *bs = ha_buf_from(&A, ctx, src, slice * count);
            hbuf *bd = ha_buf_from(&A, ctx, dst0, slice);
            ck_assert_int_eq(gemm_sum_slices(ctx, bs->buf, bs->lead, slice, count, bd->buf,
                                             bd->lead, accumulate), OCLSEG_OK);
            hb_check(bd, ref, 1e-6, 1e-6, "sum_slices");
        }
    }
    ha_free(&A);
}
END_TEST

/* C = sum_i A_i * B_i^T with A_i (m x k), B_i (n x k), and the per-image products C_i, through
 * both ways gemm_batched issues them: one CLBlastSgemmStridedBatched (CLBlast's direct path,
 * what these small shapes take) and, with the direct-path threshold forced to 1, the offset
 * arrays of CLBlastSgemmBatched (what shapes on CLBlast's indirect path take). */
START_TEST(batched_gemms_match_reference) {
    if (harness_no_gemm()) return;
    const size_t m = 7, n = 64, k = 37;
    const int count = 5;
    const size_t a_stride = m * k + 3, b_stride = n * k + 5; /* gaps between the matrices */
    harness_arena A = {0};
    const float *a = ha_uniform(&A, a_stride * count, -1, 1, 3);
    const float *b = ha_uniform(&A, b_stride * count, -1, 1, 4);
    double *ref = ha_doubles(&A, m * n * count), *sum = ha_doubles(&A, m * n);
    for (int s = 0; s < count; s++)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double acc = 0;
                for (size_t q = 0; q < k; q++)
                    acc += (double)a[s * a_stride + i * k + q] * b[s * b_stride + j * k + q];
                ref[s * m * n + i * n + j] = acc;
                sum[i * n + j] += acc;
            }
    for (int run = 0; run < 2 * harness_device_count(); run++) {
        oclseg_ctx *ctx = harness_ctx(run / 2);
        ctx->gemm_backend = OCLSEG_GEMM_CLBLAST; /* on CPU devices the own kernels are the default */
        const long saved = ctx->gemm_min_indirect;
        if (run % 2) ctx->gemm_min_indirect = 1; /* every shape "indirect": the offset arrays */
        const long calls = ctx->enqueued.clblast_calls;
        const long blocking = ctx->enqueued.clblast_blocking;
        hbuf *ba = ha_buf_from(&A, ctx, a, a_stride * count);
        hbuf *bb = ha_buf_from(&A, ctx, b, b_stride * count);
        hbuf *bc = ha_buf(&A, ctx, m * n * count), *bs = ha_buf(&A, ctx, m * n);
        const gemm_dims dims = {0, 1, m, n, k};
        const gemm_operand oa = gemm_mat(ba->buf, ba->lead, k, a_stride);
        const gemm_operand ob = gemm_mat(bb->buf, bb->lead, k, b_stride);
        ck_assert_int_eq(gemm_batched(ctx, dims, oa, ob, 0.0f,
                                      gemm_mat(bc->buf, bc->lead, n, m * n), count), OCLSEG_OK);
        hb_check(bc, ref, 1e-5, 1e-5, "gemm_batched");
        ck_assert_int_eq(gemm_batched_sum(ctx, dims, oa, ob, bs->buf, bs->lead, count), OCLSEG_OK);
        hb_check(bs, sum, 1e-5, 1e-5, "gemm_batched_sum");
        /* one strided call each (none waits for the queue), or one offset-array call each */
        ck_assert_int_eq(ctx->enqueued.clblast_calls - calls, 2);
        ck_assert_int_eq(ctx->enqueued.clblast_blocking - blocking, (run % 2) ? 2 : 0);
        ctx->gemm_min_indirect = saved;
        ctx->gemm_backend = OCLSEG_GEMM_AUTO;
    }
    ha_free(&A);
}
END_TEST

/* One case of the own kernels: C_z = op(A_z) * op(B_z) + beta C_z for z < count (sum = 1: C =
 * the sum over z, through gemm_batched_sum), with leading dimensions 2 wider than the matrices
 * and gaps between them. */
typedef struct own_case {
    int trans_a, trans_b;
    size_t m, n, k;
    int count;
    float beta;
    int sum;
} own_case;

static void run_own_case(oclseg_ctx *ctx, const own_case *t, double tol) {
    const size_t a_rows = t->trans_a ? t->k : t->m, a_cols = t->trans_a ? t->m : t->k;
    const size_t b_rows = t->trans_b ? t->n : t->k, b_cols = t->trans_b ? t->k : t->n;
    const size_t lda = a_cols + 2, ldb = b_cols + 2, ldc = t->sum ? t->n : t->n + 2; /* sum: C dense */
    const size_t a_stride = a_rows * lda + 3, b_stride = b_rows * ldb + 5;
    const size_t c_stride = t->m * ldc + 1, c_mats = t->sum ? 1 : (size_t)t->count;
    const size_t na = a_stride * t->count, nb = b_stride * t->count, nc = c_stride * c_mats;
    harness_arena A = {0};
    const float *a = ha_uniform(&A, na, -1, 1, 11), *b = ha_uniform(&A, nb, -1, 1, 12);
    float *c0 = ha_uniform(&A, nc, -1, 1, 13);
    double *ref = ha_widen(&A, c0, nc); /* the gaps must stay as they were */
    for (size_t z = 0; z < c_mats; z++)
        for (size_t i = 0; i < t->m; i++)
            for (size_t j = 0; j < t->n; j++) {
                double acc = 0;
                for (size_t s = t->sum ? 0 : z; s < (t->sum ? (size_t)t->count : z + 1); s++)
                    for (size_t q = 0; q < t->k; q++) {
                        const float av = t->trans_a ? a[s * a_stride + q * lda + i]
                                                    : a[s * a_stride + i * lda + q];
                        const float bv = t->trans_b ? b[s * b_stride + j * ldb + q]
                                                    : b[s * b_stride + q * ldb + j];
                        acc += (double)av * bv;
                    }
                const size_t at = z * c_stride + i * ldc + j;
                ref[at] = acc + (t->sum ? 0.0 : t->beta * (double)c0[at]);
            }
    hbuf *ba = ha_buf_from(&A, ctx, a, na), *bb = ha_buf_from(&A, ctx, b, nb);
    hbuf *bc = ha_buf_from(&A, ctx, c0, nc);
    const gemm_dims d = {t->trans_a, t->trans_b, t->m, t->n, t->k};
    const gemm_operand oa = gemm_mat(ba->buf, ba->lead, lda, a_stride);
    const gemm_operand ob = gemm_mat(bb->buf, bb->lead, ldb, b_stride);
    if (t->sum) {
        /* C's gaps hold NaN when it is overwritten (beta 0 must not read it) */
        for (size_t i = 0; i < t->m; i++)
            for (size_t j = 0; j < t->n; j++) c0[i * ldc + j] = NAN;
        hb_upload(bc, c0);
        ck_assert_int_eq(gemm_batched_sum(ctx, d, oa, ob, bc->buf, bc->lead, t->count), OCLSEG_OK);
    } else if (t->count == 1) {
        ck_assert_int_eq(gemm_single(ctx, d, oa, ob, t->beta, gemm_mat(bc->buf, bc->lead, ldc, 0)),
                         OCLSEG_OK);
    } else {
        ck_assert_int_eq(gemm_batched(ctx, d, oa, ob, t->beta,
                                      gemm_mat(bc->buf, bc->lead, ldc, c_stride), t->count),
                         OCLSEG_OK);
    }
    hb_check(bc, ref, tol, tol, "own gemm %s%s m%zu n%zu k%zu x%d beta %g%s",
             t->trans_a ? "T" : "N", t->trans_b ? "T" : "N", t->m, t->n, t->k, t->count,
             t->beta, t->sum ? " sum" : "");
    ha_free(&A);
}

/* cl/gemm.cl gemm_nn / gemm_nt on every device (also under Oclgrind, which checks their bounds):
 * tiles cut by every edge (m not a multiple of 8 or 4, n below, at and between the tile widths
 * 4, 8, 16, 32 of gemm_nn, k below and above gemm_nt's 16 lanes), batches, beta 0 with NaN in
 * C and beta 1, the batch sum. Tolerance as above: at most 48 products of values in [-1, 1). */
START_TEST(own_kernels_match_reference) {
    static const own_case cases[] = {
        {0, 0, 7, 37, 5, 3, 0.0f, 0},  {0, 0, 9, 70, 13, 2, 1.0f, 0}, {0, 0, 17, 16, 1, 1, 0.0f, 0},
        {0, 0, 3, 3, 4, 2, 0.0f, 0},   {0, 0, 8, 9, 3, 1, 1.0f, 0},   {0, 0, 1, 33, 6, 2, 0.0f, 0},
        {1, 0, 13, 33, 7, 3, 0.0f, 0}, {1, 0, 5, 16, 40, 2, 1.0f, 0}, {1, 0, 20, 24, 9, 1, 0.0f, 0},
        {0, 1, 7, 27, 37, 3, 0.0f, 0}, {0, 1, 5, 13, 16, 1, 1.0f, 0}, {0, 1, 9, 6, 21, 4, 0.0f, 1},
        {0, 1, 1, 1, 3, 2, 0.0f, 1},   {0, 1, 12, 8, 48, 1, 0.0f, 1},
        /* more tiles than rusticl's 32-item work-group limit (the group must shrink to it) */
        {0, 0, 260, 1100, 2, 1, 0.0f, 0}, {0, 1, 200, 200, 3, 1, 0.0f, 0},
        {0, 1, 24, 144, 64, 2, 0.0f, 1},  {0, 1, 24, 144, 36, 4, 0.0f, 1},
        /* A * B^T through gemm_transpose's 16-square tiles: full ones and ones cut both ways */
        {0, 1, 7, 53, 45, 1, 1.0f, 0},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    size_t transpose_bytes = 0; /* B^T of the transposed A * B^T path, in the shared scratch */
    for (size_t i = 0; i < n_cases; i++)
        if (cases[i].trans_b && cases[i].k < 1024 && cases[i].count == 1 &&
            cases[i].k * cases[i].n * sizeof(float) > transpose_bytes)
            transpose_bytes = cases[i].k * cases[i].n * sizeof(float);
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        ctx->gemm_backend = OCLSEG_GEMM_OWN;
        const long calls = ctx->enqueued.clblast_calls;
        /* the scratch at its final size and all NaN before the cases: a read of a part no
         * kernel wrote gives NaN, and Oclgrind tracks it afresh (harness_grow_nan; when it grew
         * between cases, Oclgrind reported gemm_nn's reads of the second transpose) */
        harness_grow_nan(ctx, &ctx->scratch, &ctx->scratch_bytes, transpose_bytes);
        for (size_t i = 0; i < n_cases; i++) run_own_case(ctx, &cases[i], 1e-5);
        ck_assert_int_eq(ctx->enqueued.clblast_calls - calls, 0); /* none went to CLBlast */
        ctx->gemm_backend = OCLSEG_GEMM_AUTO;
    }
}
END_TEST

/* Whether the device leaves a work-item's loops early: Mesa's llvmpipe (rusticl) ends every loop
 * of a work-item once 65535 iterations in all have run (tools/repro/llvmpipe_loop_limit.c). One
 * work-item sums 70000 ones. */
static int device_truncates_loops(oclseg_ctx *ctx) {
    static const char *source =
        "__kernel void sum_ones(__global const float *ones, const uint n, __global float *out) {\n"
        "    float sum = 0.0f;\n"
        "    for (uint i = 0; i < n; i++) sum += ones[i];\n"
        "    out[0] = sum;\n"
        "}\n";
    const cl_uint n = 70000;
    harness_arena A = {0};
    float *ones = ha_floats(&A, n), sum = 0.0f;
    for (cl_uint i = 0; i < n; i++) ones[i] = 1.0f;
    cl_mem ones_buf, sum_buf;
    ck_assert_int_eq(oclseg_buffer_create(ctx, n * sizeof *ones, "ones", &ones_buf), OCLSEG_OK);
    ck_assert_int_eq(oclseg_buffer_create(ctx, sizeof sum, "a sum", &sum_buf), OCLSEG_OK);
    ck_assert_int_eq(oclseg_write(ctx, ones_buf, 0, n * sizeof *ones, ones), OCLSEG_OK);
    cl_int err;
    cl_program prog = clCreateProgramWithSource(ctx->context, 1, &source, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(clBuildProgram(prog, 1, &ctx->info.device, "", NULL, NULL), CL_SUCCESS);
    cl_kernel k = clCreateKernel(prog, "sum_ones", &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(clSetKernelArg(k, 0, sizeof ones_buf, &ones_buf), CL_SUCCESS);
    ck_assert_int_eq(clSetKernelArg(k, 1, sizeof n, &n), CL_SUCCESS);
    ck_assert_int_eq(clSetKernelArg(k, 2, sizeof sum_buf, &sum_buf), CL_SUCCESS);
    const size_t one = 1;
    ck_assert_int_eq(clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &one, &one, 0, NULL, NULL),
                     CL_SUCCESS);
    ck_assert_int_eq(oclseg_read(ctx, sum_buf, 0, sizeof sum, &sum), OCLSEG_OK);
    ck_assert_int_eq(clReleaseKernel(k), CL_SUCCESS);
    ck_assert_int_eq(clReleaseProgram(prog), CL_SUCCESS);
    oclseg_buffer_free(ctx, ones_buf);
    oclseg_buffer_free(ctx, sum_buf);
    ha_free(&A);
    return sum != (float)n;
}

/* The shape that found the loop limit (gemm_nn over k 2047, test_ops_conv_transpose on rusticl):
 * right with the own kernels on every device that runs whole loops, and on a device that
 * truncates them the own kernels are not the automatic choice (oclseg_gemm_own_kernels).
 * Tolerance: sums of 2047 products of values in [-1, 1) (|C| up to ~60), whose float32 rounding
 * grows like sqrt(k) eps |C| ~ 3e-5: atol = rtol = 1e-4 (worst measured on PoCL: 2.4e-5, 0.21 of
 * the tolerance). */
START_TEST(own_kernels_long_k_or_not_chosen) {
    const own_case long_k = {0, 0, 37, 64, 2047, 2, 0.0f, 0};
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        const int truncates = device_truncates_loops(ctx);
        /* the runtime's own probe (cl/device_probe.cl) agrees with this independent one, under
         * Oclgrind too (its checks see the probe kernel) */
        ck_assert_int_eq(oclseg_device_runs_long_loops(ctx), !truncates);
        if (harness_small()) continue; /* 2047-step GEMM loops are too slow for Oclgrind */
        if (truncates) {
            printf("%s ends loops after 65535 iterations: own GEMM kernels not chosen\n",
                   harness_device_name(dev));
            ck_assert_int_eq(ctx->gemm_backend, OCLSEG_GEMM_AUTO);
            if (oclseg_env_get()->gemm_backend == OCLSEG_GEMM_AUTO)
                ck_assert_int_eq(oclseg_gemm_own_kernels(ctx), 0);
            if (oclseg_env_get()->row_kernels == OCLSEG_ROWS_AUTO)
                ck_assert_int_eq(oclseg_use_row_kernels(ctx), 0);
            continue;
        }
        ctx->gemm_backend = OCLSEG_GEMM_OWN;
        run_own_case(ctx, &long_k, 1e-4);
        ctx->gemm_backend = OCLSEG_GEMM_AUTO;
    }
}
END_TEST

/* The transposed A * B^T path when B lives in the shared scratch (conv2d's columns): B^T goes
 * to the context's separate packing buffer. B goes into the scratch at float 7, NaN around it,
 * in one write of the whole scratch (Oclgrind mis-tracks host writes at an offset:
 * tools/repro/oclgrind_stale_shadow.c), and the packing buffer starts all NaN (harness_grow_nan). */
START_TEST(own_packing_beside_scratch_operand) {
    const size_t m = 9, n = 20, k = 37, b_at = 7;
    harness_arena A = {0};
    const float *a = ha_uniform(&A, m * k, -1, 1, 21), *b = ha_uniform(&A, n * k, -1, 1, 22);
    float *packed = ha_floats(&A, n * k);
    double *ref = ha_doubles(&A, m * n);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t q = 0; q < k; q++) acc += (double)a[i * k + q] * b[j * k + q];
            ref[i * n + j] = acc;
        }
    for (int dev = 0; dev < harness_device_count(); dev++) {
        oclseg_ctx *ctx = harness_ctx(dev);
        ctx->gemm_backend = OCLSEG_GEMM_OWN;
        cl_mem scratch;
        ck_assert_int_eq(oclseg_scratch(ctx, (b_at + n * k) * sizeof(float), &scratch), OCLSEG_OK);
        const size_t scratch_floats = ctx->scratch_bytes / sizeof(float);
        float *whole = ha_floats(&A, scratch_floats);
        for (size_t i = 0; i < scratch_floats; i++) whole[i] = NAN;
        memcpy(whole + b_at, b, n * k * sizeof(float));
        ck_assert_int_eq(oclseg_write(ctx, scratch, 0, scratch_floats * sizeof(float), whole),
                         OCLSEG_OK);
        harness_grow_nan(ctx, &ctx->gemm_pack, &ctx->gemm_pack_bytes, n * k * sizeof(float));
        hbuf *ba = ha_buf_from(&A, ctx, a, m * k), *bc = ha_buf(&A, ctx, m * n);
        const gemm_dims d = {0, 1, m, n, k};
        ck_assert_int_eq(gemm_single(ctx, d, gemm_mat(ba->buf, ba->lead, k, 0),
                                     gemm_mat(scratch, b_at, k, 0), 0.0f,
                                     gemm_mat(bc->buf, bc->lead, n, 0)), OCLSEG_OK);
        /* B^T went to the packing buffer */
        ck_assert_int_eq(oclseg_read(ctx, ctx->gemm_pack, 0, n * k * sizeof *packed, packed),
                         OCLSEG_OK);
        for (size_t q = 0; q < k; q++)
            for (size_t j = 0; j < n; j++) ck_assert(packed[q * n + j] == b[j * k + q]);
        hb_check(bc, ref, 1e-5, 1e-5, "own gemm, B in the scratch");
        ctx->gemm_backend = OCLSEG_GEMM_AUTO;
    }
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sum_slices_fixed_order);
    tcase_add_test(tc, batched_gemms_match_reference);
    tcase_add_test(tc, own_kernels_match_reference);
    tcase_add_test(tc, own_packing_beside_scratch_operand);
    tcase_add_test(tc, own_kernels_long_k_or_not_chosen);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
