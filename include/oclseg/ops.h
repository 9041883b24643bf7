/* The op library: forward and backward of every layer the model uses, on an oclseg_ctx.
 *
 * Conventions (all ops):
 *  - float32, NCHW, tensors are views (buffer + element offset), shapes are checked and a
 *    mismatch returns OCLSEG_ERR_INVALID_ARG with a message naming the op and the shapes;
 *  - outputs are overwritten (never accumulated into) unless the name says otherwise;
 *  - gradients follow PyTorch's definitions; optional gradient outputs may be NULL (not computed);
 *  - reductions are deterministic (fixed-order two-pass, no atomics): same inputs, same bits;
 *  - ops only enqueue work; they never block on the device (except where documented). */
#ifndef OCLSEG_OPS_H
#define OCLSEG_OPS_H

#include <stdint.h>

#include "oclseg/tensor.h"

/* ---- elementwise: cl/eltwise.cl, src/ops/eltwise.c ------------------------------------- */
/* y = max(x, 0). y may alias x. */
int op_relu_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y);
/* dx = dy * (y > 0), from the forward *output* y (as PyTorch's threshold_backward). dx may alias dy. */
int op_relu_backward(oclseg_ctx *ctx, const oclseg_tensor *y, const oclseg_tensor *dy,
                     oclseg_tensor *dx);
/* y = min(max(x, 0), 6). y may alias x. */
int op_relu6_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y);
/* dx = dy * (0 < y < 6) (PyTorch hardtanh_backward: strict inequalities). dx may alias dy. */
int op_relu6_backward(oclseg_ctx *ctx, const oclseg_tensor *y, const oclseg_tensor *dy,
                      oclseg_tensor *dx);
/* y = a + b (same shapes). y may alias a or b. */
int op_add(oclseg_ctx *ctx, const oclseg_tensor *a, const oclseg_tensor *b, oclseg_tensor *y);
/* y = sigmoid(x), computed stably for large |x|. */
int op_sigmoid(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y);

/* Dropout with inverted scaling: y = x * keep / (1 - p), keep = (u >= p) where u in [0, 1) is
 * drawn by Philox4x32-10 keyed by `seed` with counter (element index, `step`), so the mask is
 * identical on every device and is regenerated (not stored) by the backward. p == 0: copy.
 * op_dropout_mask_host gives the same mask on the host (for tests and references). */
int op_dropout_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y, float p,
                       uint64_t seed, uint64_t step);
int op_dropout_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx, float p,
                        uint64_t seed, uint64_t step);
void op_dropout_mask_host(size_t count, float p, uint64_t seed, uint64_t step, uint8_t *keep);
/* The same on a slice that starts at element `first` (a multiple of 4) of a larger tensor: the
 * slice gets the mask those elements have in the whole tensor (a rank's part of a global batch). */
int op_dropout_forward_at(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y, float p,
                          uint64_t seed, uint64_t step, size_t first);
int op_dropout_backward_at(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx, float p,
                           uint64_t seed, uint64_t step, size_t first);

/* ---- loss and metrics: cl/loss.cl, src/ops/loss.c -------------------------------------- */
/* Mean binary cross-entropy with logits over all elements:
 *   l_i = max(x,0) - x*y + log1p(exp(-|x|)), loss = mean(l_i) written to loss->buf at loss->off
 * (a one-element view, so a training loop can write step k's loss to slot k of a ring buffer).
 * If grad != NULL it also writes d(loss)/dx = (sigmoid(x) - y) / numel. */
int op_bce_with_logits(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                       oclseg_tensor *loss, oclseg_tensor *grad);
/* Soft Dice loss on sigmoid probabilities, per image i of the N images (smooth 1):
 *   D_i = (2 sum p*y + 1) / (sum p + sum y + 1), loss = 1 - mean_i D_i,
 * with p = sigmoid(logits). accumulate = 0 writes the loss (and, if grad != NULL, d(loss)/dx);
 * accumulate = 1 adds them to what is there (bce+dice: call op_bce_with_logits first).
 * Deterministic two-pass reductions; uses the shared scratch for 2N floats. */
