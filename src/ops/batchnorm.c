/* BatchNorm2d forward (train/eval) and backward (train/eval): host side of cl/batchnorm.cl. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"
#include "ops/batchnorm_sync.h"

/* Values each work-item of a *_partial kernel reduces sequentially; a chunk holds
 * wg * BN_ITEMS_PER_ITEM values of one channel. 16 keeps the partials few (C * M / 512 at most)
 * while leaving many work-groups when C is small and M large (32 x 16x64x64: 2048 groups at
 * wg 64). */
#define BN_ITEMS_PER_ITEM 16

/* How a per-channel reduction over M values is split (see cl/batchnorm.cl). */
typedef struct reduce_plan {
    size_t wg;          /* work-group size L: a power of two <= REDUCE_WG and the kernel's limit;
                         * 0: the CPU form, one work-item per (chunk, channel) */
    cl_uint chunk_len;  /* values per (chunk, channel) work-group */
    cl_uint chunks;     /* chunks per channel */
} reduce_plan;

/* Values per (chunk, channel) item of the CPU forms (*_rows): whole planes, at least this many. */
#define BN_ROWS_MIN_CHUNK 4096

/* The partial kernel of reduction `base` ("bn_stats" or "bn_grad") over m values per channel in
 * planes of hw, and its plan: the work-group tree (`base`_partial) or, on CPU devices, one item
 * per chunk of whole planes (`base`_rows, plan->wg = 0). */
static int partial_kernel(oclseg_ctx *ctx, const char *base, size_t m, size_t hw, cl_kernel *k,
                          reduce_plan *plan) {
    char name[32];
    const int rows = oclseg_use_row_kernels(ctx);
    snprintf(name, sizeof name, "%s_%s", base, rows ? "rows" : "partial");
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, name, k));
    if (rows) {
        const size_t planes = hw >= BN_ROWS_MIN_CHUNK ? 1 : (BN_ROWS_MIN_CHUNK + hw - 1) / hw;
        plan->wg = 0;
        plan->chunk_len = (cl_uint)(planes * hw);
    } else {
        plan->wg = oclseg_reduce_wg(ctx, "batchnorm", *k);
        plan->chunk_len = (cl_uint)(plan->wg * BN_ITEMS_PER_ITEM);
    }
    plan->chunks = (cl_uint)((m + plan->chunk_len - 1) / plan->chunk_len);
    return OCLSEG_OK;
}

/* Launches a partial kernel: one work-group per (chunk, channel), or one item (*_rows). */
static int launch_partial(oclseg_ctx *ctx, cl_kernel k, const reduce_plan *plan, int channels) {
    if (plan->wg == 0) {
        size_t global[2] = {(size_t)plan->chunks, (size_t)channels};
        return oclseg_launch(ctx, k, 2, global, NULL);
    }
    size_t global[2] = {(size_t)plan->chunks * plan->wg, (size_t)channels};
    size_t local[2] = {plan->wg, 1};
    return oclseg_launch(ctx, k, 2, global, local);
}

/* Kernels index with 32-bit element offsets. */
static int fits_u32(const oclseg_tensor *t) {
    return t->off + oclseg_tensor_numel(t) <= (size_t)UINT_MAX;
}

