/* Conv2d (groups 1) forward and backward: im2col/col2im (cl/conv2d.cl) + CLBlast GEMMs. */
#include <clblast_c.h>
#include <stdint.h>
#include <string.h>

#include "ops/conv2d_internal.h"
#include "ops/gemm.h"
#include "runtime/kargs.h"

/* Default cap on the column workspace per chunk of images (the stem conv of the model, batch 16,
 * 3x3x3 taps at 64x64 outputs, needs 7 MiB; a chunk always holds at least one image). */
#ifndef CONV2D_COLS_BUDGET_BYTES
#define CONV2D_COLS_BUDGET_BYTES ((size_t)64 << 20)
#endif

/* Largest work-group of the bias gradient reduction (one group per output channel). */
#ifndef CONV2D_BIAS_GRAD_WG
#define CONV2D_BIAS_GRAD_WG 256
#endif

static size_t cols_budget_bytes = CONV2D_COLS_BUDGET_BYTES;

void conv2d_set_cols_budget(size_t bytes) {
    cols_budget_bytes = bytes ? bytes : CONV2D_COLS_BUDGET_BYTES;
}

/* Kernels index with uint and CLBlast with int: every offset + extent must stay below 2^31. */
static int fits_index(size_t off, size_t count) {
    return off <= (size_t)INT32_MAX && count <= (size_t)INT32_MAX - off;
}