int op_soft_dice(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                 oclseg_tensor *loss, oclseg_tensor *grad, int accumulate);
/* Per-image confusion counts at probability threshold t (pred = sigmoid(x) > t, truth = y > 0.5):
 * counts[off + 4*n + {0,1,2,3}] = {intersection (TP), predicted (TP+FP), target (TP+FN), TN},
 * as uint32 in `counts` (a buffer of >= off + 4*N uint32). */
int op_seg_counts(oclseg_ctx *ctx, const oclseg_tensor *logits, const oclseg_tensor *target,
                  float threshold, cl_mem counts, size_t off);

/* ---- numerics checks: cl/numerics.cl, src/ops/numerics.c ------------------------------- */
/* Writes 0 to out[out_off] if every float of x[x_off .. x_off+count) is finite, NaN if any is
 * NaN or +-Inf. Enqueued like any op: nothing waits for the device. */
int op_check_finite(oclseg_ctx *ctx, cl_mem x, size_t x_off, size_t count, cl_mem out,
                       size_t out_off);

/* ---- conv2d (groups = 1, any kernel/stride/pad; 1x1 via GEMM): cl/conv2d.cl, src/ops/conv2d.c */
typedef struct oclseg_conv_params {
    int stride_h, stride_w, pad_h, pad_w;
} oclseg_conv_params;
/* x (N, Cin, H, W), w (Cout, Cin, KH, KW), bias (Cout) or NULL -> y (N, Cout, Ho, Wo),
 * Ho = (H + 2*pad_h - KH) / stride_h + 1. */
int op_conv2d_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                      const oclseg_tensor *bias, oclseg_tensor *y, oclseg_conv_params p);
/* Gradients for x, w, bias; any of dx, dw, dbias may be NULL. */
int op_conv2d_backward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                       const oclseg_tensor *dy, oclseg_tensor *dx, oclseg_tensor *dw,
                       oclseg_tensor *dbias, oclseg_conv_params p);

/* ---- depthwise 3x3 conv, pad 1, stride 1 or 2, no bias: cl/depthwise.cl, src/ops/depthwise.c */
/* x (N, C, H, W), w (C, 1, 3, 3) -> y (N, C, Ho, Wo), Ho = (H + 2 - 3) / stride + 1. */
int op_depthwise_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                         oclseg_tensor *y, int stride);
/* dx and/or dw may be NULL. dw is reduced over N, Ho, Wo deterministically. */
int op_depthwise_backward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                          const oclseg_tensor *dy, oclseg_tensor *dx, oclseg_tensor *dw,
                          int stride);

/* ---- batchnorm2d: cl/batchnorm.cl, src/ops/batchnorm.c --------------------------------- */
/* Training mode: normalise with batch mean and biased variance; save_mean/save_invstd (C) keep
 * mean and 1/sqrt(var + eps) for the backward; running_mean/var (C) are updated in place:
 * r = (1 - momentum) * r + momentum * batch_stat, with the *unbiased* variance for running_var.
 * (The caller increments num_batches_tracked.) N*H*W == 1 is an error, as in PyTorch. */
int op_batchnorm_forward_train(oclseg_ctx *ctx, const oclseg_tensor *x,
                               const oclseg_tensor *gamma, const oclseg_tensor *beta,
                               oclseg_tensor *running_mean, oclseg_tensor *running_var,
                               oclseg_tensor *y, oclseg_tensor *save_mean,
                               oclseg_tensor *save_invstd, float momentum, float eps);
/* Eval mode: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta. */
int op_batchnorm_forward_eval(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *gamma,
                              const oclseg_tensor *beta, const oclseg_tensor *running_mean,
                              const oclseg_tensor *running_var, oclseg_tensor *y, float eps);
/* The same with relu6 != 0: y = min(max(bn(x), 0), 6) in the same pass (BatchNorm + ReLU6
 * fused; op_batchnorm_backward_train_act takes the ReLU6's backward into its passes). */
