/* Channel concatenation of two NCHW tensors and its backward split: host side of cl/concat.cl. */
#include "oclseg/ops.h"
#include "runtime/kargs.h"

/* a (N, Ca, H, W), b (N, Cb, H, W) and y (N, Ca + Cb, H, W): non-empty, the same N, H, W,
 * uint-indexable. */
static int check_shapes(const char *what, const oclseg_tensor *a, const oclseg_tensor *b,
                        const oclseg_tensor *y) {
    const size_t limit = 0xffffffffu;
    if (a->n < 1 || a->c < 1 || a->h < 1 || a->w < 1 || b->c < 1 || b->n != a->n ||
        b->h != a->h || b->w != a->w || y->n != a->n || y->h != a->h || y->w != a->w ||
        (long)y->c != (long)a->c + b->c) {
        OCLSEG_ERROR("%s: a (%d,%d,%d,%d), b (%d,%d,%d,%d) and y (%d,%d,%d,%d) must be non-empty "
                     "with equal N, H, W and y's channels the sum of a's and b's", what, a->n,
                     a->c, a->h, a->w, b->n, b->c, b->h, b->w, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (a->off + oclseg_tensor_numel(a) > limit || b->off + oclseg_tensor_numel(b) > limit ||
        y->off + oclseg_tensor_numel(y) > limit) {
        OCLSEG_ERROR("%s: a tensor of y (%d,%d,%d,%d) is too large for 32-bit indexing", what,
                     y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_UNSUPPORTED;
    }
    return OCLSEG_OK;
}

/* Copies `c` channels: src's channels [src_c0, src_c0 + c) into dst's [dst_c0, dst_c0 + c). */
static int copy_channels(oclseg_ctx *ctx, const oclseg_tensor *src, int src_c0,
                         const oclseg_tensor *dst, int dst_c0, int c) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "concat", NULL, "copy_channels", &k));
    const size_t hw = (size_t)src->h * src->w;
    kargs a = karg_begin(k);
    karg_tensor(&a, src);
    karg_u32(&a, (size_t)src->c);
    karg_u32(&a, (size_t)src_c0);
    karg_tensor(&a, dst);
    karg_u32(&a, (size_t)dst->c);
    karg_u32(&a, (size_t)dst_c0);
    karg_u32(&a, (size_t)c);
    karg_u32(&a, hw);
    karg_u32(&a, (size_t)src->n);
    TRY(karg_end(&a));
    size_t global[3] = {hw, (size_t)c, (size_t)src->n};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int op_concat_forward(oclseg_ctx *ctx, const oclseg_tensor *a, const oclseg_tensor *b,
                      oclseg_tensor *y) {
    TRY(check_shapes("concat forward", a, b, y));
    TRY(copy_channels(ctx, a, 0, y, 0, a->c));
    return copy_channels(ctx, b, 0, y, a->c, b->c);
}

int op_concat_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *da,
                       oclseg_tensor *db) {
    if (!da && !db) return OCLSEG_OK;
    if (!da || !db) { /* the missing one's shape: the rest of dy's channels */
        const oclseg_tensor *given = da ? da : db;
        oclseg_tensor other = *given;
        other.c = dy->c - given->c;
        TRY(check_shapes("concat backward", da ? da : &other, db ? db : &other, dy));
    } else {
        TRY(check_shapes("concat backward", da, db, dy));
    }
    const int ca = da ? da->c : dy->c - db->c;
    if (da) TRY(copy_channels(ctx, dy, 0, da, 0, da->c));
    if (db) TRY(copy_channels(ctx, dy, ca, db, 0, db->c));
    return OCLSEG_OK;
}
