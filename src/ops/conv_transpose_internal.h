/* ConvTranspose2d's column kernels (cl/conv_transpose.cl), exposed so tests can check them
 * without CLBlast (under Oclgrind). Column layout for images [n0, n0 + nb):
 * cols (nb, Cout*KH*KW, H*W) at element offset cols_off, row (co*KH + ky)*KW + kx, column
 * iy*W + ix, where (H, W) is the spatial size of the conv-transpose *input* x. */
#ifndef OCLSEG_CONV_TRANSPOSE_INTERNAL_H
#define OCLSEG_CONV_TRANSPOSE_INTERNAL_H

#include "oclseg/tensor.h"

/* Column workspace limit in bytes (default 64 MiB; at least one image is always processed).
 * The batch is processed in chunks of as many images as fit; tests lower it to exercise that. */
extern size_t convt_cols_max_bytes;

/* Forward scatter written as a gather: for images n0..n0+nb-1 of y (N, Cout, Ho, Wo),
 * y[n, co, oy, ox] = bias[co] (0 if bias NULL) + sum of cols entries landing on (oy, ox),
 * then max(y, 0) if relu. */
int convt_col2im(oclseg_ctx *ctx, cl_mem cols, size_t cols_off, const oclseg_tensor *bias,
                 oclseg_tensor *y, int n0, int nb, int h, int w, int kh, int kw, int stride,
                 int pad, int relu);

/* Backward: cols = im2col(dy) for images n0..n0+nb-1 of dy (N, Cout, Ho, Wo), i.e.
 * cols[n * img_stride + (co, ky, kx) * row_stride + (iy, ix)] =
 * dy[n, co, iy*stride - pad + ky, ix*stride - pad + kx] or 0. interleaved = 0: img_stride =
 * rows*H*W, row_stride = H*W (a (rows, HW) matrix per image); 1: img_stride = H*W, row_stride =
 * nb*H*W (one (rows, nb*HW) matrix for the chunk). */
int convt_im2col(oclseg_ctx *ctx, const oclseg_tensor *dy, int n0, int nb, int h, int w, int kh,
                 int kw, int stride, int pad, cl_mem cols, size_t cols_off, int interleaved);

/* packed (C, nb*HW) = images n0..n0+nb-1 of x (N, C, H, W) side by side per channel:
 * packed[packed_off + (c*nb + i)*HW + p] = x[n0 + i, c, p]. */
int convt_pack_images(oclseg_ctx *ctx, const oclseg_tensor *x, int n0, int nb, cl_mem packed,
                      size_t packed_off);

#endif