static int check_view(const char *op, const char *name, const oclseg_tensor *t) {
    if (!t->buf || t->n < 1 || t->c < 1 || t->h < 1 || t->w < 1 ||
        !fits_index(t->off, oclseg_tensor_numel(t))) {
        OCLSEG_ERROR("%s: %s (%d,%d,%d,%d) at offset %zu is empty or too large", op, name, t->n,
                     t->c, t->h, t->w, t->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

static int check_shape(const char *op, const char *name, const oclseg_tensor *t, int n, int c,
                       int h, int w) {
    TRY(check_view(op, name, t));
    if (t->n != n || t->c != c || t->h != h || t->w != w) {
        OCLSEG_ERROR("%s: %s is (%d,%d,%d,%d), expected (%d,%d,%d,%d)", op, name, t->n, t->c,
                     t->h, t->w, n, c, h, w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int conv2d_geometry_make(const char *op, const oclseg_tensor *x, const oclseg_tensor *w,
                         oclseg_conv_params p, conv2d_geometry *g) {
    TRY(check_view(op, "x", x));
    TRY(check_view(op, "w", w));
    if (p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0) {
        OCLSEG_ERROR("%s: stride (%d,%d) must be >= 1 and padding (%d,%d) >= 0", op, p.stride_h,
                     p.stride_w, p.pad_h, p.pad_w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (w->c != x->c) {
        OCLSEG_ERROR("%s: x (%d,%d,%d,%d) has %d channels but w (%d,%d,%d,%d) expects %d", op,
                     x->n, x->c, x->h, x->w, x->c, w->n, w->c, w->h, w->w, w->c);
        return OCLSEG_ERR_INVALID_ARG;
    }
    g->n = x->n, g->cin = x->c, g->h = x->h, g->w = x->w;
    g->cout = w->n, g->kh = w->h, g->kw = w->w;
    g->p = p;
    const long padded_h = (long)x->h + 2L * p.pad_h, padded_w = (long)x->w + 2L * p.pad_w;
    if (padded_h < w->h || padded_w < w->w) {
        OCLSEG_ERROR("%s: kernel %dx%d larger than the padded input %ldx%ld (x (%d,%d,%d,%d))",
                     op, w->h, w->w, padded_h, padded_w, x->n, x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    g->ho = (int)((padded_h - w->h) / p.stride_h + 1);
    g->wo = (int)((padded_w - w->w) / p.stride_w + 1);
    /* the largest index any kernel forms: one image's columns, and the whole output */
    if (!fits_index(0, conv2d_cols_per_image(g)) ||
        !fits_index(0, (size_t)g->n * g->cout * g->ho * g->wo)) {
        OCLSEG_ERROR("%s: x (%d,%d,%d,%d) with w (%d,%d,%d,%d) is too large for 32-bit indices",
                     op, x->n, x->c, x->h, x->w, w->n, w->c, w->h, w->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

size_t conv2d_cols_per_image(const conv2d_geometry *g) {
    return (size_t)g->cin * g->kh * g->kw * (size_t)g->ho * g->wo;
}

/* 1x1 kernel, stride 1, no padding: the columns of an image are the image itself (Cin, H*W). */
static int is_pointwise(const conv2d_geometry *g) {
    return g->kh == 1 && g->kw == 1 && g->p.stride_h == 1 && g->p.stride_w == 1 &&
           g->p.pad_h == 0 && g->p.pad_w == 0;
}

/* Images per im2col chunk: as many as the column budget allows, at least 1, at most N. */
static int chunk_images(const conv2d_geometry *g) {
    size_t per_image = conv2d_cols_per_image(g) * sizeof(float);
    size_t fit = cols_budget_bytes / per_image;
    if (fit < 1) fit = 1;
    if (fit > (size_t)g->n) fit = (size_t)g->n;
    /* keep the chunk's column indices within 32 bits too */
    while (fit > 1 && !fits_index(0, fit * conv2d_cols_per_image(g))) fit--;
    return (int)fit;
}

/* The 12 geometry arguments shared by im2col and col2im, after their 4 buffer arguments. */
static int geometry_args(kargs *a, const conv2d_geometry *g, int count) {
    karg_u32(a, (size_t)count);
    karg_u32(a, (size_t)g->cin);
    karg_u32(a, (size_t)g->h);
    karg_u32(a, (size_t)g->w);
    karg_u32(a, (size_t)g->kh);
    karg_u32(a, (size_t)g->kw);
    karg_u32(a, (size_t)g->ho);
    karg_u32(a, (size_t)g->wo);
    karg_i32(a, g->p.stride_h);
    karg_i32(a, g->p.stride_w);
    karg_i32(a, g->p.pad_h);
    karg_i32(a, g->p.pad_w);
    return karg_end(a);
}

/* im2col (image -> columns, over output positions) and col2im (columns -> image, over input
 * positions): the same checks and arguments, the two buffers in the kernel's order. */
static int run_cols_kernel(oclseg_ctx *ctx, const char *name, const conv2d_geometry *g,
                           const oclseg_tensor *image, int n0, int count, cl_mem cols,
                           size_t cols_off) {
    if (n0 < 0 || count < 1 || n0 + count > g->n ||
        !fits_index(cols_off, (size_t)count * conv2d_cols_per_image(g))) {
        OCLSEG_ERROR("conv2d %s: images [%d, %d) of %d, columns at offset %zu", name, n0,
                     n0 + count, g->n, cols_off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const int to_cols = strcmp(name, "im2col") == 0;
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "conv2d", NULL, name, &k));
    kargs a = karg_begin(k);
    const size_t image_off = image->off + (size_t)n0 * g->cin * g->h * g->w;
    karg_mem(&a, to_cols ? image->buf : cols);
    karg_u32(&a, to_cols ? image_off : cols_off);
    karg_mem(&a, to_cols ? cols : image->buf);
    karg_u32(&a, to_cols ? cols_off : image_off);
    TRY(geometry_args(&a, g, count));
    size_t global[3] = {(size_t)(to_cols ? g->wo : g->w), (size_t)(to_cols ? g->ho : g->h),
                        (size_t)count * g->cin};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int conv2d_im2col(oclseg_ctx *ctx, const conv2d_geometry *g, const oclseg_tensor *x, int n0,
                  int count, cl_mem cols, size_t cols_off) {
    return run_cols_kernel(ctx, "im2col", g, x, n0, count, cols, cols_off);
}

int conv2d_col2im(oclseg_ctx *ctx, const conv2d_geometry *g, cl_mem cols, size_t cols_off,
                  int n0, int count, oclseg_tensor *dx) {
    return run_cols_kernel(ctx, "col2im", g, dx, n0, count, cols, cols_off);
}

int conv2d_bias_add(oclseg_ctx *ctx, const oclseg_tensor *bias, oclseg_tensor *y) {
    TRY(check_view("conv2d bias add", "y", y));
    TRY(check_shape("conv2d bias add", "bias", bias, y->c, 1, 1, 1));
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "conv2d", NULL, "bias_add", &k));
    const size_t plane = (size_t)y->h * y->w;
    kargs a = karg_begin(k);
    karg_tensor(&a, y);
    karg_tensor(&a, bias);
    karg_u32(&a, (size_t)y->n);
    karg_u32(&a, (size_t)y->c);
    karg_u32(&a, plane);
    TRY(karg_end(&a));
    size_t global[3] = {plane, (size_t)y->c, (size_t)y->n};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int conv2d_bias_grad(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dbias) {
    TRY(check_view("conv2d bias grad", "dy", dy));
    TRY(check_shape("conv2d bias grad", "dbias", dbias, dy->c, 1, 1, 1));
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "conv2d", NULL, "bias_grad", &k));
    /* One work-group per channel, of a power-of-two size fixed per device (the tree in the
     * kernel needs a power of two; a fixed size keeps the summation order, hence the bits). */
    size_t lanes = 1, limit = oclseg_kernel_wg_limit(ctx, k);
    if (limit > ctx->info.max_work_group_size) limit = ctx->info.max_work_group_size;
    while (lanes * 2 <= limit && lanes * 2 <= CONV2D_BIAS_GRAD_WG) lanes *= 2;
    kargs a = karg_begin(k);
    karg_tensor(&a, dy);
    karg_tensor(&a, dbias);
    karg_u32(&a, (size_t)dy->n);
    karg_u32(&a, (size_t)dy->c);
    karg_u32(&a, (size_t)dy->h * dy->w);
    karg_local(&a, lanes * sizeof(float));
    TRY(karg_end(&a));
    size_t global = (size_t)dy->c * lanes;
    return oclseg_launch(ctx, k, 1, &global, &lanes);
}

int op_conv2d_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                      const oclseg_tensor *bias, oclseg_tensor *y, oclseg_conv_params p) {
    static const char op[] = "conv2d forward";
    conv2d_geometry g;
    TRY(conv2d_geometry_make(op, x, w, p, &g));
    TRY(check_shape(op, "y", y, g.n, g.cout, g.ho, g.wo));
    if (bias) TRY(check_shape(op, "bias", bias, g.cout, 1, 1, 1));

    const size_t k_len = (size_t)g.cin * g.kh * g.kw, plane = (size_t)g.ho * g.wo;
    const size_t x_image = (size_t)g.cin * g.h * g.w, y_image = (size_t)g.cout * plane;
    if (is_pointwise(&g)) {
        /* Y_n (Cout, HW) = W (Cout, Cin) * X_n (Cin, HW), straight on the NCHW data */
        TRY(gemm_batched(ctx, (gemm_dims){0, 0, g.cout, plane, k_len},
                         gemm_mat(w->buf, w->off, k_len, 0),
                         gemm_mat(x->buf, x->off, plane, x_image), 0.0f,
                         gemm_mat(y->buf, y->off, plane, y_image), g.n));
    } else {
        const int chunk = chunk_images(&g);
        const size_t cols_image = conv2d_cols_per_image(&g);
        cl_mem cols; // (chunk, K, P)
        TRY(oclseg_scratch(ctx, (size_t)chunk * cols_image * sizeof(float), &cols));
        for (int n0 = 0; n0 < g.n; n0 += chunk) {
            const int count = g.n - n0 < chunk ? g.n - n0 : chunk;
            TRY(conv2d_im2col(ctx, &g, x, n0, count, cols, 0));
            /* Y_n (Cout, P) = W (Cout, K) * cols_n (K, P) */
            TRY(gemm_batched(ctx, (gemm_dims){0, 0, g.cout, plane, k_len},
                             gemm_mat(w->buf, w->off, k_len, 0),
                             gemm_mat(cols, 0, plane, cols_image), 0.0f,
                             gemm_mat(y->buf, y->off + n0 * y_image, plane, y_image), count));
        }
    }
    if (bias) TRY(conv2d_bias_add(ctx, bias, y));
    return OCLSEG_OK;
}

int op_conv2d_backward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                       const oclseg_tensor *dy, oclseg_tensor *dx, oclseg_tensor *dw,
                       oclseg_tensor *dbias, oclseg_conv_params p) {
    static const char op[] = "conv2d backward";
    conv2d_geometry g;
    TRY(conv2d_geometry_make(op, x, w, p, &g));
    TRY(check_shape(op, "dy", dy, g.n, g.cout, g.ho, g.wo));
    if (dx) TRY(check_shape(op, "dx", dx, g.n, g.cin, g.h, g.w));
    if (dw) TRY(check_shape(op, "dw", dw, g.cout, g.cin, g.kh, g.kw));
    if (dbias) TRY(check_shape(op, "dbias", dbias, g.cout, 1, 1, 1));

    if (dbias) TRY(conv2d_bias_grad(ctx, dy, dbias));
    if (!dx && !dw) return OCLSEG_OK;

    const size_t k_len = (size_t)g.cin * g.kh * g.kw, plane = (size_t)g.ho * g.wo;
    const size_t x_image = (size_t)g.cin * g.h * g.w, y_image = (size_t)g.cout * plane;
    if (is_pointwise(&g)) {
        /* dW (Cout, Cin) = sum_n dY_n (Cout, HW) * X_n^T (HW, Cin), images in order */
        if (dw)
            TRY(gemm_batched_sum(ctx, (gemm_dims){0, 1, g.cout, k_len, plane},
                                 gemm_mat(dy->buf, dy->off, plane, y_image),
                                 gemm_mat(x->buf, x->off, plane, x_image), dw->buf, dw->off, g.n));
        /* dX_n (Cin, HW) = W^T (Cin, Cout) * dY_n (Cout, HW) */
        if (dx)
            TRY(gemm_batched(ctx, (gemm_dims){1, 0, k_len, plane, g.cout},
                             gemm_mat(w->buf, w->off, k_len, 0),
                             gemm_mat(dy->buf, dy->off, plane, y_image), 0.0f,
                             gemm_mat(dx->buf, dx->off, plane, x_image), g.n));
        return OCLSEG_OK;
    }

    const int chunk = chunk_images(&g);
    const size_t cols_image = conv2d_cols_per_image(&g);
    cl_mem cols; // (chunk, K, P): x's columns for dW, then dY's column gradients for dX
    TRY(oclseg_scratch(ctx, (size_t)chunk * cols_image * sizeof(float), &cols));
    for (int n0 = 0; n0 < g.n; n0 += chunk) {
        const int count = g.n - n0 < chunk ? g.n - n0 : chunk;
        if (dw) {
            TRY(conv2d_im2col(ctx, &g, x, n0, count, cols, 0));
            /* dW (Cout, K) += dY_n (Cout, P) * cols_n^T (P, K), one GEMM per image in order
             * (beta 1 after the first): a fixed accumulation order, hence determinism */
            for (int b = 0; b < count; b++) {
                const int n = n0 + b;
                TRY(gemm_single(ctx, (gemm_dims){0, 1, g.cout, k_len, plane},
                                gemm_mat(dy->buf, dy->off + n * y_image, plane, 0),
                                gemm_mat(cols, b * cols_image, plane, 0), n == 0 ? 0.0f : 1.0f,
                                gemm_mat(dw->buf, dw->off, k_len, 0)));
            }
        }
        if (dx) {
            /* dcols_n (K, P) = W^T (K, Cout) * dY_n (Cout, P), then gathered back into dX */
            TRY(gemm_batched(ctx, (gemm_dims){1, 0, k_len, plane, g.cout},
                             gemm_mat(w->buf, w->off, k_len, 0),
                             gemm_mat(dy->buf, dy->off + n0 * y_image, plane, y_image), 0.0f,
                             gemm_mat(cols, 0, plane, cols_image), count));
            TRY(conv2d_col2im(ctx, &g, cols, 0, n0, count, dx));
        }
    }
    return OCLSEG_OK;
}
