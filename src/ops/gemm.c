/* Batched GEMM over arena views (CLBlastSgemmBatched with explicit offsets). */
#include "ops/gemm.h"

#include <clblast_c.h>

#define GEMM_BATCH_MAX 64 /* matrices per CLBlast call (offset arrays live on the stack) */

int gemm_batched(oclseg_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                 cl_mem a, size_t a_off, size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                 size_t ldb, size_t b_stride, float beta, cl_mem c, size_t c_off, size_t ldc,
                 size_t c_stride, int count) {
    size_t a_offs[GEMM_BATCH_MAX], b_offs[GEMM_BATCH_MAX], c_offs[GEMM_BATCH_MAX];
    float alphas[GEMM_BATCH_MAX], betas[GEMM_BATCH_MAX];
    for (int first = 0; first < count; first += GEMM_BATCH_MAX) {
        const int batch = count - first < GEMM_BATCH_MAX ? count - first : GEMM_BATCH_MAX;
        for (int i = 0; i < batch; i++) {
            const size_t at = (size_t)(first + i);
            a_offs[i] = a_off + at * a_stride;
            b_offs[i] = b_off + at * b_stride;
            c_offs[i] = c_off + at * c_stride;
            alphas[i] = 1.0f;
            betas[i] = beta;
        }
        CLBLAST_CHECK(CLBlastSgemmBatched(
            CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
            trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alphas, a, a_offs, lda, b,
            b_offs, ldb, betas, c, c_offs, ldc, (size_t)batch, &ctx->queue,
            oclseg_prof_slot(ctx, "CLBlast sgemm (batched)")));
    }
    return OCLSEG_OK;
}
