/* Every GEMM of oclseg (batched over arena views, batch sums in a fixed order): per call oclseg's
 * own register-tiled kernels (cl/gemm.cl) or CLBlast (an explicit choice, else the tuning file's
 * choice for the shape, else the device's default); the shapes are recorded here for the tune
 * command. */
#include "ops/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "oclseg/tuning.h"
#include "oclseg/util.h"
#include "runtime/kargs.h"
#include "runtime/tune_clblast.h"

/* Shape recording for `oclseg tune`: the context's record (off unless
 * oclseg_gemm_record_begin ran on it). */
static void record(oclseg_ctx *ctx, const oclseg_gemm_shape *shape) {
    if (!ctx->gemm_rec_on) return;
    for (int i = 0; i < ctx->gemm_rec_count; i++)
        if (oclseg_gemm_shape_same(&ctx->gemm_rec[i], shape)) {
            ctx->gemm_rec[i].calls++;
            return;
        }
    if (ctx->gemm_rec_count == ctx->gemm_rec_cap) {
        int cap = ctx->gemm_rec_cap ? 2 * ctx->gemm_rec_cap : 64;
        oclseg_gemm_shape *p = realloc(ctx->gemm_rec, (size_t)cap * sizeof *p);
        if (!p) return; /* recording is best effort */
        ctx->gemm_rec = p;
        ctx->gemm_rec_cap = cap;
    }
    ctx->gemm_rec[ctx->gemm_rec_count] = *shape;
    ctx->gemm_rec[ctx->gemm_rec_count++].calls = 1;
}

void oclseg_gemm_record_begin(oclseg_ctx *ctx) {
    ctx->gemm_rec_count = 0;
    ctx->gemm_rec_on = 1;
}

int oclseg_gemm_record_end(oclseg_ctx *ctx, oclseg_gemm_shape **shapes, int *count) {
    ctx->gemm_rec_on = 0;
    *shapes = NULL;
    *count = 0;
    if (ctx->gemm_rec_count == 0) return OCLSEG_OK;
    *shapes = malloc((size_t)ctx->gemm_rec_count * sizeof **shapes);
    if (!*shapes) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < ctx->gemm_rec_count; i++) (*shapes)[i] = ctx->gemm_rec[i];
    *count = ctx->gemm_rec_count;
    free(ctx->gemm_rec);
    ctx->gemm_rec = NULL;
    ctx->gemm_rec_count = ctx->gemm_rec_cap = 0;
    return OCLSEG_OK;
}

/* The call as the tuner records it and as tuning files name it (src/runtime/tuning.c). */
static oclseg_gemm_shape shape_of(gemm_dims d, int batched, int batch, float beta, int sum) {
    return (oclseg_gemm_shape){d.trans_a, d.trans_b, batched, batch, d.m, d.n, d.k, beta, 1, sum};
}

/* Counts a CLBlast call that began at t0 in the context's enqueue statistics. */
static void count_call(oclseg_ctx *ctx, double t0) {
    const double took = oclseg_now_s() - t0;
    ctx->enqueued.clblast_calls++;
    ctx->enqueued.enqueue_s += took;
    ctx->enqueued.clblast_s += took;
}

