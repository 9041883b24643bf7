/* BatchNorm2d forward (train/eval) and backward (train/eval): host side of cl/batchnorm.cl. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/ops.h"
#include "ops/reduce.h"
#include "runtime/kargs.h"
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
    return reduce_launch(ctx, k, plan->wg, plan->chunks, (size_t)channels);
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

/* A per-element kernel of cl/batchnorm.cl (BN_PER_ELEMENT) in the form for this device: `name`
 * over (HW, C, N) or, with the row kernels, `name`_rows over (C, N), an item per plane. The
 * form is chosen once here and the launch follows it. */
typedef struct bn_element_kernel {
    cl_kernel k;
    int rows;
} bn_element_kernel;

static int per_element_kernel(oclseg_ctx *ctx, const char *name, bn_element_kernel *out) {
    char full[48];
    out->rows = oclseg_use_row_kernels(ctx);
    snprintf(full, sizeof full, "%s%s", name, out->rows ? "_rows" : "");
    return oclseg_kernel_get(ctx, "batchnorm", NULL, full, &out->k);
}

/* Launches a kernel of per_element_kernel over x in its form. */
static int launch_per_element(oclseg_ctx *ctx, const bn_element_kernel *ek,
                              const oclseg_tensor *x) {
    if (ek->rows) {
        size_t global[2] = {(size_t)x->c, (size_t)x->n};
        return oclseg_launch(ctx, ek->k, 2, global, NULL);
    }
    size_t global[3] = {(size_t)x->h * x->w, (size_t)x->c, (size_t)x->n};
    return oclseg_launch(ctx, ek->k, 3, global, NULL);
}

/* Checks shared by both forwards: x and y, and the four per-channel vectors. */
static int check_forward(const char *op, const oclseg_tensor *x, const oclseg_tensor *y,
                         const oclseg_tensor *gamma, const oclseg_tensor *beta,
                         const oclseg_tensor *running_mean, const oclseg_tensor *running_var) {
    if (!x || !y) {
        OCLSEG_ERROR("%s: x and y are required", op);
        return OCLSEG_ERR_INVALID_ARG;
    }
    TRY(check_activation(op, x, "y", y));
    TRY(check_vector(op, "gamma", gamma, x->c));
    TRY(check_vector(op, "beta", beta, x->c));
    TRY(check_vector(op, "running_mean", running_mean, x->c));
    return check_vector(op, "running_var", running_var, x->c);
}

/* y = (x - mean) * invstd * gamma + beta, per channel; mean/invstd given as (buffer, offset). */
static int launch_apply(oclseg_ctx *ctx, const oclseg_tensor *x, cl_mem mean, cl_uint mean_off,
                        cl_mem invstd, cl_uint invstd_off, const oclseg_tensor *gamma,
                        const oclseg_tensor *beta, oclseg_tensor *y, int relu6) {
    bn_element_kernel ek;
    TRY(per_element_kernel(ctx, "bn_apply", &ek));
    cl_uint channels = (cl_uint)x->c, hw = (cl_uint)(x->h * x->w);
    cl_uint total = (cl_uint)oclseg_tensor_numel(x);
    cl_uint fuse = relu6 ? 1u : 0u;
    kargs a = karg_begin(ek.k);
    karg_tensor(&a, x);
    karg_mem(&a, mean);
    karg_u32(&a, mean_off);
    karg_mem(&a, invstd);
    karg_u32(&a, invstd_off);
    karg_tensor(&a, gamma);
    karg_tensor(&a, beta);
    karg_tensor(&a, y);
    karg_u32(&a, channels);
    karg_u32(&a, hw);
    karg_u32(&a, total);
    karg_u32(&a, fuse);
    TRY(karg_end(&a));
    return launch_per_element(ctx, &ek, x);
}

