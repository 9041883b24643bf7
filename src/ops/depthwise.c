/* Depthwise 3x3 convolution (pad 1, stride 1 or 2, no bias): host side of cl/depthwise.cl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"
#include "ops/reduce.h"
#include "runtime/kargs.h"

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
 * depthwise_backward_input over a (dst W, dst H, N*C) grid, or its CPU form (kernel_name
 * + "_rows") over a (dst H, N*C) grid. */
static int run_direct(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *src,
                      const oclseg_tensor *w, oclseg_tensor *dst, const oclseg_tensor *x,
                      int stride) {
    const int rows = oclseg_use_row_kernels(ctx);
    char name[64];
    snprintf(name, sizeof name, "%s%s", kernel_name, rows ? "_rows" : "");
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, name, &k));
    const size_t nc = (size_t)x->n * x->c;
    kargs a = karg_begin(k);
    karg_tensor(&a, src);
    karg_tensor(&a, w);
    karg_tensor(&a, dst);
    karg_u32(&a, (size_t)x->c);
    karg_i32(&a, x->h);
    karg_i32(&a, x->w);
    karg_i32(&a, out_size(x->h, stride));
    karg_i32(&a, out_size(x->w, stride));
    karg_u32(&a, nc);
    karg_i32(&a, stride);
    TRY(karg_end(&a));
    if (rows) {
        size_t global[2] = {(size_t)dst->h, nc};
        return oclseg_launch(ctx, k, 2, global, NULL);
    }
    size_t global[3] = {(size_t)dst->w, (size_t)dst->h, nc};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int op_depthwise_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                         oclseg_tensor *y, int stride) {
    TRY(check_shapes("depthwise forward", x, w, y, NULL, NULL, stride));
    return run_direct(ctx, "depthwise_forward", x, w, y, x, stride);
}


/* The weight-gradient kernels' (N, C, H, W, Ho, Wo, stride) arguments. */
static void karg_dw_geometry(kargs *a, const oclseg_tensor *x, const oclseg_tensor *dy,
                             int stride) {
    karg_u32(a, (size_t)x->n);
    karg_u32(a, (size_t)x->c);
    karg_i32(a, x->h);
    karg_i32(a, x->w);
    karg_i32(a, dy->h);
    karg_i32(a, dy->w);
    karg_i32(a, stride);
}

/* Pass 2: dw[c, tap] = sum over the `chunks` partials of channel c, in order. */
static int dw_finish(oclseg_ctx *ctx, cl_mem part, size_t part_off, oclseg_tensor *dw, size_t c,
                     size_t chunks) {
    cl_kernel kf;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, "depthwise_dw_finish", &kf));
    kargs a = karg_begin(kf);
    karg_mem(&a, part);
    karg_u32(&a, part_off);
    karg_tensor(&a, dw);
    karg_u32(&a, c);
    karg_u32(&a, chunks);
    TRY(karg_end(&a));
    size_t global_f = c * 9;
    return oclseg_launch(ctx, kf, 1, &global_f, NULL);
}

/* CPU form of the weight gradient: one item per channel, images summed in order. */
static int depthwise_dw_rows(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                             oclseg_tensor *dw, int stride) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, "depthwise_dw_rows", &k));
    kargs a = karg_begin(k);
    karg_tensor(&a, x);
    karg_tensor(&a, dy);
    karg_tensor(&a, dw);
    karg_dw_geometry(&a, x, dy, stride);
    TRY(karg_end(&a));
    size_t global = (size_t)x->c;
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

/* dw = sum over (n, oh, ow) of dy * shifted x, per (channel, tap); see depthwise_dw_partial. */
static int depthwise_dw(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                        oclseg_tensor *dw, int stride) {
    cl_kernel kp;
    TRY(oclseg_kernel_get(ctx, "depthwise", NULL, "depthwise_dw_partial", &kp));
    const size_t wg = oclseg_reduce_wg(ctx, "depthwise", kp);
    if (wg < 9) { /* the first 9 items of a work-group write the 9 taps' sums */
        OCLSEG_ERROR("depthwise weight gradient: needs work-groups of at least 9 items, the "
                     "device allows %zu", wg);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    const size_t positions = (size_t)dy->n * (size_t)dy->h * (size_t)dy->w; /* N*Ho*Wo */
    const size_t per_group = wg * DW_POSITIONS_PER_ITEM;
    size_t chunks = (positions + per_group - 1) / per_group;
    if (chunks > DW_MAX_CHUNKS) chunks = DW_MAX_CHUNKS;
    size_t chunk_len = (positions + chunks - 1) / chunks;
    chunks = (positions + chunk_len - 1) / chunk_len; /* no empty trailing chunk */

    cl_mem part = dw->buf; // (C, chunks, 9) partials, or dw itself when there is one chunk
    size_t part_off = dw->off;
    if (chunks > 1) { /* partials go to scratch, pass 2 sums them into dw */
        TRY(oclseg_scratch(ctx, (size_t)x->c * chunks * 9 * sizeof(float), &part));
        part_off = 0;
    }
    kargs a = karg_begin(kp);
    karg_tensor(&a, x);
    karg_tensor(&a, dy);
    karg_mem(&a, part);
    karg_u32(&a, part_off);
    karg_dw_geometry(&a, x, dy, stride);
    karg_u32(&a, chunks);
    karg_u32(&a, chunk_len);
    TRY(karg_end(&a));
    TRY(reduce_launch(ctx, kp, wg, chunks, (size_t)x->c));
    if (chunks == 1) return OCLSEG_OK;
    return dw_finish(ctx, part, part_off, dw, (size_t)x->c, chunks);
}

int op_depthwise_backward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                          const oclseg_tensor *dy, oclseg_tensor *dx, oclseg_tensor *dw,
                          int stride) {
    TRY(check_shapes("depthwise backward", x, w, dy, dx, dw, stride));
    if (dx) TRY(run_direct(ctx, "depthwise_backward_input", dy, w, dx, x, stride));
    if (dw && oclseg_use_row_kernels(ctx)) TRY(depthwise_dw_rows(ctx, x, dy, dw, stride));
    else if (dw) TRY(depthwise_dw(ctx, x, dy, dw, stride));
    return OCLSEG_OK;
}