int op_batchnorm_forward_train_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                   const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                   oclseg_tensor *running_mean, oclseg_tensor *running_var,
                                   oclseg_tensor *y, oclseg_tensor *save_mean,
                                   oclseg_tensor *save_invstd, float momentum, float eps,
                                   int relu6);
int op_batchnorm_forward_eval_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                  const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                  const oclseg_tensor *running_mean,
                                  const oclseg_tensor *running_var, oclseg_tensor *y, float eps,
                                  int relu6);
/* Training-mode backward (batch statistics); dx, dgamma, dbeta may each be NULL. */
int op_batchnorm_backward_train(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                                const oclseg_tensor *gamma, const oclseg_tensor *save_mean,
                                const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                oclseg_tensor *dgamma, oclseg_tensor *dbeta);
/* The training backward of BatchNorm + ReLU6 fused (the forward ran with relu6 != 0): dy is the
 * gradient of the ReLU6's output; the ReLU6 mask (bn output strictly inside (0, 6)) is recomputed
 * from x, save_mean, save_invstd, gamma and beta inside the two passes, bit-identical to the
 * forward's output, so no relu6_backward pass reads y. relu6 = 0: as op_batchnorm_backward_train
 * (beta may be NULL). */
int op_batchnorm_backward_train_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                    const oclseg_tensor *dy, const oclseg_tensor *gamma,
                                    const oclseg_tensor *beta, const oclseg_tensor *save_mean,
                                    const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                    oclseg_tensor *dgamma, oclseg_tensor *dbeta, int relu6);
/* Synchronised BatchNorm (data parallel, --sync-bn; as torch.nn.SyncBatchNorm): the batch
 * statistics and, in the backward, the sums dx needs are taken over the images of every rank of
 * oclseg/dist.h, combined on the host in double in rank order (deterministic, the same bits on
 * every rank). rank_counts[r] = images on rank r (all > 0); rank r's loss is weighted by
 * rank_counts[r] / total in the gradient sum (oclseg_trainer_step_shard), which the backward
 * accounts for. dgamma/dbeta stay this rank's (they are summed with the other gradients). */
typedef struct op_bn_sync {
    const int *rank_counts;
} op_bn_sync;
int op_batchnorm_forward_train_sync(oclseg_ctx *ctx, const oclseg_tensor *x,
                                    const oclseg_tensor *gamma, const oclseg_tensor *beta,
                                    oclseg_tensor *running_mean, oclseg_tensor *running_var,
                                    oclseg_tensor *y, oclseg_tensor *save_mean,
                                    oclseg_tensor *save_invstd, float momentum, float eps,
                                    int relu6, const op_bn_sync *sync);
int op_batchnorm_backward_train_sync(oclseg_ctx *ctx, const oclseg_tensor *x,
                                     const oclseg_tensor *dy, const oclseg_tensor *gamma,
                                     const oclseg_tensor *beta, const oclseg_tensor *save_mean,
                                     const oclseg_tensor *save_invstd, oclseg_tensor *dx,
                                     oclseg_tensor *dgamma, oclseg_tensor *dbeta, int relu6,
                                     const op_bn_sync *sync);
/* Eval-mode backward (running statistics are constants); dx, dgamma, dbeta may be NULL. */
int op_batchnorm_backward_eval(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *dy,
                               const oclseg_tensor *gamma, const oclseg_tensor *running_mean,
                               const oclseg_tensor *running_var, float eps, oclseg_tensor *dx,
                               oclseg_tensor *dgamma, oclseg_tensor *dbeta);

/* ---- conv_transpose2d (groups 1, output_padding 0): cl/conv_transpose.cl, src/ops/conv_transpose.c */
/* x (N, Cin, H, W), w (Cin, Cout, KH, KW) (PyTorch layout), bias (Cout) or NULL ->
 * y (N, Cout, Ho, Wo), Ho = (H - 1) * stride - 2 * pad + KH. */
int op_conv_transpose2d_forward(oclseg_ctx *ctx, const oclseg_tensor *x, const oclseg_tensor *w,
                                const oclseg_tensor *bias, oclseg_tensor *y, int stride, int pad);
/* The same with relu != 0: y = max(convt(x) + bias, 0) in the col2im pass (bias + ReLU fused;
 * the ReLU backward is unchanged, it reads y). */
