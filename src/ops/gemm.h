/* Batched GEMM over arena views for the conv ops (CLBlast underneath). */
#ifndef OCLSEG_OPS_GEMM_H
#define OCLSEG_OPS_GEMM_H

#include "oclseg/runtime.h"

/* C_i (m x n) = op(A_i) (m x k) * op(B_i) (k x n) + beta * C_i for i < count, row-major, matrix i
 * at base + i * stride (a stride of 0 shares the matrix). Issued as CLBlastSgemmBatched calls with
 * explicit per-matrix offsets — not CLBlastSgemmStridedBatched, whose "indirect" path in CLBlast
 * 1.5.3 skips its padding copy when a matrix already has the kernel's tile sizes and then
 * addresses matrix i at i * rows * cols from the buffer start, ignoring the offset and stride it
 * was given (xgemmstridedbatched.cpp: a_no_temp). Each C_i is computed independently, so the
 * result is the same as `count` separate GEMMs. */
int gemm_batched(oclseg_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                 cl_mem a, size_t a_off, size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                 size_t ldb, size_t b_stride, float beta, cl_mem c, size_t c_off, size_t ldc,
                 size_t c_stride, int count);

/* C (m x n) = sum_i op(A_i) * op(B_i) (beta 0: C is overwritten), summed over i in ascending
 * order: the products are computed as batched GEMMs into the shared scratch workspace (chunks of
 * at most 64 MiB), then added by one kernel per chunk. Uses the scratch: callers must not hold
 * data there. */
int gemm_batched_sum(oclseg_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                     cl_mem a, size_t a_off, size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                     size_t ldb, size_t b_stride, cl_mem c, size_t c_off, int count);

/* C (m x n) = op(A) * op(B) + beta * C as one CLBlastSgemm (row-major, element offsets). */
int gemm_single(oclseg_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k, cl_mem a,
                size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c,
                size_t c_off, size_t ldc);

/* dst[i] (+)= sum over s < count of src[src_off + s * slice + i] (cl/gemm.cl sum_slices). */
int gemm_sum_slices(oclseg_ctx *ctx, cl_mem src, size_t src_off, size_t slice, int count,
                    cl_mem dst, size_t dst_off, int accumulate);

#endif
