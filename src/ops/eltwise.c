/* Elementwise ops (relu, relu6, add, sigmoid): host side of cl/eltwise.cl. */
#include "oclseg/ops.h"
#include "runtime/kargs.h"

/* Runs kernel(a, a_off, [b, b_off,] y, y_off, n) over n elements; b NULL: a unary kernel. */
static int run_eltwise(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *a,
                       const oclseg_tensor *b, oclseg_tensor *y) {
    if (!b && !oclseg_tensor_same_shape(a, y)) {
        OCLSEG_ERROR("%s: shape mismatch x (%d,%d,%d,%d) vs y (%d,%d,%d,%d)", kernel_name, a->n,
                     a->c, a->h, a->w, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (b && (!oclseg_tensor_same_shape(a, b) || !oclseg_tensor_same_shape(a, y))) {
        OCLSEG_ERROR("%s: shape mismatch (%d,%d,%d,%d), (%d,%d,%d,%d) -> (%d,%d,%d,%d)",
                     kernel_name, a->n, a->c, a->h, a->w, b->n, b->c, b->h, b->w, y->n, y->c,
                     y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "eltwise", NULL, kernel_name, &k));
    size_t global = oclseg_tensor_numel(a);
    kargs args = karg_begin(k);
    karg_tensor(&args, a);
    if (b) karg_tensor(&args, b);
    karg_tensor(&args, y);
    karg_u32(&args, global);
    TRY(karg_end(&args));
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

static int run_unary(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *x,
                     oclseg_tensor *y) {
    return run_eltwise(ctx, kernel_name, x, NULL, y);
}

static int run_binary(oclseg_ctx *ctx, const char *kernel_name, const oclseg_tensor *a,
                      const oclseg_tensor *b, oclseg_tensor *y) {
    return run_eltwise(ctx, kernel_name, a, b, y);
}

int op_relu_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y) {
    return run_unary(ctx, "relu_forward", x, y);
}

int op_relu_backward(oclseg_ctx *ctx, const oclseg_tensor *y, const oclseg_tensor *dy,
                     oclseg_tensor *dx) {
    return run_binary(ctx, "relu_backward", y, dy, dx);
}

int op_relu6_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y) {
    return run_unary(ctx, "relu6_forward", x, y);
}

int op_relu6_backward(oclseg_ctx *ctx, const oclseg_tensor *y, const oclseg_tensor *dy,
                      oclseg_tensor *dx) {
    return run_binary(ctx, "relu6_backward", y, dy, dx);
}

int op_add(oclseg_ctx *ctx, const oclseg_tensor *a, const oclseg_tensor *b, oclseg_tensor *y) {
    return run_binary(ctx, "add_forward", a, b, y);
}

int op_sigmoid(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y) {
    return run_unary(ctx, "sigmoid_forward", x, y);
}
