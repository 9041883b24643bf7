/* Batched GEMM over arena views (CLBlastSgemmBatched with explicit offsets), and batched GEMMs
 * summed in a fixed order (host side of cl/gemm.cl); every CLBlast GEMM of oclseg goes through
 * here, so the tune command can record their shapes. */
#include "ops/gemm.h"

#include <stdlib.h>

#include <clblast_c.h>

#include "oclseg/tuning.h"
#include "runtime/kargs.h"

/* Shape recording for `oclseg tune` (process-wide, off unless oclseg_gemm_record_begin ran). */
static int rec_on;
static oclseg_gemm_shape *rec;
static int rec_count, rec_cap;

static void record(int trans_a, int trans_b, int batched, size_t m, size_t n, size_t k, int batch,
                   float beta) {
    if (!rec_on) return;
    for (int i = 0; i < rec_count; i++) {
        oclseg_gemm_shape *s = &rec[i];
        if (s->trans_a == trans_a && s->trans_b == trans_b && s->batched == batched &&
            s->m == m && s->n == n && s->k == k && s->batch == batch && s->beta == beta) {
            s->calls++;
            return;
        }
    }
    if (rec_count == rec_cap) {
        int cap = rec_cap ? 2 * rec_cap : 64;
        oclseg_gemm_shape *p = realloc(rec, (size_t)cap * sizeof *p);
        if (!p) return; /* recording is best effort */
        rec = p;
        rec_cap = cap;
    }
    rec[rec_count++] = (oclseg_gemm_shape){trans_a, trans_b, batched, batch, m, n, k, beta, 1};
}

void oclseg_gemm_record_begin(void) {
    rec_count = 0;
    rec_on = 1;
}

int oclseg_gemm_record_end(oclseg_gemm_shape **shapes, int *count) {
    rec_on = 0;
    *shapes = NULL;
    *count = 0;
    if (rec_count == 0) return OCLSEG_OK;
    *shapes = malloc((size_t)rec_count * sizeof **shapes);
    if (!*shapes) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < rec_count; i++) (*shapes)[i] = rec[i];
    *count = rec_count;
    free(rec);
    rec = NULL;
    rec_count = rec_cap = 0;
    return OCLSEG_OK;
}

static CLBlastTranspose transpose(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

int gemm_single(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                gemm_operand c) {
    record(d.trans_a, d.trans_b, 0, d.m, d.n, d.k, 1, beta);
    CLBLAST_CHECK(CLBlastSgemm(CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b),
                               d.m, d.n, d.k, 1.0f, a.buf, a.off, a.ld, b.buf, b.off, b.ld, beta,
                               c.buf, c.off, c.ld, &ctx->queue,
                               oclseg_prof_slot(ctx, "CLBlast sgemm")));
    return OCLSEG_OK;
}

#define GEMM_BATCH_MAX 64 /* matrices per CLBlast call (offset arrays live on the stack) */

int gemm_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                 gemm_operand c, int count) {
    size_t a_offs[GEMM_BATCH_MAX], b_offs[GEMM_BATCH_MAX], c_offs[GEMM_BATCH_MAX];
    float alphas[GEMM_BATCH_MAX], betas[GEMM_BATCH_MAX];
    for (int first = 0; first < count; first += GEMM_BATCH_MAX) {
        const int batch = count - first < GEMM_BATCH_MAX ? count - first : GEMM_BATCH_MAX;
        for (int i = 0; i < batch; i++) {
            const size_t at = (size_t)(first + i);
            a_offs[i] = a.off + at * a.stride;
            b_offs[i] = b.off + at * b.stride;
            c_offs[i] = c.off + at * c.stride;
            alphas[i] = 1.0f;
            betas[i] = beta;
        }
        record(d.trans_a, d.trans_b, 1, d.m, d.n, d.k, batch, beta);
        CLBLAST_CHECK(CLBlastSgemmBatched(
            CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b), d.m, d.n, d.k,
            alphas, a.buf, a_offs, a.ld, b.buf, b_offs, b.ld, betas, c.buf, c_offs, c.ld,
            (size_t)batch, &ctx->queue, oclseg_prof_slot(ctx, "CLBlast sgemm (batched)")));
    }
    return OCLSEG_OK;
}

int gemm_sum_slices(oclseg_ctx *ctx, cl_mem src, size_t src_off, size_t slice, int count,
                    cl_mem dst, size_t dst_off, int accumulate) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "gemm", NULL, "sum_slices", &k));
    kargs a = karg_begin(k);
    karg_mem(&a, src);
    karg_u32(&a, src_off);
    karg_u32(&a, slice);
    karg_u32(&a, (size_t)count);
    karg_mem(&a, dst);
    karg_u32(&a, dst_off);
    karg_u32(&a, accumulate ? 1 : 0);
    TRY(karg_end(&a));
    size_t global = slice;
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

int gemm_batched_sum(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, cl_mem c,
                     size_t c_off, int count) {
    const size_t slice = d.m * d.n, budget = (size_t)64 << 20;
    int chunk = (int)(budget / (slice * sizeof(float)));
    if (chunk < 1) chunk = 1;
    if (chunk > count) chunk = count;
    cl_mem parts; // (chunk, m, n)
    TRY(oclseg_scratch(ctx, (size_t)chunk * slice * sizeof(float), &parts));
    for (int first = 0; first < count; first += chunk) {
        const int nb = count - first < chunk ? count - first : chunk;
        gemm_operand a_chunk = a, b_chunk = b;
        a_chunk.off += (size_t)first * a.stride;
        b_chunk.off += (size_t)first * b.stride;
        TRY(gemm_batched(ctx, d, a_chunk, b_chunk, 0.0f, gemm_mat(parts, 0, d.n, slice), nb));
        TRY(gemm_sum_slices(ctx, parts, 0, slice, nb, c, c_off, first > 0));
    }
    return OCLSEG_OK;
}
