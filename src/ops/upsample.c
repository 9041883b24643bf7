/* Bilinear resize (align_corners=False, any output size): host side of cl/upsample.cl. */
#include "oclseg/ops.h"
#include "runtime/kargs.h"

/* x (N, C, H, W) and y (N, C, Ho, Wo): same N and C, non-empty, uint-indexable. */
static int check_shapes(const char *what, const oclseg_tensor *x, const oclseg_tensor *y) {
    const size_t limit = 0xffffffffu;
    if (x->n != y->n || x->c != y->c || x->n < 1 || x->c < 1 || x->h < 1 || x->w < 1 ||
        y->h < 1 || y->w < 1) {
        OCLSEG_ERROR("%s: x (%d,%d,%d,%d) and y (%d,%d,%d,%d) must be non-empty with equal N, C",
                     what, x->n, x->c, x->h, x->w, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (x->off + oclseg_tensor_numel(x) > limit || y->off + oclseg_tensor_numel(y) > limit) {
        OCLSEG_ERROR("%s: x (%d,%d,%d,%d) or y (%d,%d,%d,%d) too large for 32-bit indexing", what,
                     x->n, x->c, x->h, x->w, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    return OCLSEG_OK;
}

/* Runs kernel(src, src_off, dst, dst_off, planes, H, W, Ho, Wo, scale_h, scale_w) with work-items
 * (W, H, N*C) of `dst`. x is the (H, W) side and y the (Ho, Wo) side of the resize:
 * forward src = x, dst = y; backward src = dy (shaped like y), dst = dx (shaped like x). */
static int run(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *src,
               oclseg_tensor *dst, const oclseg_tensor *x, const oclseg_tensor *y) {
    TRY(check_shapes(kernel_name, x, y));
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "upsample", NULL, kernel_name, &k));
    const size_t planes = (size_t)x->n * x->c;
    kargs a = karg_begin(k);
    karg_tensor(&a, src);
    karg_tensor(&a, dst);
    karg_u32(&a, planes);
    karg_u32(&a, (size_t)x->h);
    karg_u32(&a, (size_t)x->w);
    karg_u32(&a, (size_t)y->h);
    karg_u32(&a, (size_t)y->w);
    /* PyTorch (size= given): scale = (float)in / out, computed in float. */
    karg_f32(&a, (float)x->h / (float)y->h);
    karg_f32(&a, (float)x->w / (float)y->w);
    TRY(karg_end(&a));
    size_t global[3] = {(size_t)dst->w, (size_t)dst->h, planes};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int op_upsample_bilinear_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y) {
    return run(ctx, "upsample_bilinear_forward", x, y, x, y);
}

int op_upsample_bilinear_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx) {
    return run(ctx, "upsample_bilinear_backward", dy, dx, dx, dy);
}
