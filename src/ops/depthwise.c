/* Depthwise 3x3 convolution (pad 1, stride 1 or 2, no bias): host side of cl/depthwise.cl. */
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"

/* Weight gradient: aim for about this many (n, oh, ow) positions per work-item in pass 1 before
 * the work-group tree; more positions per channel are split into more chunks (work-groups). */
#define DW_POSITIONS_PER_ITEM 16
/* Upper bound on chunks per channel (bounds the scratch: C * chunks * 9 floats). */
#define DW_MAX_CHUNKS 1024

static int out_size(int in, int stride) { return (in + 2 - 3) / stride + 1; }

/* Kernels index with uint offsets: a view must end below 2^32 floats. */
static int fits_u32(const oclseg_tensor *t) {
    return !t || t->off + oclseg_tensor_numel(t) <= (size_t)UINT32_MAX;
}

static int shape_is(const oclseg_tensor *t, int n, int c, int h, int w) {
    return t->n == n && t->c == c && t->h == h && t->w == w;
}

/* Validates stride, x, w and (optional) y-shaped and x-shaped tensors for `op`. */
static int check_shapes(const char *op, const oclseg_tensor *x, const oclseg_tensor *w,
                        const oclseg_tensor *y_like, const oclseg_tensor *x_like,
                        const oclseg_tensor *w_like, int stride) {
    if (stride != 1 && stride != 2) {
        OCLSEG_ERROR("%s: stride must be 1 or 2, got %d", op, stride);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (x->n < 1 || x->c < 1 || x->h < 1 || x->w < 1) {
        OCLSEG_ERROR("%s: bad input shape (%d,%d,%d,%d)", op, x->n, x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (!fits_u32(x) || !fits_u32(w) || !fits_u32(y_like) || !fits_u32(x_like) ||
        !fits_u32(w_like)) {
        OCLSEG_ERROR("%s: a tensor ends beyond 2^32 floats (input (%d,%d,%d,%d))", op, x->n,
                     x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (!shape_is(w, x->c, 1, 3, 3)) {
        OCLSEG_ERROR("%s: weight (%d,%d,%d,%d) must be (%d,1,3,3) for input (%d,%d,%d,%d)", op,
                     w->n, w->c, w->h, w->w, x->c, x->n, x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int ho = out_size(x->h, stride), wo = out_size(x->w, stride);
    if (y_like && !shape_is(y_like, x->n, x->c, ho, wo)) {
        OCLSEG_ERROR("%s: output/dy (%d,%d,%d,%d) must be (%d,%d,%d,%d) for input "
                     "(%d,%d,%d,%d), stride %d",
                     op, y_like->n, y_like->c, y_like->h, y_like->w, x->n, x->c, ho, wo, x->n,
                     x->c, x->h, x->w, stride);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (x_like && !oclseg_tensor_same_shape(x_like, x)) {
        OCLSEG_ERROR("%s: dx (%d,%d,%d,%d) must have the input's shape (%d,%d,%d,%d)", op,
                     x_like->n, x_like->c, x_like->h, x_like->w, x->n, x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (w_like && !oclseg_tensor_same_shape(w_like, w)) {
        OCLSEG_ERROR("%s: dw (%d,%d,%d,%d) must be (%d,1,3,3)", op, w_like->n, w_like->c,
                     w_like->h, w_like->w, x->c);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* Runs a (src, w) -> dst kernel with the shared argument list of depthwise_forward and
 * depthwise_backward_input over a (dst W, dst H, N*C) grid. */
static int run_direct(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *src,
                      const oclseg_tensor *w, oclseg_tensor *dst, const oclseg_tensor *x,
                      int stride) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, kernel_name, &k));
    cl_uint src_off = (cl_uint)src->off, w_off = (cl_uint)w->off, dst_off = (cl_uint)dst->off;
    cl_uint c = (cl_uint)x->c, nc = (cl_uint)x->n * (cl_uint)x->c;
    cl_int h = x->h, wd = x->w, ho = out_size(x->h, stride), wo = out_size(x->w, stride);
    cl_int s = stride;
    KARG(k, 0, src->buf);
    KARG(k, 1, src_off);
    KARG(k, 2, w->buf);
    KARG(k, 3, w_off);
    KARG(k, 4, dst->buf);
    KARG(k, 5, dst_off);
    KARG(k, 6, c);
    KARG(k, 7, h);
    KARG(k, 8, wd);
    KARG(k, 9, ho);
    KARG(k, 10, wo);
    KARG(k, 11, nc);
    KARG(k, 12, s);
    size_t global[3] = {(size_t)dst->w, (size_t)dst->h, (size_t)nc};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int op_depthwise_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                         oclseg_tensor *y, int stride) {
    TRY(check_shapes("depthwise forward", x, w, y, NULL, NULL, stride));
    return run_direct(ctx, "depthwise_forward", x, w, y, x, stride);
}


/* dw = sum over (n, oh, ow) of dy * shifted x, per (channel, tap); see depthwise_dw_partial. */
static int depthwise_dw(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                        oclseg_tensor *dw, int stride) {
    cl_kernel kp;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, "depthwise_dw_partial", &kp));
    const size_t wg = oclseg_reduce_wg(ctx, "depthwise", kp);
    const size_t positions = (size_t)dy->n * (size_t)dy->h * (size_t)dy->w; /* N*Ho*Wo */
    const size_t per_group = wg * DW_POSITIONS_PER_ITEM;
    size_t chunks = (positions + per_group - 1) / per_group;
    if (chunks > DW_MAX_CHUNKS) chunks = DW_MAX_CHUNKS;
    size_t chunk_len = (positions + chunks - 1) / chunks;
    chunks = (positions + chunk_len - 1) / chunk_len; /* no empty trailing chunk */

    cl_mem part = dw->buf;
    cl_uint part_off = (cl_uint)dw->off;
    if (chunks > 1) { /* partials go to scratch, pass 2 sums them into dw */
        TRY(oclseg_scratch(ctx, (size_t)x->c * chunks * 9 * sizeof(float), &part));
        part_off = 0;
    }
    cl_uint x_off = (cl_uint)x->off, dy_off = (cl_uint)dy->off;
    cl_uint n = (cl_uint)x->n, c = (cl_uint)x->c;
    cl_int h = x->h, wd = x->w, ho = dy->h, wo = dy->w, s = stride;
    cl_uint chunks_u = (cl_uint)chunks, chunk_len_u = (cl_uint)chunk_len;
    KARG(kp, 0, x->buf);
    KARG(kp, 1, x_off);
    KARG(kp, 2, dy->buf);
    KARG(kp, 3, dy_off);
    KARG(kp, 4, part);
    KARG(kp, 5, part_off);
    KARG(kp, 6, n);
    KARG(kp, 7, c);
    KARG(kp, 8, h);
    KARG(kp, 9, wd);
    KARG(kp, 10, ho);
    KARG(kp, 11, wo);
    KARG(kp, 12, s);
    KARG(kp, 13, chunks_u);
    KARG(kp, 14, chunk_len_u);
    size_t global[2] = {wg * chunks, (size_t)c}, local[2] = {wg, 1};
    TRY(oclseg_launch(ctx, kp, 2, global, local));
    if (chunks == 1) return OCLSEG_OK;

    cl_kernel kf;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, "depthwise_dw_finish", &kf));
    cl_uint dw_off = (cl_uint)dw->off;
    KARG(kf, 0, part);
    KARG(kf, 1, part_off);
    KARG(kf, 2, dw->buf);
    KARG(kf, 3, dw_off);
    KARG(kf, 4, c);
    KARG(kf, 5, chunks_u);
    size_t global_f = (size_t)c * 9;
    return oclseg_launch(ctx, kf, 1, &global_f, NULL);
}

int op_depthwise_backward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                          const oclseg_tensor *dy, oclseg_tensor *dx, oclseg_tensor *dw,
                          int stride) {
    TRY(check_shapes("depthwise backward", x, w, dy, dx, dw, stride));
    if (dx) TRY(run_direct(ctx, "depthwise_backward_input", dy, w, dx, x, stride));
    if (dw) TRY(depthwise_dw(ctx, x, dy, dw, stride));
    return OCLSEG_OK;
}
