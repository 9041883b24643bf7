/* Tensor views: construction, shape checks, host copies. */
#include "oclseg/tensor.h"

oclseg_tensor oclseg_tensor_view(cl_mem buf, size_t off, int n, int c, int h, int w) {
    oclseg_tensor t = {buf, off, n, c, h, w};
    return t;
}

int oclseg_tensor_same_shape(const oclseg_tensor *a, const oclseg_tensor *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

int oclseg_tensor_write(oclseg_ctx *ctx, const oclseg_tensor *t, const float *src) {
    return oclseg_write(ctx, t->buf, t->off * sizeof(float), oclseg_tensor_numel(t) * sizeof(float),
                        src);
}

int oclseg_tensor_read(oclseg_ctx *ctx, const oclseg_tensor *t, float *dst) {
    return oclseg_read(ctx, t->buf, t->off * sizeof(float), oclseg_tensor_numel(t) * sizeof(float),
                       dst);
}
