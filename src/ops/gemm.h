/* Batched GEMM over arena views for the conv ops (own CPU kernels or CLBlast underneath). */
#ifndef OCLSEG_OPS_GEMM_H
#define OCLSEG_OPS_GEMM_H

#include "oclseg/runtime.h"

/* One row-major GEMM operand: matrix 0 at element `off` of `buf`, rows `ld` floats apart; in a
 * batch, matrix i at off + i * stride (stride 0: every i shares the matrix). */
typedef struct gemm_operand {
    cl_mem buf;
    size_t off, ld, stride;
} gemm_operand;

static inline gemm_operand gemm_mat(cl_mem buf, size_t off, size_t ld, size_t stride) {
    gemm_operand o = {buf, off, ld, stride};
    return o;
}

/* op(A) is m x k, op(B) is k x n, C is m x n; op transposes when trans_* is set. */
typedef struct gemm_dims {
    int trans_a, trans_b;
    size_t m, n, k;
} gemm_dims;

/* C_i = op(A_i) * op(B_i) + beta * C_i for i < count. With the own kernels (CPU devices): one
 * gemm_nn / gemm_nt launch. With CLBlast: issued as CLBlastSgemmBatched calls with
 * explicit per-matrix offsets — not CLBlastSgemmStridedBatched, whose "indirect" path in CLBlast
 * 1.5.3 skips its padding copy when a matrix already has the kernel's tile sizes and then
 * addresses matrix i at i * rows * cols from the buffer start, ignoring the offset and stride it
 * was given (xgemmstridedbatched.cpp: a_no_temp). Each C_i is computed independently, so the
 * result is the same as `count` separate GEMMs. */
int gemm_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                 gemm_operand c, int count);

/* C (m x n, contiguous at c_off) = sum_i op(A_i) * op(B_i) (C is overwritten), summed over i in
 * ascending order: the products are computed as batched GEMMs into the shared scratch workspace
 * (chunks of at most 64 MiB), then added by one kernel per chunk. Uses the scratch: callers must
 * not hold data there. */
int gemm_batched_sum(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, cl_mem c,
                     size_t c_off, int count);

/* C = op(A) * op(B) + beta * C as one CLBlastSgemm (strides unused). */
int gemm_single(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                gemm_operand c);


/* dst[i] (+)= sum over s < count of src[src_off + s * slice + i] (cl/gemm.cl sum_slices). */
int gemm_sum_slices(oclseg_ctx *ctx, cl_mem src, size_t src_off, size_t slice, int count,
                    cl_mem dst, size_t dst_off, int accumulate);

#endif