/* invstd (scratch at invstd_off, C floats) = 1 / sqrt(var + eps). */
static int launch_invstd(oclseg_ctx *ctx, const oclseg_tensor *var, float eps, cl_mem invstd,
                         cl_uint invstd_off) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_invstd_from_var", &k));
    cl_uint channels = (cl_uint)oclseg_tensor_numel(var);
    kargs a = karg_begin(k);
    karg_tensor(&a, var);
    karg_f32(&a, eps);
    karg_mem(&a, invstd);
    karg_u32(&a, invstd_off);
    karg_u32(&a, channels);
    TRY(karg_end(&a));
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
    TRY(check_forward(op, x, y, gamma, beta, running_mean, running_var));
    const int channels = x->c;
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

    cl_uint c_u = (cl_uint)channels, hw = (cl_uint)(x->h * x->w);
    cl_uint m_u = (cl_uint)m, part_off = 0;
    kargs a = karg_begin(k_partial);
    karg_tensor(&a, x);
    karg_u32(&a, c_u);
    karg_u32(&a, hw);
    karg_u32(&a, m_u);
    karg_u32(&a, plan.chunk_len);
    karg_u32(&a, plan.chunks);
    karg_mem(&a, part);
    karg_u32(&a, part_off);
    TRY(karg_end(&a));
    TRY(launch_partial(ctx, k_partial, &plan, channels));
    if (sync) {
        /* the partials become one global {mean, M2} per channel: finalize as one chunk */
        cl_uint m_global;
        TRY(bn_sync_stats(ctx, part, plan.chunks, plan.chunk_len, m_u, c_u, sync, &m_global));
        plan.chunks = 1;
        plan.chunk_len = m_u = m_global;
    }

    cl_uint sm_off = (cl_uint)save_mean->off, si_off = (cl_uint)save_invstd->off;
    a = karg_begin(k_finalize);
    karg_mem(&a, part);
    karg_u32(&a, part_off);
    karg_u32(&a, plan.chunks);
    karg_u32(&a, plan.chunk_len);
    karg_u32(&a, m_u);
    karg_u32(&a, c_u);
    karg_f32(&a, eps);
    karg_f32(&a, momentum);
    karg_tensor(&a, running_mean);
    karg_tensor(&a, running_var);
    karg_tensor(&a, save_mean);
    karg_tensor(&a, save_invstd);
    TRY(karg_end(&a));
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
    TRY(check_forward(op, x, y, gamma, beta, running_mean, running_var));
    const int channels = x->c;

    cl_mem invstd; // (C) 1 / sqrt(running_var + eps)
    TRY(oclseg_scratch(ctx, (size_t)channels * sizeof(float), &invstd));
    TRY(launch_invstd(ctx, running_var, eps, invstd, 0));
    return launch_apply(ctx, x, running_mean->buf, (cl_uint)running_mean->off, invstd, 0, gamma,
                        beta, y, relu6);
}

/* A ReLU6 fused into the backward (the forward ran bn_apply with relu6): the partial kernels
 * recompute the forward's output from x with these statistics and parameters to mask dy. */
typedef struct bn_relu6 {
    int on;
    cl_mem invstd;
    cl_uint invstd_off;
    const oclseg_tensor *gamma, *beta;
} bn_relu6;

/* The partial kernels' BN_RELU6_ARGS (cl/batchnorm.cl); without the ReLU6, x's buffer stands in
 * for the unread vectors. */
static void karg_relu6(kargs *a, const bn_relu6 *r, const oclseg_tensor *x) {
    karg_mem(a, r->on ? r->invstd : x->buf);
    karg_u32(a, r->on ? r->invstd_off : 0);
    if (r->on) {
        karg_tensor(a, r->gamma);
        karg_tensor(a, r->beta);
    } else {
        karg_tensor(a, x);
        karg_tensor(a, x);
    }
    karg_u32(a, r->on ? 1u : 0u);
}

/* Shared by both backwards: per-channel sum(dy) and sum(dy * xhat) into scratch
 * (sums at sums_off, (C, 2)), and dgamma/dbeta when requested. mean and invstd are
 * (buffer, offset) pairs of C values. Partials live in scratch at part_off. */
static int reduce_grads(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                        cl_mem mean, cl_uint mean_off, cl_mem invstd, cl_uint invstd_off,
                        cl_mem scratch, const reduce_plan *plan, cl_uint part_off,
                        cl_uint sums_off, oclseg_tensor *dgamma, oclseg_tensor *dbeta,
                        cl_kernel k_partial, const bn_relu6 *relu6) {
    cl_kernel k_finalize;
    TRY(oclseg_kernel_get(ctx, "batchnorm", NULL, "bn_grad_finalize", &k_finalize));
    cl_uint c_u = (cl_uint)x->c;
    cl_uint hw = (cl_uint)(x->h * x->w), m_u = (cl_uint)((size_t)x->n * x->h * x->w);
    kargs a = karg_begin(k_partial);
    karg_tensor(&a, x);
    karg_tensor(&a, dy);
    karg_mem(&a, mean);
    karg_u32(&a, mean_off);
    karg_u32(&a, c_u);
    karg_u32(&a, hw);
    karg_u32(&a, m_u);
    karg_u32(&a, plan->chunk_len);
    karg_u32(&a, plan->chunks);
    karg_mem(&a, scratch);
    karg_u32(&a, part_off);
    karg_relu6(&a, relu6, x);
    TRY(karg_end(&a));
    TRY(launch_partial(ctx, k_partial, plan, x->c));

    /* A NULL output is not written: the kernel gets the scratch buffer and a 0 flag. */
    cl_int write_dgamma = dgamma != NULL, write_dbeta = dbeta != NULL;
    cl_mem dgamma_buf = dgamma ? dgamma->buf : scratch, dbeta_buf = dbeta ? dbeta->buf : scratch;
    cl_uint dgamma_off = dgamma ? (cl_uint)dgamma->off : 0, dbeta_off = dbeta ? (cl_uint)dbeta->off : 0;
    a = karg_begin(k_finalize);
    karg_mem(&a, scratch);
    karg_u32(&a, part_off);
    karg_u32(&a, plan->chunks);
    karg_u32(&a, c_u);
    karg_mem(&a, invstd);
    karg_u32(&a, invstd_off);
    karg_mem(&a, scratch);
    karg_u32(&a, sums_off);
    karg_mem(&a, dgamma_buf);
    karg_u32(&a, dgamma_off);
    karg_i32(&a, write_dgamma);
    karg_mem(&a, dbeta_buf);
    karg_u32(&a, dbeta_off);
    karg_i32(&a, write_dbeta);
    TRY(karg_end(&a));
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
    return op_batchnorm_backward_train_sync(ctx, x, dy, gamma, NULL, save_mean, save_invstd, dx,
                                            dgamma, dbeta, 0, NULL);
}