static CLBlastTranspose transpose(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

/* ---- which backend runs a GEMM -----------------------------------------------------------
 * oclseg's own register-tiled kernels (cl/gemm.cl gemm_nn, gemm_nt) or CLBlast. CLBlast's
 * GPU-shaped kernels reach ~18 GFLOP/s on PoCL against the cores' ~360 GFLOP/s
 * (docs/performance.md), so CPU devices default to the own kernels. */
int oclseg_gemm_device_default_own(oclseg_ctx *ctx) {
    /* Not where a work-item's loops end early: Mesa's llvmpipe (rusticl) ends every loop of a
     * work-item once 65535 iterations in all have run (gallivm's loop limiter;
     * tools/repro/llvmpipe_loop_limit.c), which cuts gemm_nn's k loop short from k 1872 on with
     * the 8 x 32 tile (docs/performance.md); probed, not matched by name. A tuning file may still
     * send single shapes to the own kernels there: oclseg tune writes "own" only for a shape on
     * which they gave the exact result in every run on integer data, which a cut loop cannot (at
     * 128x128, batch 16 it rejected the 4 of 75 shapes with k 2048 or 4096 on rusticl). */
    return (ctx->info.type & CL_DEVICE_TYPE_CPU) != 0 && oclseg_device_runs_long_loops(ctx);
}

/* ctx->gemm_backend, else OCLSEG_GEMM=clblast|own (explicit choices: tests and A/B runs). */
static int forced_backend(const oclseg_ctx *ctx) {
    if (ctx->gemm_backend != OCLSEG_GEMM_AUTO) return ctx->gemm_backend;
    return ctx->env.gemm_backend;
}

int oclseg_gemm_own_kernels(oclseg_ctx *ctx) {
    const int forced = forced_backend(ctx);
    if (forced != OCLSEG_GEMM_AUTO) return forced == OCLSEG_GEMM_OWN;
    return oclseg_gemm_device_default_own(ctx);
}

int oclseg_gemm_own_for(oclseg_ctx *ctx, const oclseg_gemm_shape *shape) {
    int backend = forced_backend(ctx);
    if (backend == OCLSEG_GEMM_AUTO) backend = oclseg_tuning_backend(ctx, shape); /* ~75 entries */
    if (backend != OCLSEG_GEMM_AUTO) return backend == OCLSEG_GEMM_OWN;
    return oclseg_gemm_device_default_own(ctx);
}

/* Records the call for the tuner and says whether the own kernels run it. */
static int dispatch_own(oclseg_ctx *ctx, const oclseg_gemm_shape *shape) {
    record(ctx, shape);
    return oclseg_gemm_own_for(ctx, shape);
}

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* Work-group of tiles for the own kernels on a CPU: PoCL runs a group's items one after another
 * on one thread, so a group should hold enough work to hide the per-group scheduling cost
 * (up to 16 x 16 tiles) while leaving >= 8 groups per core, within the kernel's limit. */
static void tile_group(size_t tiles_x, size_t tiles_y, size_t groups_z, size_t limit,
                       size_t local[3]) {
    local[0] = tiles_x < 16 ? tiles_x : 16;
    local[1] = tiles_y < 16 ? tiles_y : 16;
    local[2] = 1;
    while (local[0] * local[1] > limit) /* CL_KERNEL_WORK_GROUP_SIZE (32 on rusticl) */
        if (local[1] > 1) local[1] = (local[1] + 1) / 2;
        else local[0] = (local[0] + 1) / 2;
    while (local[1] > 1 && div_up(tiles_x, local[0]) * div_up(tiles_y, local[1]) * groups_z < 16)
        local[1] = (local[1] + 1) / 2;
    while (local[0] > 1 && div_up(tiles_x, local[0]) * div_up(tiles_y, local[1]) * groups_z < 16)
        local[0] = (local[0] + 1) / 2;
}

static int launch_tiles(oclseg_ctx *ctx, cl_kernel k, size_t tiles_x, size_t tiles_y, size_t z) {
    size_t local[3], global[3];
    size_t limit = oclseg_kernel_wg_limit(ctx, k);
    if (limit > ctx->info.max_work_group_size) limit = ctx->info.max_work_group_size;
    tile_group(tiles_x, tiles_y, z, limit, local);
    global[0] = div_up(tiles_x, local[0]) * local[0];
    global[1] = div_up(tiles_y, local[1]) * local[1];
    global[2] = z;
    return oclseg_launch(ctx, k, 3, global, local);
}

/* The kernels' (m, n, k) and (buffer, offset, ld, stride) arguments. */
static void karg_dims(kargs *g, gemm_dims d) {
    karg_u32(g, d.m);
    karg_u32(g, d.n);
    karg_u32(g, d.k);
}

static void karg_operand(kargs *g, gemm_operand o) {
    karg_mem(g, o.buf);
    karg_u32(g, o.off);
    karg_u32(g, o.ld);
    karg_u32(g, o.stride);
}

/* C_i = op(A_i) * B_i + beta C_i (B not transposed) with cl/gemm.cl gemm_nn: the vector width
 * and tile width follow n so that a tile fits (32, 16, 8 or 4 columns). */
static int own_nn(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                  gemm_operand c, int count) {
    const int vw = d.n >= 16 ? 16 : d.n >= 8 ? 8 : 4, nv = d.n >= 32 ? 2 : 1;
    const int tm = 8;
    char defines[64];
    snprintf(defines, sizeof defines, "-DGEMM_VW=%d -DGEMM_NV=%d -DGEMM_TM=%d", vw, nv, tm);
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "gemm", defines, "gemm_nn", &k));
    kargs g = karg_begin(k);
    karg_dims(&g, d);
    karg_mem(&g, a.buf);
    karg_u32(&g, a.off);
    karg_u32(&g, d.trans_a ? 1 : a.ld); /* A[i][q]: i * rs + q * cs */
    karg_u32(&g, d.trans_a ? a.ld : 1);
    karg_u32(&g, a.stride);
    karg_operand(&g, b);
    karg_f32(&g, beta);
    karg_operand(&g, c);
    const size_t tiles_per_matrix = div_up(d.n, (size_t)vw * nv);
    karg_u32(&g, (size_t)count);
    karg_u32(&g, tiles_per_matrix);
    TRY(karg_end(&g));
    return launch_tiles(ctx, k, tiles_per_matrix * (size_t)count, div_up(d.m, tm), 1);
}

