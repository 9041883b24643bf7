/* Loss and metrics (BCE with logits + gradient, per-image confusion counts): host side of cl/loss.cl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"

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
    size_t wg = oclseg_reduce_wg(ctx, "loss", partial_k);
    size_t groups = (numel + wg - 1) / wg;
    if (groups > BCE_MAX_GROUPS) groups = BCE_MAX_GROUPS;
    cl_mem partial;
    TRY(oclseg_scratch(ctx, groups * sizeof(float), &partial)); /* (groups) */

    cl_uint x_off = (cl_uint)logits->off, y_off = (cl_uint)target->off, n = (cl_uint)numel;
    cl_uint grad_off = grad ? (cl_uint)grad->off : 0, n_groups = (cl_uint)groups;
    cl_mem grad_buf = grad ? grad->buf : NULL;
    cl_float numel_f = (cl_float)numel; /* PyTorch divides by numel converted to float */
    KARG(partial_k, 0, logits->buf);
    KARG(partial_k, 1, x_off);
    KARG(partial_k, 2, target->buf);
    KARG(partial_k, 3, y_off);
    KARG(partial_k, 4, grad_buf);
    KARG(partial_k, 5, grad_off);
    KARG(partial_k, 6, n);
    KARG(partial_k, 7, numel_f);
    KARG(partial_k, 8, partial);
    size_t global = groups * wg;
    TRY(oclseg_launch(ctx, partial_k, 1, &global, &wg));

    cl_uint loss_off = (cl_uint)loss->off;
    KARG(finish_k, 0, partial);
    KARG(finish_k, 1, n_groups);
    KARG(finish_k, 2, numel_f);
    KARG(finish_k, 3, loss->buf);
    KARG(finish_k, 4, loss_off);
    size_t finish_wg = oclseg_reduce_wg(ctx, "loss", finish_k);
    return oclseg_launch(ctx, finish_k, 1, &finish_wg, &finish_wg);
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
    size_t wg = oclseg_reduce_wg(ctx, "loss", k);
    cl_uint x_off = (cl_uint)logits->off, y_off = (cl_uint)target->off;
    cl_uint per_image = (cl_uint)(oclseg_tensor_numel(logits) / images), counts_off = (cl_uint)off;
    KARG(k, 0, logits->buf);
    KARG(k, 1, x_off);
    KARG(k, 2, target->buf);
    KARG(k, 3, y_off);
    KARG(k, 4, per_image);
    KARG(k, 5, logit_threshold);
    KARG(k, 6, counts);
    KARG(k, 7, counts_off);
    size_t global = images * wg; /* one work-group per image */
    return oclseg_launch(ctx, k, 1, &global, &wg);
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
    cl_uint x_off = (cl_uint)logits->off, y_off = (cl_uint)target->off;
    cl_uint per_image = (cl_uint)(numel / images), n_images = (cl_uint)images, n = (cl_uint)numel;
    cl_int acc = accumulate != 0;
    KARG(sums_k, 0, logits->buf);
    KARG(sums_k, 1, x_off);
    KARG(sums_k, 2, target->buf);
    KARG(sums_k, 3, y_off);
    KARG(sums_k, 4, per_image);
    KARG(sums_k, 5, sums);
    size_t wg = oclseg_reduce_wg(ctx, "loss", sums_k), global = images * wg;
    TRY(oclseg_launch(ctx, sums_k, 1, &global, &wg)); /* one work-group per image */

    cl_uint loss_off = (cl_uint)loss->off;
    KARG(finish_k, 0, sums);
    KARG(finish_k, 1, n_images);
    KARG(finish_k, 2, acc);
    KARG(finish_k, 3, loss->buf);
    KARG(finish_k, 4, loss_off);
    size_t finish_wg = oclseg_reduce_wg(ctx, "loss", finish_k);
    TRY(oclseg_launch(ctx, finish_k, 1, &finish_wg, &finish_wg));
    if (!grad) return OCLSEG_OK;

    cl_uint grad_off = (cl_uint)grad->off;
    cl_float inv_images = (cl_float)(1.0 / (double)images);
    KARG(grad_k, 0, logits->buf);
    KARG(grad_k, 1, x_off);
    KARG(grad_k, 2, target->buf);
    KARG(grad_k, 3, y_off);
    KARG(grad_k, 4, per_image);
    KARG(grad_k, 5, n);
    KARG(grad_k, 6, sums);
    KARG(grad_k, 7, inv_images);
    KARG(grad_k, 8, acc);
    KARG(grad_k, 9, grad->buf);
    KARG(grad_k, 10, grad_off);
    size_t g = numel;
    return oclseg_launch(ctx, grad_k, 1, &g, NULL);
}
