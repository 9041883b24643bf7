/* Tensors: a view (device buffer + element offset + (N, C, H, W) shape) and host copies. */
#ifndef OCLSEG_TENSOR_H
#define OCLSEG_TENSOR_H

#include "oclseg/runtime.h"

/* A float32 tensor view. Shape is always four named dims; unused trailing dims are 1:
 * activations (N, C, H, W); conv weights (Cout, Cin/groups, KH, KW); a bias or BN vector (C)
 * is stored as (C, 1, 1, 1). `off` counts floats from the start of `buf` (arena views). */
typedef struct oclseg_tensor {
    cl_mem buf;
    size_t off;
    int n, c, h, w;
} oclseg_tensor;

static inline size_t oclseg_tensor_numel(const oclseg_tensor *t) {
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

/* A view into an existing buffer at float offset `off`. */
oclseg_tensor oclseg_tensor_view(cl_mem buf, size_t off, int n, int c, int h, int w);
int oclseg_tensor_same_shape(const oclseg_tensor *a, const oclseg_tensor *b);
/* Host <-> device copies of a whole tensor (blocking). */
int oclseg_tensor_write(oclseg_ctx *ctx, const oclseg_tensor *t, const float *src);
int oclseg_tensor_read(oclseg_ctx *ctx, const oclseg_tensor *t, float *dst);

#endif