/* C_z = sum_{s < sum_count} A_{z,s} * B_{z,s}^T + beta C_z for z < count with cl/gemm.cl
 * gemm_nt (A not transposed, B transposed: both contiguous along k). */
static int own_nt(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                  gemm_operand c, int count, int sum_count) {
    const int tm = 4, tn = 4;
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "gemm", "-DGEMM_VW=16", "gemm_nt", &k));
    kargs g = karg_begin(k);
    karg_dims(&g, d);
    karg_operand(&g, a);
    karg_operand(&g, b);
    karg_f32(&g, beta);
    karg_operand(&g, c);
    karg_u32(&g, (size_t)sum_count);
    TRY(karg_end(&g));
    return launch_tiles(ctx, k, div_up(d.n, tn), div_up(d.m, tm), (size_t)count);
}

/* gemm_nt's dot products pay a lane sum per element of C: below this k a single A * B^T goes to
 * gemm_nn instead, with B transposed by gemm_transpose (8-15x faster on the decoder's weight
 * gradients, k = 256; docs/performance.md). Batch sums stay on gemm_nt: packing a batch side by
 * side (one gemm_nn over batch * k) failed the golden test on rusticl, which llvmpipe's loop
 * limit explains (see oclseg_gemm_own_kernels: the golden model's k of 4 x 576 is past it, the
 * unit cases' are not); on PoCL it is a speed-up not tried. */
#define GEMM_NT_MIN_K 1024

/* Side of the square tile one gemm_transpose item moves: cl/gemm.cl's default, which the host
 * never overrides. */
#define GEMM_TRANSPOSE_TILE 16

/* The buffer for B^T when the shared scratch holds an operand. */
static int pack_buffer(oclseg_ctx *ctx, size_t bytes, cl_mem *out) {
    TRY(oclseg_buffer_grow(ctx, &ctx->gemm_pack, &ctx->gemm_pack_bytes, bytes,
                           "the GEMM packing buffer"));
    *out = ctx->gemm_pack;
    return OCLSEG_OK;
}

/* C = A * B^T + beta C (one matrix each) as gemm_nn on A and B^T (k x n), the transpose in the
 * shared scratch unless an operand lives there (conv2d's and conv_transpose's columns), else in
 * the context's packing buffer. */
