/* Loss and metrics (BCE with logits + gradient, per-image confusion counts): host side of cl/loss.cl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"
#include "ops/reduce.h"
#include "runtime/kargs.h"

#ifndef BCE_MAX_GROUPS
#define BCE_MAX_GROUPS 256 /* pass-1 work-groups of the BCE reduction (partials in scratch) */
#endif


static void shape_str(const oclseg_tensor *t, char *out, size_t size) {
    snprintf(out, size, "(%d,%d,%d,%d)", t->n, t->c, t->h, t->w);
}

/* Checks that logits and target match, are non-empty and fit 32-bit indexing. */
static int check_pair(const char *what, const oclseg_tensor *logits, const oclseg_tensor *target) {
    char a[64], b[64];
    shape_str(logits, a, sizeof a);
    shape_str(target, b, sizeof b);
    if (!oclseg_tensor_same_shape(logits, target)) {
        OCLSEG_ERROR("%s: logits %s and target %s differ in shape", what, a, b);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t numel = oclseg_tensor_numel(logits);
    if (logits->n <= 0 || logits->c <= 0 || logits->h <= 0 || logits->w <= 0) {
        OCLSEG_ERROR("%s: empty or invalid logits shape %s", what, a);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* i + stride in the kernels must not wrap: keep everything below 2^31 */
    if (logits->off + numel >= (1u << 31) || target->off + numel >= (1u << 31)) {
        OCLSEG_ERROR("%s: %zu elements at offsets %zu/%zu exceed 31-bit indexing", what, numel,
                     logits->off, target->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int op_bce_with_logits(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                       oclseg_tensor *loss, oclseg_tensor *grad) {
    TRY(check_pair("bce_with_logits", logits, target));
    char a[64], b[64];
    shape_str(logits, a, sizeof a);
    if (oclseg_tensor_numel(loss) != 1) {
        shape_str(loss, b, sizeof b);
        OCLSEG_ERROR("bce_with_logits: loss must be a one-element view, got %s", b);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t numel = oclseg_tensor_numel(logits);
    if (grad && (!oclseg_tensor_same_shape(grad, logits) || grad->off + numel >= (1u << 31))) {
        shape_str(grad, b, sizeof b);
        OCLSEG_ERROR("bce_with_logits: grad %s at offset %zu does not match logits %s", b,
                     grad->off, a);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (loss->off > UINT32_MAX) {
        OCLSEG_ERROR("bce_with_logits: loss offset %zu exceeds 32-bit indexing", loss->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    cl_kernel partial_k, finish_k;
    TRY(oclseg_kernel_get(ctx, "loss", NULL, grad ? "bce_partial_grad" : "bce_partial", &partial_k));
    TRY(oclseg_kernel_get(ctx, "loss", NULL, "bce_finish", &finish_k));
    const size_t wg = oclseg_reduce_wg(ctx, "loss", partial_k);
    const size_t groups = reduce_groups(numel, wg, BCE_MAX_GROUPS, 1);
    cl_mem partial;
    TRY(oclseg_scratch(ctx, groups * sizeof(float), &partial)); /* (groups) */

    cl_uint n = (cl_uint)numel;
    cl_uint grad_off = grad ? (cl_uint)grad->off : 0, n_groups = (cl_uint)groups;
    cl_mem grad_buf = grad ? grad->buf : NULL;
    cl_float numel_f = (cl_float)numel; /* PyTorch divides by numel converted to float */
    kargs args = karg_begin(partial_k);
    karg_tensor(&args, logits);
    karg_tensor(&args, target);
    karg_mem(&args, grad_buf);
    karg_u32(&args, grad_off);
    karg_u32(&args, n);
    karg_f32(&args, numel_f);
    karg_mem(&args, partial);
    TRY(karg_end(&args));
    TRY(reduce_launch(ctx, partial_k, wg, groups, 0));

    args = karg_begin(finish_k);
    karg_mem(&args, partial);
    karg_u32(&args, n_groups);
    karg_f32(&args, numel_f);
    karg_tensor(&args, loss);
    TRY(karg_end(&args));
    return reduce_launch_groups(ctx, "loss", finish_k, 1);
}

int op_seg_counts(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                  float threshold, cl_mem counts, size_t off) {
    TRY(check_pair("seg_counts", logits, target));
    if (!(threshold >= 0.0f && threshold <= 1.0f)) {
        OCLSEG_ERROR("seg_counts: probability threshold %g is not in [0, 1]", (double)threshold);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const size_t images = (size_t)logits->n;
    size_t counts_bytes = 0;
    CL_CHECK(clGetMemObjectInfo(counts, CL_MEM_SIZE, sizeof counts_bytes, &counts_bytes, NULL));
    if ((off + 4 * images) * sizeof(cl_uint) > counts_bytes || off + 4 * images > UINT32_MAX) {
        OCLSEG_ERROR("seg_counts: %zu images need uint32 [%zu, %zu) but the counts buffer holds "
                     "%zu bytes",
                     images, off, off + 4 * images, counts_bytes);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* sigmoid(x) > t  <=>  x > log(t / (1 - t)), evaluated once here in double */
    const double t = threshold;
    const cl_float logit_threshold = t <= 0.0   ? -INFINITY
                                     : t >= 1.0 ? INFINITY
                                                : (cl_float)log(t / (1.0 - t));
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "loss", NULL, "seg_counts", &k));
    cl_uint per_image = (cl_uint)(oclseg_tensor_numel(logits) / images), counts_off = (cl_uint)off;
    kargs args = karg_begin(k);
    karg_tensor(&args, logits);
    karg_tensor(&args, target);
    karg_u32(&args, per_image);
    karg_f32(&args, logit_threshold);
    karg_mem(&args, counts);
    karg_u32(&args, counts_off);
    TRY(karg_end(&args));
    return reduce_launch_groups(ctx, "loss", k, images); /* one work-group per image */
}

int op_soft_dice(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                 oclseg_tensor *loss, oclseg_tensor *grad, int accumulate) {
    TRY(check_pair("soft_dice", logits, target));
    char a[64], b[64];
    shape_str(logits, a, sizeof a);
    const size_t numel = oclseg_tensor_numel(logits), images = (size_t)logits->n;
    if (oclseg_tensor_numel(loss) != 1 || loss->off > UINT32_MAX) {
        shape_str(loss, b, sizeof b);
        OCLSEG_ERROR("soft_dice: loss must be a one-element view below 2^32, got %s at %zu", b,
                     loss->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (grad && (!oclseg_tensor_same_shape(grad, logits) || grad->off + numel >= (1u << 31))) {
        shape_str(grad, b, sizeof b);
        OCLSEG_ERROR("soft_dice: grad %s at offset %zu does not match logits %s", b, grad->off, a);
        return OCLSEG_ERR_INVALID_ARG;
    }
    cl_kernel sums_k, finish_k, grad_k = NULL;
    TRY(oclseg_kernel_get(ctx, "loss", NULL, "dice_sums", &sums_k));
    TRY(oclseg_kernel_get(ctx, "loss", NULL, "dice_finish", &finish_k));
    if (grad) TRY(oclseg_kernel_get(ctx, "loss", NULL, "dice_grad", &grad_k));
    cl_mem sums;
    /* (images, 2), requested at least as large as the BCE's partials so that bce+dice never
     * regrows the shared scratch (a regrowth waits for the queue) */
    size_t sums_bytes = 2 * images * sizeof(float);
    if (sums_bytes < BCE_MAX_GROUPS * sizeof(float)) sums_bytes = BCE_MAX_GROUPS * sizeof(float);
    TRY(oclseg_scratch(ctx, sums_bytes, &sums));
    cl_uint per_image = (cl_uint)(numel / images), n_images = (cl_uint)images, n = (cl_uint)numel;
    cl_int acc = accumulate != 0;
    kargs args = karg_begin(sums_k);
    karg_tensor(&args, logits);
    karg_tensor(&args, target);
    karg_u32(&args, per_image);
    karg_mem(&args, sums);
    TRY(karg_end(&args));
    TRY(reduce_launch_groups(ctx, "loss", sums_k, images)); /* one work-group per image */

    args = karg_begin(finish_k);
    karg_mem(&args, sums);
    karg_u32(&args, n_images);
    karg_i32(&args, acc);
    karg_tensor(&args, loss);
    TRY(karg_end(&args));
    TRY(reduce_launch_groups(ctx, "loss", finish_k, 1));
    if (!grad) return OCLSEG_OK;

    cl_float inv_images = (cl_float)(1.0 / (double)images);
    args = karg_begin(grad_k);
    karg_tensor(&args, logits);
    karg_tensor(&args, target);
    karg_u32(&args, per_image);
    karg_u32(&args, n);
    karg_mem(&args, sums);
    karg_f32(&args, inv_images);
    karg_i32(&args, acc);
    karg_tensor(&args, grad);
    TRY(karg_end(&args));
    size_t g = numel;
    return oclseg_launch(ctx, grad_k, 1, &g, NULL);
}