/* x must be a non-empty activation, y (if given) the same shape. */
static int check_activation(const char *op, const oclseg_tensor *x, const char *y_name,
                            const oclseg_tensor *y) {
    if (x->n <= 0 || x->c <= 0 || x->h <= 0 || x->w <= 0 || !fits_u32(x)) {
        OCLSEG_ERROR("%s: invalid input shape (%d,%d,%d,%d) at offset %zu", op, x->n, x->c, x->h,
                     x->w, x->off);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (y && (!oclseg_tensor_same_shape(x, y) || !fits_u32(y))) {
        OCLSEG_ERROR("%s: shape mismatch x (%d,%d,%d,%d) vs %s (%d,%d,%d,%d)", op, x->n, x->c,
                     x->h, x->w, y_name, y->n, y->c, y->h, y->w);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* A per-channel vector must hold exactly C values (stored as (C, 1, 1, 1)). */
static int check_vector(const char *op, const char *name, const oclseg_tensor *v, int channels) {
    if (!v || oclseg_tensor_numel(v) != (size_t)channels || !fits_u32(v)) {
        if (!v)
            OCLSEG_ERROR("%s: %s is NULL", op, name);
        else
            OCLSEG_ERROR("%s: %s has shape (%d,%d,%d,%d), expected %d values (one per channel)",
                         op, name, v->n, v->c, v->h, v->w, channels);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* y = (x - mean) * invstd * gamma + beta, per channel; mean/invstd given as (buffer, offset). */
static int launch_apply(oclseg_ctx *ctx, const oclseg_tensor *x, cl_mem mean, cl_uint mean_off,
                        cl_mem invstd, cl_uint invstd_off, const oclseg_tensor *gamma,
                        const oclseg_tensor *beta, oclseg_tensor *y, int relu6) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_apply", &k));
    cl_uint x_off = (cl_uint)x->off, gamma_off = (cl_uint)gamma->off;
    cl_uint beta_off = (cl_uint)beta->off, y_off = (cl_uint)y->off;
    cl_uint channels = (cl_uint)x->c, hw = (cl_uint)(x->h * x->w);
    cl_uint total = (cl_uint)oclseg_tensor_numel(x);
    KARG(k, 0, x->buf);
    KARG(k, 1, x_off);
    KARG(k, 2, mean);
    KARG(k, 3, mean_off);
    KARG(k, 4, invstd);
    KARG(k, 5, invstd_off);
    KARG(k, 6, gamma->buf);
    KARG(k, 7, gamma_off);
    KARG(k, 8, beta->buf);
    KARG(k, 9, beta_off);
    KARG(k, 10, y->buf);
    KARG(k, 11, y_off);
    KARG(k, 12, channels);
    KARG(k, 13, hw);
    KARG(k, 14, total);
    cl_uint fuse = relu6 ? 1u : 0u;
    KARG(k, 15, fuse);
    /* (HW, C, N): no per-element division in the kernel */
    size_t global[3] = {(size_t)hw, (size_t)channels, (size_t)total / ((size_t)hw * channels)};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

/* invstd (scratch at invstd_off, C floats) = 1 / sqrt(var + eps). */
static int launch_invstd(oclseg_ctx *ctx, const oclseg_tensor *var, float eps, cl_mem invstd,
                         cl_uint invstd_off) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_invstd_from_var", &k));
    cl_uint var_off = (cl_uint)var->off, channels = (cl_uint)oclseg_tensor_numel(var);
    KARG(k, 0, var->buf);
    KARG(k, 1, var_off);
    KARG(k, 2, eps);
    KARG(k, 3, invstd);
    KARG(k, 4, invstd_off);
    KARG(k, 5, channels);
    size_t global = channels;
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

int op_batchnorm_forward_train(oclseg_ctx *ctx, const oclseg_tensor *x,
                               const oclseg_tensor *gamma, const oclseg_tensor *beta,
                               oclseg_tensor *running_mean, oclseg_tensor *running_var,
                               oclseg_tensor *y, oclseg_tensor *save_mean,
                               oclseg_tensor *save_invstd, float momentum, float eps) {
    return op_batchnorm_forward_train_act(ctx, x, gamma, beta, running_mean, running_var, y,
                                          save_mean, save_invstd, momentum, eps, 0);
}

int op_batchnorm_forward_train_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                   const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                   oclseg_tensor *running_mean, oclseg_tensor *running_var,
                                   oclseg_tensor *y, oclseg_tensor *save_mean,
                                   oclseg_tensor *save_invstd, float momentum, float eps,
                                   int relu6) {
    return op_batchnorm_forward_train_sync(ctx, x, gamma, beta, running_mean, running_var, y,
                                           save_mean, save_invstd, momentum, eps, relu6, NULL);
}

int op_batchnorm_forward_train_sync(oclseg_ctx *ctx, const oclseg_tensor *x,
                                    const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                    oclseg_tensor *running_mean, oclseg_tensor *running_var,
                                    oclseg_tensor *y, oclseg_tensor *save_mean,
                                    oclseg_tensor *save_invstd, float momentum, float eps,
                                    int relu6, const op_bn_sync *sync) {
    static const char op[] = "batchnorm_forward_train";
    if (!x || !y) {
        OCLSEG_ERROR("%s: x and y are required", op);
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(check_activation(op, x, "y", y));
    const int channels = x->c;
    TRY(check_vector(op, "gamma", gamma, channels));
    TRY(check_vector(op, "beta", beta, channels));
    TRY(check_vector(op, "running_mean", running_mean, channels));
    TRY(check_vector(op, "running_var", running_var, channels));
    TRY(check_vector(op, "save_mean", save_mean, channels));
    TRY(check_vector(op, "save_invstd", save_invstd, channels));
    const size_t m = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    if (m <= 1 && !sync) { /* sync: the global count is checked in bn_sync_stats */
        OCLSEG_ERROR("%s: Expected more than 1 value per channel when training, got input size "
                     "(%d,%d,%d,%d)", op, x->n, x->c, x->h, x->w);
        return OCLSEG_ERR_INVALID_ARG;
    }

    cl_kernel k_partial, k_finalize;
    reduce_plan plan;
    TRY(partial_kernel(ctx, "bn_stats", m, (size_t)x->h * x->w, &k_partial, &plan));
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_stats_finalize", &k_finalize));
    cl_mem part; // (C, chunks, 2): {mean, sum of squared deviations} per chunk
    TRY(oclseg_scratch(ctx, (size_t)channels * plan.chunks * 2 * sizeof(float), &part));

    cl_uint x_off = (cl_uint)x->off, c_u = (cl_uint)channels, hw = (cl_uint)(x->h * x->w);
    cl_uint m_u = (cl_uint)m, part_off = 0;
    KARG(k_partial, 0, x->buf);
    KARG(k_partial, 1, x_off);
    KARG(k_partial, 2, c_u);
    KARG(k_partial, 3, hw);
    KARG(k_partial, 4, m_u);
    KARG(k_partial, 5, plan.chunk_len);
    KARG(k_partial, 6, plan.chunks);
    KARG(k_partial, 7, part);
    KARG(k_partial, 8, part_off);
    TRY(launch_partial(ctx, k_partial, &plan, channels));
    if (sync) {
        /* the partials become one global {mean, M2} per channel: finalize as one chunk */
        cl_uint m_global;
        TRY(bn_sync_stats(ctx, part, plan.chunks, plan.chunk_len, m_u, c_u, sync, &m_global));
        plan.chunks = 1;
        plan.chunk_len = m_u = m_global;
    }

    cl_uint rm_off = (cl_uint)running_mean->off, rv_off = (cl_uint)running_var->off;
    cl_uint sm_off = (cl_uint)save_mean->off, si_off = (cl_uint)save_invstd->off;
    KARG(k_finalize, 0, part);
    KARG(k_finalize, 1, part_off);
    KARG(k_finalize, 2, plan.chunks);
    KARG(k_finalize, 3, plan.chunk_len);
    KARG(k_finalize, 4, m_u);
    KARG(k_finalize, 5, c_u);
    KARG(k_finalize, 6, eps);
    KARG(k_finalize, 7, momentum);
    KARG(k_finalize, 8, running_mean->buf);
    KARG(k_finalize, 9, rm_off);
    KARG(k_finalize, 10, running_var->buf);
    KARG(k_finalize, 11, rv_off);
    KARG(k_finalize, 12, save_mean->buf);
    KARG(k_finalize, 13, sm_off);
    KARG(k_finalize, 14, save_invstd->buf);
    KARG(k_finalize, 15, si_off);
    size_t global = (size_t)channels;
    TRY(oclseg_launch(ctx, k_finalize, 1, &global, NULL));

    return launch_apply(ctx, x, save_mean->buf, sm_off, save_invstd->buf, si_off, gamma, beta, y,
                        relu6);
}

int op_batchnorm_forward_eval(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *gamma,
                              const oclseg_tensor *beta, const oclseg_tensor *running_mean,
                              const oclseg_tensor *running_var, oclseg_tensor *y, float eps) {
    return op_batchnorm_forward_eval_act(ctx, x, gamma, beta, running_mean, running_var, y, eps, 0);
}

int op_batchnorm_forward_eval_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                  const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                  const oclseg_tensor *running_mean,
                                  const oclseg_tensor *running_var, oclseg_tensor *y, float eps,
                                  int relu6) {
    static const char op[] = "batchnorm_forward_eval";
    if (!x || !y) {
        OCLSEG_ERROR("%s: x and y are required", op);
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(check_activation(op, x, "y", y));
    const int channels = x->c;
    TRY(check_vector(op, "gamma", gamma, channels));
    TRY(check_vector(op, "beta", beta, channels));
    TRY(check_vector(op, "running_mean", running_mean, channels));
    TRY(check_vector(op, "running_var", running_var, channels));

    cl_mem invstd; // (C) 1 / sqrt(running_var + eps)
    TRY(oclseg_scratch(ctx, (size_t)channels * sizeof(float), &invstd));
    TRY(launch_invstd(ctx, running_var, eps, invstd, 0));
    return launch_apply(ctx, x, running_mean->buf, (cl_uint)running_mean->off, invstd, 0, gamma,
                        beta, y, relu6);
}

/* Shared by both backwards: per-channel sum(dy) and sum(dy * xhat) into scratch
 * (sums at sums_off, (C, 2)), and dgamma/dbeta when requested. mean and invstd are
 * (buffer, offset) pairs of C values. Partials live in scratch at part_off. */
static int reduce_grads(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                        cl_mem mean, cl_uint mean_off, cl_mem invstd, cl_uint invstd_off,
                        cl_mem scratch, const reduce_plan *plan, cl_uint part_off,
                        cl_uint sums_off, oclseg_tensor *dgamma, oclseg_tensor *dbeta,
                        cl_kernel k_partial) {
    cl_kernel k_finalize;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_grad_finalize", &k_finalize));
    cl_uint x_off = (cl_uint)x->off, dy_off = (cl_uint)dy->off, c_u = (cl_uint)x->c;
    cl_uint hw = (cl_uint)(x->h * x->w), m_u = (cl_uint)((size_t)x->n * x->h * x->w);
    KARG(k_partial, 0, x->buf);
    KARG(k_partial, 1, x_off);
    KARG(k_partial, 2, dy->buf);
    KARG(k_partial, 3, dy_off);
    KARG(k_partial, 4, mean);
    KARG(k_partial, 5, mean_off);
    KARG(k_partial, 6, c_u);
    KARG(k_partial, 7, hw);
    KARG(k_partial, 8, m_u);
    KARG(k_partial, 9, plan->chunk_len);
    KARG(k_partial, 10, plan->chunks);
    KARG(k_partial, 11, scratch);
    KARG(k_partial, 12, part_off);
    TRY(launch_partial(ctx, k_partial, plan, x->c));

    /* A NULL output is not written: the kernel gets the scratch buffer and a 0 flag. */
    cl_int write_dgamma = dgamma != NULL, write_dbeta = dbeta != NULL;
    cl_mem dgamma_buf = dgamma ? dgamma->buf : scratch, dbeta_buf = dbeta ? dbeta->buf : scratch;
    cl_uint dgamma_off = dgamma ? (cl_uint)dgamma->off : 0, dbeta_off = dbeta ? (cl_uint)dbeta->off : 0;
    KARG(k_finalize, 0, scratch);
    KARG(k_finalize, 1, part_off);
    KARG(k_finalize, 2, plan->chunks);
    KARG(k_finalize, 3, c_u);
    KARG(k_finalize, 4, invstd);
    KARG(k_finalize, 5, invstd_off);
    KARG(k_finalize, 6, scratch);
    KARG(k_finalize, 7, sums_off);
    KARG(k_finalize, 8, dgamma_buf);
    KARG(k_finalize, 9, dgamma_off);
    KARG(k_finalize, 10, write_dgamma);
    KARG(k_finalize, 11, dbeta_buf);
    KARG(k_finalize, 12, dbeta_off);
    KARG(k_finalize, 13, write_dbeta);
    size_t global = (size_t)x->c;
    return oclseg_launch(ctx, k_finalize, 1, &global, NULL);
}

/* Checks shared by both backwards. */
static int check_backward(const char *op, const oclseg_tensor *x, const oclseg_tensor *dy,
                          const oclseg_tensor *dx, const oclseg_tensor *dgamma,
                          const oclseg_tensor *dbeta) {
    if (!x || !dy) {
        OCLSEG_ERROR("%s: x and dy are required", op);
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(check_activation(op, x, "dy", dy));
    if (dx) TRY(check_activation(op, x, "dx", dx));
    if (dgamma) TRY(check_vector(op, "dgamma", dgamma, x->c));
    if (dbeta) TRY(check_vector(op, "dbeta", dbeta, x->c));
    return OCLSEG_OK;
}

int op_batchnorm_backward_train(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                                const oclseg_tensor *gamma, const oclseg_tensor *save_mean,
                                const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                oclseg_tensor *dgamma, oclseg_tensor *dbeta) {
    return op_batchnorm_backward_train_sync(ctx, x, dy, gamma, save_mean, save_invstd, dx, dgamma,
                                            dbeta, NULL);
}

int op_batchnorm_backward_train_sync(oclseg_ctx *ctx, const oclseg_tensor *x,
                                     const oclseg_tensor *dy, const oclseg_tensor *gamma,
                                     const oclseg_tensor *save_mean,
                                     const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                     oclseg_tensor *dgamma, oclseg_tensor *dbeta,
                                     const op_bn_sync *sync) {
    static const char op[] = "batchnorm_backward_train";
    TRY(check_backward(op, x, dy, dx, dgamma, dbeta));
    const int channels = x->c;
    TRY(check_vector(op, "gamma", gamma, channels));
    TRY(check_vector(op, "save_mean", save_mean, channels));
    TRY(check_vector(op, "save_invstd", save_invstd, channels));
    if (!dx && !dgamma && !dbeta && !sync) return OCLSEG_OK; /* sync: the others wait for us */

    const size_t m = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    cl_kernel k_partial;
    reduce_plan plan;
    TRY(partial_kernel(ctx, "bn_grad", m, (size_t)x->h * x->w, &k_partial, &plan));
    /* scratch: sums (C, 2) {sum dy, sum dy*xhat}, then partials (C, chunks, 2) */
    const cl_uint sums_off = 0, part_off = (cl_uint)(2 * channels);
    cl_mem scratch;
    TRY(oclseg_scratch(ctx, ((size_t)part_off + (size_t)channels * plan.chunks * 2) * sizeof(float),
                       &scratch));
    cl_uint sm_off = (cl_uint)save_mean->off, si_off = (cl_uint)save_invstd->off;
    TRY(reduce_grads(ctx, x, dy, save_mean->buf, sm_off, save_invstd->buf, si_off, scratch, &plan,
                     part_off, sums_off, dgamma, dbeta, k_partial));
    cl_uint m_u = (cl_uint)m;
    if (sync) TRY(bn_sync_grad_sums(ctx, scratch, sums_off, (cl_uint)channels, sync, &m_u));
    if (!dx) return OCLSEG_OK;

    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_backward_train_dx", &k));
    cl_uint x_off = (cl_uint)x->off, dy_off = (cl_uint)dy->off, gamma_off = (cl_uint)gamma->off;
    cl_uint dx_off = (cl_uint)dx->off, c_u = (cl_uint)channels, hw = (cl_uint)(x->h * x->w);
    cl_uint total = (cl_uint)oclseg_tensor_numel(x);
    KARG(k, 0, x->buf);
    KARG(k, 1, x_off);
    KARG(k, 2, dy->buf);
    KARG(k, 3, dy_off);
    KARG(k, 4, save_mean->buf);
    KARG(k, 5, sm_off);
    KARG(k, 6, save_invstd->buf);
    KARG(k, 7, si_off);
    KARG(k, 8, gamma->buf);
    KARG(k, 9, gamma_off);
    KARG(k, 10, scratch);
    KARG(k, 11, sums_off);
    KARG(k, 12, dx->buf);
    KARG(k, 13, dx_off);
    KARG(k, 14, c_u);
    KARG(k, 15, hw);
    KARG(k, 16, m_u);
    KARG(k, 17, total);
    /* (HW, C, N): no per-element division in the kernel */
    size_t global[3] = {(size_t)hw, (size_t)c_u, (size_t)total / ((size_t)hw * c_u)};
    return oclseg_launch(ctx, k, 3, global, NULL);
}

int op_batchnorm_backward_eval(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                               const oclseg_tensor *gamma, const oclseg_tensor *running_mean,
                               const oclseg_tensor *running_var, float eps, oclseg_tensor *dx,
                               oclseg_tensor *dgamma, oclseg_tensor *dbeta) {
    static const char op[] = "batchnorm_backward_eval";
    TRY(check_backward(op, x, dy, dx, dgamma, dbeta));
    const int channels = x->c;
    TRY(check_vector(op, "gamma", gamma, channels));
    TRY(check_vector(op, "running_mean", running_mean, channels));
    TRY(check_vector(op, "running_var", running_var, channels));
    if (!dx && !dgamma && !dbeta) return OCLSEG_OK;

    const size_t m = (size_t)x->n * (size_t)x->h * (size_t)x->w;
    reduce_plan plan = {0, 0, 0};
    cl_kernel k_partial = NULL;
    if (dgamma || dbeta) {
        TRY(partial_kernel(ctx, "bn_grad", m, (size_t)x->h * x->w, &k_partial, &plan));
    }
    /* scratch: invstd (C), sums (C, 2), then partials (C, chunks, 2) */
    const cl_uint invstd_off = 0, sums_off = (cl_uint)channels, part_off = (cl_uint)(3 * channels);
    cl_mem scratch;
    TRY(oclseg_scratch(ctx, ((size_t)part_off + (size_t)channels * plan.chunks * 2) * sizeof(float),
                       &scratch));
    TRY(launch_invstd(ctx, running_var, eps, scratch, invstd_off));
    if (dgamma || dbeta)
        TRY(reduce_grads(ctx, x, dy, running_mean->buf, (cl_uint)running_mean->off, scratch,
                         invstd_off, scratch, &plan, part_off, sums_off, dgamma, dbeta,
                         k_partial));
    if (!dx) return OCLSEG_OK;

    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_backward_eval_dx", &k));
    cl_uint dy_off = (cl_uint)dy->off, gamma_off = (cl_uint)gamma->off, dx_off = (cl_uint)dx->off;
    cl_uint c_u = (cl_uint)channels, hw = (cl_uint)(x->h * x->w);
    cl_uint total = (cl_uint)oclseg_tensor_numel(x);
    KARG(k, 0, dy->buf);
    KARG(k, 1, dy_off);
    KARG(k, 2, scratch);
    KARG(k, 3, invstd_off);
    KARG(k, 4, gamma->buf);
    KARG(k, 5, gamma_off);
    KARG(k, 6, dx->buf);
    KARG(k, 7, dx_off);
    KARG(k, 8, c_u);
    KARG(k, 9, hw);
    KARG(k, 10, total);
    /* (HW, C, N): no per-element division in the kernel */
    size_t global[3] = {(size_t)hw, (size_t)c_u, (size_t)total / ((size_t)hw * c_u)};
    return oclseg_launch(ctx, k, 3, global, NULL);
}