static int own_nt_transposed(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b,
                             float beta, gemm_operand c) {
    const size_t bytes = d.k * d.n * sizeof(float);
    cl_mem bt; // (k, n)
    if (ctx->scratch && (a.buf == ctx->scratch || b.buf == ctx->scratch))
        TRY(pack_buffer(ctx, bytes, &bt));
    else
        TRY(oclseg_scratch(ctx, bytes, &bt));
    cl_kernel kt;
    TRY(oclseg_kernel_get(ctx, "gemm", NULL, "gemm_transpose", &kt));
    kargs g = karg_begin(kt);
    karg_mem(&g, b.buf);
    karg_u32(&g, b.off);
    karg_u32(&g, b.ld);
    karg_u32(&g, d.n);
    karg_u32(&g, d.k);
    karg_mem(&g, bt);
    karg_u32(&g, 0);
    TRY(karg_end(&g));
    size_t global[2] = {div_up(d.k, GEMM_TRANSPOSE_TILE), div_up(d.n, GEMM_TRANSPOSE_TILE)};
    TRY(oclseg_launch(ctx, kt, 2, global, NULL));
    const gemm_dims nn = {0, 0, d.m, d.n, d.k};
    return own_nn(ctx, nn, a, gemm_mat(bt, 0, d.n, 0), beta, c, 1);
}

/* The own kernels for any shape oclseg issues (trans_a with trans_b does not occur). */
static int own_gemm(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                    gemm_operand c, int count, int sum_count) {
    if (d.trans_b && d.trans_a) return OCLSEG_ERR_UNSUPPORTED;
    if (d.trans_b && d.k < GEMM_NT_MIN_K && count == 1 && sum_count == 1)
        return own_nt_transposed(ctx, d, a, b, beta, c);
    if (d.trans_b) return own_nt(ctx, d, a, b, beta, c, count, sum_count);
    if (sum_count != 1) return OCLSEG_ERR_UNSUPPORTED;
    return own_nn(ctx, d, a, b, beta, c, count);
}

int gemm_single(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                gemm_operand c) {
    const oclseg_gemm_shape shape = shape_of(d, 0, 1, beta, 0);
    if (dispatch_own(ctx, &shape)) return own_gemm(ctx, d, a, b, beta, c, 1, 1);
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
    const double t0 = oclseg_now_s();
    CLBLAST_CHECK(CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, transpose(d.trans_a), transpose(d.trans_b), d.m, d.n, d.k, 1.0f,
        a.buf, a.off, a.ld, a.stride, b.buf, b.off, b.ld, b.stride, beta, c.buf, c.off, c.ld,
        c.stride, (size_t)count, &ctx->queue, oclseg_prof_slot(ctx, "CLBlast sgemm (batched)")));
    count_call(ctx, t0);
    return OCLSEG_OK;
}

/* gemm_batched on CLBlast (not recorded: the caller did). */
static int clblast_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b,
                           float beta, gemm_operand c, int count) {
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

int gemm_batched(oclseg_ctx *ctx, gemm_dims d, gemm_operand a, gemm_operand b, float beta,
                 gemm_operand c, int count) {
    const oclseg_gemm_shape shape = shape_of(d, 1, count, beta, 0);
    if (dispatch_own(ctx, &shape)) return own_gemm(ctx, d, a, b, beta, c, count, 1);
    return clblast_batched(ctx, d, a, b, beta, c, count);
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
    const oclseg_gemm_shape shape = shape_of(d, 1, count, 0.0f, 1);
    const int own = dispatch_own(ctx, &shape);
    /* the own kernels sum the batch in gemm_nt's accumulators, in ascending order, without the
     * shared scratch */
    if (own && d.trans_b && !d.trans_a)
        return own_gemm(ctx, d, a, b, 0.0f, gemm_mat(c, c_off, d.n, 0), 1, count);
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
        const gemm_operand c_parts = gemm_mat(parts, 0, d.n, slice);
        if (own) TRY(own_gemm(ctx, d, a_chunk, b_chunk, 0.0f, c_parts, nb, 1));
        else TRY(clblast_batched(ctx, d, a_chunk, b_chunk, 0.0f, c_parts, nb));
        TRY(gemm_sum_slices(ctx, parts, 0, slice, nb, c, c_off, first > 0));
    }
    return OCLSEG_OK;
}