int op_conv_transpose2d_forward_act(oclseg_ctx *ctx, const oclseg_tensor *x,
                                    const oclseg_tensor *w, const oclseg_tensor *bias,
                                    oclseg_tensor *y, int stride, int pad, int relu);
int op_conv_transpose2d_backward(oclseg_ctx *ctx, const oclseg_tensor *x,
                                 const oclseg_tensor *w, const oclseg_tensor *dy,
                                 oclseg_tensor *dx, oclseg_tensor *dw, oclseg_tensor *dbias,
                                 int stride, int pad);

/* ---- bilinear upsampling, align_corners=False, any output size: cl/upsample.cl, src/ops/upsample.c
 * (scale = in/out as PyTorch uses when `size=` is given; source index clamped at 0). */
int op_upsample_bilinear_forward(oclseg_ctx *ctx, const oclseg_tensor *x, oclseg_tensor *y);
/* Deterministic (gather form, no atomics). */
int op_upsample_bilinear_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *dx);

/* ---- channel concatenation, torch.cat((a, b), dim=1): cl/concat.cl, src/ops/concat.c -------
 * a (N, Ca, H, W), b (N, Cb, H, W), y (N, Ca + Cb, H, W); exact copies. The backward splits dy
 * into da (its first Ca channels) and db (the rest); either may be NULL (not wanted). */
int op_concat_forward(oclseg_ctx *ctx, const oclseg_tensor *a, const oclseg_tensor *b,
                      oclseg_tensor *y);
int op_concat_backward(oclseg_ctx *ctx, const oclseg_tensor *dy, oclseg_tensor *da,
                       oclseg_tensor *db);

/* ---- optimizers, one flat pass over a parameter range: cl/optim.cl, src/ops/optim.c ------ */
/* Everything that differs between optimizers is in one table, oclseg_optimizers[] in
 * src/ops/optim.c (name, states and their checkpoint keys, defaults, checks, step). The values
 * are recorded in checkpoints ("optimizer" metadata): never renumber them. Adding one: a name
 * here, its table entry (the static_assert there fails otherwise), its kernel in cl/optim.cl and
 * its test in tests/test_ops_optim.c. */
typedef enum oclseg_optimizer_kind {
    OCLSEG_OPT_NADAM = 0,
    OCLSEG_OPT_ADAM = 1,
    OCLSEG_OPT_SGD = 2,
    OCLSEG_OPT_ADAMW = 3,
    OCLSEG_OPT_LION = 4,
    OCLSEG_OPT_COUNT
} oclseg_optimizer_kind;

typedef struct oclseg_optim_config {
    oclseg_optimizer_kind kind;
    float lr, weight_decay;
    float beta1, beta2, eps, momentum_decay; /* NAdam/Adam: 0.9 0.999 1e-8, NAdam 4e-3 */
    float momentum, dampening;               /* SGD */
    int nesterov;                            /* SGD */
    int decoupled_wd; /* Adam/NAdam: weight decay as p *= 1 - lr * weight_decay before the step
                         (torch.optim.AdamW; NAdam as PyTorch 2's decoupled_weight_decay);
                         AdamW: always (the flag changes nothing); SGD: refused */
} oclseg_optim_config;

/* At most this many state arenas per optimizer (each param_floats, the parameters' layout). */
#define OCLSEG_OPTIM_MAX_STATES 2

/* Host-side scalar state shared by all parameters (they always step together). */
typedef struct oclseg_optim_host_state {
    int64_t step;      /* number of steps taken so far */
    double mu_product; /* NAdam's running product of mu_t (starts at 1) */
} oclseg_optim_host_state;

