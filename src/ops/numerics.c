/* Numerics checks (does a range hold NaN/Inf?): host side of cl/numerics.cl. */
#include "oclseg/ops.h"
#include "runtime/kargs.h"

#ifndef NONFINITE_MAX_GROUPS
#define NONFINITE_MAX_GROUPS 256 /* pass-1 work-groups (partials in the scratch workspace) */
#endif

int op_check_finite(oclseg_ctx *ctx, cl_mem x, size_t x_off, size_t count, cl_mem out,
                       size_t out_off) {
    if (count == 0 || x_off + count >= (1u << 31) || out_off > UINT32_MAX) {
        OCLSEG_ERROR("check_finite: %zu elements at offset %zu (result at %zu) are empty or "
                     "exceed 31-bit indexing", count, x_off, out_off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    cl_kernel partial_k, finish_k;
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "nonfinite_partial", &partial_k));
    TRY(oclseg_kernel_get(ctx, "numerics", NULL, "nonfinite_finish", &finish_k));
    size_t wg = oclseg_reduce_wg(ctx, "numerics", partial_k);
    size_t groups = (count + wg - 1) / wg;
    if (groups > NONFINITE_MAX_GROUPS) groups = NONFINITE_MAX_GROUPS;
    /* At least one partial per item of the finish work-group: every partial it could touch is
     * written (idle groups write 0), so no checker sees a speculative read of stale scratch. */
    size_t finish_wg = oclseg_reduce_wg(ctx, "numerics", finish_k);
    if (groups < finish_wg) groups = finish_wg;
    cl_mem partial;
    TRY(oclseg_scratch(ctx, groups * sizeof(float), &partial)); /* (groups) */
    kargs a = karg_begin(partial_k);
    karg_mem(&a, x);
    karg_u32(&a, x_off);
    karg_u32(&a, count);
    karg_mem(&a, partial);
    TRY(karg_end(&a));
    size_t global = groups * wg;
    TRY(oclseg_launch(ctx, partial_k, 1, &global, &wg));
    a = karg_begin(finish_k);
    karg_mem(&a, partial);
    karg_u32(&a, groups);
    karg_mem(&a, out);
    karg_u32(&a, out_off);
    TRY(karg_end(&a));
    return oclseg_launch(ctx, finish_k, 1, &finish_wg, &finish_wg);
}
