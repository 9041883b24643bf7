/* The SGEMM ceiling `oclseg bench` compares the training step with (through src/ops/gemm.h). */
#include "oclseg/bench.h"

#include <stdlib.h>

#include "oclseg/util.h"
#include "ops/gemm.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double oclseg_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int oclseg_sgemm_ceiling_gflops(oclseg_ctx *ctx, size_t n, double *gflops) {
    const size_t bytes = n * n * sizeof(float);
    cl_mem a = NULL, b = NULL, c = NULL;
    double samples[5];
    int st;
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark A", &a), st, done);
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark B", &b), st, done);
    TRY_GOTO(oclseg_buffer_create(ctx, bytes, "SGEMM benchmark C", &c), st, done);
    TRY_GOTO(oclseg_fill_f32(ctx, a, 0, n * n, 0.5f), st, done);
    TRY_GOTO(oclseg_fill_f32(ctx, b, 0, n * n, 0.25f), st, done);
    const gemm_dims d = {0, 0, n, n, n};
    for (int i = -1; i < 5; i++) { /* i = -1: the warm-up */
        double t0 = oclseg_now_s();
        TRY_GOTO(gemm_single(ctx, d, gemm_mat(a, 0, n, 0), gemm_mat(b, 0, n, 0), 0.0f,
                             gemm_mat(c, 0, n, 0)), st, done);
        TRY_GOTO(oclseg_finish(ctx), st, done);
        if (i >= 0) samples[i] = oclseg_now_s() - t0;
    }
    *gflops = 2.0 * n * n * n / oclseg_median(samples, 5) / 1e9;
done:
    oclseg_buffer_free(ctx, a);
    oclseg_buffer_free(ctx, b);
    oclseg_buffer_free(ctx, c);
    return st;
}
