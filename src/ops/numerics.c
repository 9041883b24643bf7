/* Numerics checks (does a range hold NaN/Inf?) and gradient clipping by global norm: host side
 * of cl/numerics.cl. */
#include <math.h>

#include "oclseg/ops.h"
#include "ops/reduce.h"
#include "runtime/kargs.h"

#ifndef NONFINITE_MAX_GROUPS
#define NONFINITE_MAX_GROUPS 256 /* pass-1 work-groups (partials in the scratch workspace) */
#endif
/* The CPU form's chunks are whole vectors of cl/numerics.cl's NONFINITE_LANES (16 by default;
 * a multiple of it is what matters, any value stays correct). */
#define NONFINITE_CHUNK_ALIGN 16

int op_check_finite(oclseg_ctx *ctx, cl_mem x, size_t x_off, size_t count, cl_mem out,
                       size_t out_off) {
    if (count == 0 || x_off + count >= (1u << 31) || out_off > UINT32_MAX) {
        OCLSEG_ERROR("check_finite: %zu elements at offset %zu (result at %zu) are empty or "
                     "exceed 31-bit indexing", count, x_off, out_off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int rows = oclseg_use_row_kernels(ctx);
    cl_kernel partial_k, finish_k;
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, rows ? "nonfinite_rows" : "nonfinite_partial",
                          &partial_k));
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "nonfinite_finish", &finish_k));
    /* At least one partial per item of the finish work-group: every partial it could touch is
     * written (idle groups write 0), so no checker sees a speculative read of stale scratch. */
    const size_t finish_wg = oclseg_reduce_wg(ctx, "numerics", finish_k);
    /* Values per pass-1 work-group (tree form) or per item (CPU form: whole vectors of
     * NONFINITE_CHUNK_ALIGN, the last chunk cut, so at most NONFINITE_MAX_GROUPS items); at
     * least finish_wg of them either way (the extra ones read nothing and write 0). */
    size_t chunk_len = 0;
    if (rows) {
        const size_t per = (count + NONFINITE_MAX_GROUPS - 1) / NONFINITE_MAX_GROUPS;
        const size_t vectors = (per + NONFINITE_CHUNK_ALIGN - 1) / NONFINITE_CHUNK_ALIGN;
        chunk_len = vectors * NONFINITE_CHUNK_ALIGN;
    }
    const size_t groups =
        reduce_groups(count, rows ? chunk_len : oclseg_reduce_wg(ctx, "numerics", partial_k),
                      NONFINITE_MAX_GROUPS, finish_wg);
    cl_mem partial;
    TRY(oclseg_scratch(ctx, groups * sizeof(float), &partial)); /* (groups) */
    kargs a = karg_begin(partial_k);
    karg_mem(&a, x);
    karg_u32(&a, x_off);
    karg_u32(&a, count);
    if (rows) {
        karg_u32(&a, chunk_len);
        karg_u32(&a, groups);
    }
    karg_mem(&a, partial);
    TRY(karg_end(&a));
    if (rows) {
        size_t global = groups;
        TRY(oclseg_launch(ctx, partial_k, 1, &global, NULL));
    } else {
        TRY(reduce_launch_groups(ctx, "numerics", partial_k, groups));
    }
    a = karg_begin(finish_k);
    karg_mem(&a, partial);
    karg_u32(&a, groups);
    karg_mem(&a, out);
    karg_u32(&a, out_off);
    TRY(karg_end(&a));
    return reduce_launch(ctx, finish_k, finish_wg, 1, 0);
}

#ifndef CLIP_MAX_GROUPS
#define CLIP_MAX_GROUPS 256 /* pass-1 work-groups of the norm (partials in the scratch) */
#endif

int op_clip_grad_norm(oclseg_ctx *ctx, cl_mem grad, size_t off, size_t count, float max_norm,
                      cl_mem out) {
    if (!grad || !out || count == 0 || off + count >= (1u << 31) || !(max_norm > 0.0f) ||
        !isfinite(max_norm)) {
        OCLSEG_ERROR("clip_grad_norm: %zu gradients at offset %zu, max norm %g: empty, beyond "
                     "31-bit indexing or not a positive norm", count, off, (double)max_norm);
        return OCLSEG_ERR_INVALID_ARG;
    }
    cl_kernel partial_k, coef_k, scale_k;
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "grad_sumsq_partial", &partial_k));
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "grad_clip_coef", &coef_k));
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "grad_scale", &scale_k));
    const size_t wg = oclseg_reduce_wg(ctx, "numerics", partial_k);
    const size_t finish_wg = oclseg_reduce_wg(ctx, "numerics", coef_k);
    /* at least finish_wg groups: every partial the finish may read is written */
    const size_t groups = reduce_groups(count, wg, CLIP_MAX_GROUPS, finish_wg);
    cl_mem partial;
    TRY(oclseg_scratch(ctx, CLIP_MAX_GROUPS * sizeof(float) > groups * sizeof(float)
                                ? CLIP_MAX_GROUPS * sizeof(float)
                                : groups * sizeof(float),
                       &partial));
    cl_uint off_u = (cl_uint)off, n = (cl_uint)count, n_groups = (cl_uint)groups;
    cl_float mn = max_norm;
    kargs a = karg_begin(partial_k);
    karg_mem(&a, grad);
    karg_u32(&a, off_u);
    karg_u32(&a, n);
    karg_mem(&a, partial);
    TRY(karg_end(&a));
    TRY(reduce_launch(ctx, partial_k, wg, groups, 0));
    a = karg_begin(coef_k);
    karg_mem(&a, partial);
    karg_u32(&a, n_groups);
    karg_f32(&a, mn);
    karg_mem(&a, out);
    TRY(karg_end(&a));
    TRY(reduce_launch(ctx, coef_k, finish_wg, 1, 0));
    a = karg_begin(scale_k);
    karg_mem(&a, grad);
    karg_u32(&a, off_u);
    karg_u32(&a, n);
    karg_mem(&a, out);
    TRY(karg_end(&a));
    size_t g = count;
    return oclseg_launch(ctx, scale_k, 1, &g, NULL);
}
