/* Tensor views and owning tensors: creation, release, shape checks, host copies. */
#include "oclseg/tensor.h"

int oclseg_tensor_create(oclseg_ctx *ctx, oclseg_tensor *t, int n, int c, int h, int w,
                         const char *what) {
    *t = oclseg_tensor_view(NULL, 0, n, c, h, w);
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) {
        OCLSEG_ERROR("invalid tensor shape (%d, %d, %d, %d) for %s", n, c, h, w,
                     what ? what : "a tensor");
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(oclseg_buffer_create(ctx, oclseg_tensor_numel(t) * sizeof(float), what, &t->buf));
    t->owned = 1;
    return OCLSEG_OK;
}

void oclseg_tensor_free(oclseg_ctx *ctx, oclseg_tensor *t) {
    if (t->owned && t->buf) oclseg_buffer_free(ctx, t->buf, oclseg_tensor_numel(t) * sizeof(float));
    t->buf = NULL;
    t->owned = 0;
}

oclseg_tensor oclseg_tensor_view(cl_mem buf, size_t off, int n, int c, int h, int w) {
    oclseg_tensor t = {buf, off, n, c, h, w, 0};
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