int op_batchnorm_backward_train_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                    const oclseg_tensor *dy, const oclseg_tensor *gamma,
                                    const oclseg_tensor *beta, const oclseg_tensor *save_mean,
                                    const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                    oclseg_tensor *dgamma, oclseg_tensor *dbeta, int relu6) {
    return op_batchnorm_backward_train_sync(ctx, x, dy, gamma, beta, save_mean, save_invstd, dx,
                                            dgamma, dbeta, relu6, NULL);
}

int op_batchnorm_backward_train_sync(oclseg_ctx *ctx, const oclseg_tensor *x,
                                     const oclseg_tensor *dy, const oclseg_tensor *gamma,
                                     const oclseg_tensor *beta, const oclseg_tensor *save_mean,
                                     const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                     oclseg_tensor *dgamma, oclseg_tensor *dbeta, int relu6,
                                     const op_bn_sync *sync) {
    static const char op[] = "batchnorm_backward_train";
    TRY(check_backward(op, x, dy, dx, dgamma, dbeta));
    const int channels = x->c;
    TRY(check_vector(op, "gamma", gamma, channels));
    if (relu6) TRY(check_vector(op, "beta", beta, channels));
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
    const bn_relu6 r6 = {relu6 != 0, save_invstd->buf, si_off, gamma, beta};
    TRY(reduce_grads(ctx, x, dy, save_mean->buf, sm_off, save_invstd->buf, si_off, scratch, &plan,
                     part_off, sums_off, dgamma, dbeta, k_partial, &r6));
    cl_uint m_u = (cl_uint)m;
    if (sync) TRY(bn_sync_grad_sums(ctx, scratch, sums_off, (cl_uint)channels, sync, &m_u));
    if (!dx) return OCLSEG_OK;

    bn_element_kernel ek;
    TRY(per_element_kernel(ctx, "bn_backward_train_dx", &ek));
    kargs a = karg_begin(ek.k);
    karg_tensor(&a, x);
    karg_tensor(&a, dy);
    karg_tensor(&a, save_mean);
    karg_tensor(&a, save_invstd);
    karg_tensor(&a, gamma);
    karg_mem(&a, scratch);
    karg_u32(&a, sums_off);
    karg_tensor(&a, dx);
    karg_u32(&a, (size_t)x->c);
    karg_u32(&a, (size_t)x->h * x->w);
    karg_u32(&a, m_u);
    karg_u32(&a, oclseg_tensor_numel(x));
    karg_tensor(&a, relu6 ? beta : x); /* x's buffer stands in, unread */
    karg_u32(&a, relu6 ? 1u : 0u);
    TRY(karg_end(&a));
    return launch_per_element(ctx, &ek, x);
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
                         k_partial, &(bn_relu6){0, NULL, 0, NULL, NULL}));
    if (!dx) return OCLSEG_OK;

    bn_element_kernel ek;
    TRY(per_element_kernel(ctx, "bn_backward_eval_dx", &ek));
    kargs a = karg_begin(ek.k);
    karg_tensor(&a, dy);
    karg_mem(&a, scratch);
    karg_u32(&a, invstd_off);
    karg_tensor(&a, gamma);
    karg_tensor(&a, dx);
    karg_u32(&a, (size_t)x->c);
    karg_u32(&a, (size_t)x->h * x->w);
    karg_u32(&a, oclseg_tensor_numel(x));
    TRY(karg_end(&a));
    return launch_per_element(ctx, &ek, x);
}