/* One optimizer: the row of oclseg_optimizers[] for its kind. */
typedef struct oclseg_optimizer_desc {
    const char *name;  /* --optimizer and config.json value: "nadam" */
    const char *title; /* in messages: "NAdam" */
    int state_count;   /* state arenas it needs at most (see oclseg_optim_state_count) */
    /* checkpoint key of each state: optimizer.<key>.<parameter name> */
    const char *state_keys[OCLSEG_OPTIM_MAX_STATES];
    oclseg_optim_config defaults; /* lr, weight decay, betas, ...: the one place they live */
    /* the kind's own checks after the common ones (every value finite and >= 0); NULL: none */
    int (*check)(const oclseg_optim_config *cfg);
    /* the state arenas this configuration uses, when fewer than state_count (SGD without
     * momentum: 0); NULL: state_count */
    int (*states_used)(const oclseg_optim_config *cfg);
    /* step st->step + 1 over [off, off + count) (arguments checked by op_optimizer_step,
     * which then advances st->step); changes the rest of *st (mu_product) only on success */
    int (*step)(oclseg_ctx *ctx, const oclseg_optim_config *cfg, oclseg_optim_host_state *st,
                cl_mem param, cl_mem grad, const cl_mem *states, size_t off, size_t count);
} oclseg_optimizer_desc;

/* The row of `kind`; NULL when kind is out of range. */
const oclseg_optimizer_desc *oclseg_optimizer_get(int kind);
/* The kind named `name` (oclseg_optimizer_desc.name), or -1. */
int oclseg_optimizer_find(const char *name);
/* The configured number of state arenas (0 .. OCLSEG_OPTIM_MAX_STATES; 0 for a bad kind). */
int oclseg_optim_state_count(const oclseg_optim_config *cfg);
/* Every hyperparameter of cfg valid for its kind: OCLSEG_OK, or OCLSEG_ERR_INVALID_ARG with a
 * message naming the optimizer and the value. */
int oclseg_optim_config_check(const oclseg_optim_config *cfg);

/* Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_(max_norm), L2; kernels in
 * cl/numerics.cl): over grad
 * [off, off + count), norm = sqrt(sum g^2) (deterministic two-pass reduction), then every
 * gradient is multiplied by min(1, max_norm / (norm + 1e-6)). out (>= 2 floats) receives
 * {norm, coefficient}. Never blocks. */
int op_clip_grad_norm(oclseg_ctx *ctx, cl_mem grad, size_t off, size_t count, float max_norm,
                      cl_mem out);

/* The kind's defaults (its table row's `defaults`). */
void oclseg_optim_config_default(oclseg_optim_config *cfg, oclseg_optimizer_kind kind);
void oclseg_optim_host_state_init(oclseg_optim_host_state *st);
/* One step of the optimizer cfg->kind (NAdam, Adam, SGD: torch.optim's PyTorch 1.13 formulas,
 * single-tensor path; AdamW: torch.optim.AdamW; Lion: Chen et al. 2023) over `count` floats from element `off` of
 * param/grad and of each of the oclseg_optim_state_count(cfg) state buffers `states` (same
 * layout; the order of the table's state_keys: exp_avg, exp_avg_sq; SGD's momentum buffer).
 * Checks the configuration and the buffers first. Advances st->step (and mu_product). Scalars
 * are computed in double on the host, then passed as float. */
int op_optimizer_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                      oclseg_optim_host_state *st, cl_mem param, cl_mem grad,
                      const cl_mem *states, size_t off, size_t count);

/* 1 when the device's GEMMs default to oclseg's own register-tiled kernels (cl/gemm.cl gemm_nn
 * / gemm_nt): CPU devices that run long loops to the end (oclseg_device_runs_long_loops: not
 * Mesa's rusticl); 0: CLBlast. */
int oclseg_gemm_device_default_own(oclseg_ctx *ctx);
/* 1 when this context's GEMMs run on the own kernels, 0 on CLBlast, for shapes its tuning file
 * does not name: ctx->gemm_backend, else OCLSEG_GEMM, else the device default. */
int oclseg_gemm_own_kernels(oclseg_ctx *ctx);
struct oclseg_gemm_shape;
/* The same for one GEMM call (oclseg/tuning.h): ctx->gemm_backend, else OCLSEG_GEMM, else the
 * tuning file's entry for exactly that shape, else the device default. */
int oclseg_gemm_own_for(oclseg_ctx *ctx, const struct oclseg_gemm_shape *shape);

#endif
