/* Batched GEMM over arena views (CLBlastSgemmBatched with explicit offsets), and batched GEMMs
 * summed in a fixed order (host side of cl/gemm.cl); every CLBlast GEMM of oclseg goes through
 * here, so the tune command can record their shapes. */
#include "ops/gemm.h"

#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "oclseg/tuning.h"
#include "oclseg/util.h"
#include "runtime/kargs.h"
#include "runtime/tune_clblast.h"

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

/* Counts a CLBlast call that began at t0 in the context's enqueue statistics. */
static void count_call(oclseg_ctx *ctx, double t0) {
    const double took = oclseg_now_s() - t0;
    ctx->enqueued.clblast_calls++;
    ctx->enqueued.enqueue_s += took;
    ctx->enqueued.clblast_s += took;
}

static CLBlastTranspose transpose(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

int gemm_single(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                gemm_operand c) {
    record(d.trans_a, d.trans_b, 0, d.m, d.n, d.k, 1, beta);
    const double t0 = oclseg_now_s();
    CLBLAST_CHECK(CLBlastSgemm(CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b),
                               d.m, d.n, d.k, 1.0f, a.buf, a.off, a.ld, b.buf, b.off, b.ld, beta,
                               c.buf, c.off, c.ld, &ctx->queue,
                               oclseg_prof_slot(ctx, "CLBlast sgemm")));
    count_call(ctx, t0);
    return OCLSEG_OK;
}

#define GEMM_BATCH_MAX 64 /* matrices per CLBlastSgemmBatched call (offset arrays on the stack) */

/* Whether CLBlast runs this shape with its direct kernel: as its Xgemm::UseDirectKernel,
 * m * n * k < XGEMM_MIN_INDIRECT_SIZE^3 with the device's current parameter (read once). */
static int clblast_uses_direct(oclseg_ctx *ctx, gemm_dims d) {
    if (ctx->gemm_min_indirect == 0) {
        oclseg_clblast_params p;
        ctx->gemm_min_indirect = -1;
        if (oclseg_clblast_retrieve(ctx->info.device, "GemmRoutine", &p) == 0)
            for (int i = 0; i < p.count; i++)
                if (strcmp(p.names[i], "XGEMM_MIN_INDIRECT_SIZE") == 0)
                    ctx->gemm_min_indirect = (long)p.values[i];
    }
    if (ctx->gemm_min_indirect < 0) return 0;
    const unsigned long long t = (unsigned long long)ctx->gemm_min_indirect;
    return (unsigned long long)d.m * d.n * d.k < t * t * t;
}

/* One CLBlastSgemmStridedBatched: on CLBlast's direct path a single kernel that takes the offsets
 * and strides as arguments. Only used there (see gemm_batched). */
static int strided_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b,
                           float beta, gemm_operand c, int count) {
    record(d.trans_a, d.trans_b, 1, d.m, d.n, d.k, count, beta);
    const double t0 = oclseg_now_s();
    CLBLAST_CHECK(CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b), d.m, d.n, d.k, 1.0f,
        a.buf, a.off, a.ld, a.stride, b.buf, b.off, b.ld, b.stride, beta, c.buf, c.off, c.ld,
        c.stride, (size_t)count, &ctx->queue, oclseg_prof_slot(ctx, "CLBlast sgemm (batched)")));
    count_call(ctx, t0);
    return OCLSEG_OK;
}

int gemm_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                 gemm_operand c, int count) {
    /* CLBlastSgemmBatched uploads its offset and scalar arrays with blocking writes (a
     * clFinish on our queue per call: the host waits for the device at every batched GEMM, and
     * the device idles while the host enqueues what follows). CLBlastSgemmStridedBatched does
     * not, but its indirect path in CLBlast 1.5.3 skips its padding copy when a matrix already
     * has the kernel's tile sizes and then addresses matrix i at i * rows * cols from the buffer
     * start, ignoring the offset and stride (xgemmstridedbatched.cpp: a_no_temp). So: strided
     * on the direct path (one kernel, offsets and strides honoured, the same XgemmDirect code as
     * the batched variant), the offset arrays otherwise. Each C_i is computed independently
     * either way, so the result equals `count` separate GEMMs. */
    if (c.stride != 0 && clblast_uses_direct(ctx, d))
        return strided_batched(ctx, d, a, b, beta, c, count);
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
        const double t0 = oclseg_now_s();
        CLBLAST_CHECK(CLBlastSgemmBatched(
            CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b), d.m, d.n, d.k,
            alphas, a.buf, a_offs, a.ld, b.buf, b_offs, b.ld, betas, c.buf, c_offs, c.ld,
            (size_t)batch, &ctx->queue, oclseg_prof_slot(ctx, "CLBlast sgemm (batched)")));
        count_call(ctx, t0);
        ctx->enqueued.clblast_blocking++;
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
