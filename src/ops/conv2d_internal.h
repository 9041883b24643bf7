/* Conv2d internals exposed for tests: geometry, and the non-GEMM kernels of cl/conv2d.cl. */
#ifndef OCLSEG_CONV2D_INTERNAL_H
#define OCLSEG_CONV2D_INTERNAL_H

#include "oclseg/ops.h"

/* Sizes of one conv2d call (groups 1). */
typedef struct conv2d_geometry {
    int n, cin, h, w;   /* input (N, Cin, H, W) */
    int cout, kh, kw;   /* weight (Cout, Cin, KH, KW) */
    int ho, wo;         /* output (N, Cout, Ho, Wo) */
    oclseg_conv_params p;
} conv2d_geometry;

/* Fills *g from x, w and p; checks strides >= 1, pads >= 0, Ho, Wo >= 1, w->c == x->c and that
 * every index the kernels form fits in 32 bits. `op` names the caller in error messages. */
int conv2d_geometry_make(const char *op, const oclseg_tensor *x, const oclseg_tensor *w,
                         oclseg_conv_params p, conv2d_geometry *g);

/* Floats of one image's columns: K * P with K = Cin*KH*KW, P = Ho*Wo. */
size_t conv2d_cols_per_image(const conv2d_geometry *g);

/* Images of x [n0, n0 + count) -> cols (count, K, P) at float offset cols_off of `cols`. */
int conv2d_im2col(oclseg_ctx *ctx, const conv2d_geometry *g, const oclseg_tensor *x, int n0,
                  int count, cl_mem cols, size_t cols_off);

/* cols (count, K, P) at cols_off -> dx images [n0, n0 + count), overwritten (gather form). */
int conv2d_col2im(oclseg_ctx *ctx, const conv2d_geometry *g, cl_mem cols, size_t cols_off,
                  int n0, int count, oclseg_tensor *dx);

/* y (N, Cout, Ho, Wo) += bias (Cout). */
int conv2d_bias_add(oclseg_ctx *ctx, const oclseg_tensor *bias, oclseg_tensor *y);

/* dbias (Cout) = sum of dy (N, Cout, Ho, Wo) over N, Ho, Wo (deterministic). */
int conv2d_bias_grad(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dbias);

/* Upper bound on the scratch bytes used for columns of a chunk of images (at least one image is
 * always processed). 0 restores the default; tests lower it to exercise several chunks. */
void conv2d_set_cols_budget(size_t bytes);

#endif
