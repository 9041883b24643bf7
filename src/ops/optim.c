/* Optimizers (NAdam, Adam, SGD as PyTorch 1.13): default configs, host scalar state, and the
 * host side of cl/optim.cl. */
#include <math.h>

#include "oclseg/ops.h"
#include "runtime/kargs.h"

void oclseg_optim_config_default(oclseg_optim_config *cfg, oclseg_optimizer_kind kind) {
    oclseg_optim_config c = {0};
    c.kind = kind;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.momentum_decay = 4e-3f;
    switch (kind) {
    case OCLSEG_OPT_NADAM:
        c.lr = 1e-3f; /* the recipe's value; torch.optim.NAdam defaults to 2e-3 */
        break;
    case OCLSEG_OPT_ADAM:
        c.lr = 1e-3f;
        break;
    case OCLSEG_OPT_SGD:
        c.lr = 1e-2f;
        c.momentum = 0.9f;
        break;
    }
    *cfg = c;
}

void oclseg_optim_host_state_init(oclseg_optim_host_state *st) {
    st->step = 0;
    st->mu_product = 1.0;
}

static int check_config(const oclseg_optim_config *cfg) {
    const float values[] = {cfg->lr,  cfg->weight_decay,   cfg->beta1,    cfg->beta2,
                            cfg->eps, cfg->momentum_decay, cfg->momentum, cfg->dampening};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (!isfinite(values[i]) || values[i] < 0.0f) {
            OCLSEG_ERROR("optimizer step: hyperparameter %zu (%g) must be finite and >= 0", i,
                         (double)values[i]);
            return OCLSEG_ERR_INVALID_ARG;
        }
    }
    if (cfg->kind != OCLSEG_OPT_SGD && (cfg->beta1 >= 1.0f || cfg->beta2 >= 1.0f)) {
        OCLSEG_ERROR("optimizer step: betas (%g, %g) must be in [0, 1)", (double)cfg->beta1,
                     (double)cfg->beta2);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (cfg->kind == OCLSEG_OPT_SGD && cfg->nesterov && (cfg->momentum <= 0.0f || cfg->dampening != 0.0f)) {
        OCLSEG_ERROR("optimizer step: Nesterov momentum requires a momentum and zero dampening");
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* The buffers the optimizer needs are given and the range fits 32-bit indexing. */
static int check_buffers(const oclseg_optim_config *cfg, int sgd_momentum, cl_mem param,
                         cl_mem grad, cl_mem state1, cl_mem state2, size_t off, size_t count) {
    const int needs_state1 = cfg->kind != OCLSEG_OPT_SGD || sgd_momentum;
    const int needs_state2 = cfg->kind != OCLSEG_OPT_SGD;
    if (!param || !grad || (needs_state1 && !state1) || (needs_state2 && !state2)) {
        OCLSEG_ERROR("optimizer step (kind %d): a required buffer is NULL (param %p, grad %p, "
                     "state1 %p, state2 %p)",
                     (int)cfg->kind, (void *)param, (void *)grad, (void *)state1, (void *)state2);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (off > UINT32_MAX || count > UINT32_MAX - off) {
        OCLSEG_ERROR("optimizer step: range [%zu, %zu + %zu) exceeds 32-bit indexing", off, off,
                     count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* SGD (PyTorch 1.13): momentum_buf is NULL without momentum. */
static int sgd_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                    const oclseg_optim_host_state *st, cl_mem param, cl_mem grad,
                    cl_mem momentum_buf, size_t off, size_t count) {
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "optim", NULL, "sgd_step", &k));
    kargs a = karg_begin(k);
    karg_mem(&a, param);
    karg_mem(&a, grad);
    karg_mem(&a, momentum_buf);
    karg_u32(&a, off);
    karg_u32(&a, count);
    karg_f32(&a, cfg->weight_decay); /* SGD's weight decay is never decoupled */
    karg_i32(&a, momentum_buf != NULL);
    karg_i32(&a, st->step == 0);
    karg_f32(&a, cfg->momentum);
    karg_f32(&a, (float)(1.0 - (double)cfg->dampening));
    karg_i32(&a, cfg->nesterov != 0);
    karg_f32(&a, -cfg->lr);
    TRY(karg_end(&a));
    size_t global = count;
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

int op_optimizer_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                      oclseg_optim_host_state *st, cl_mem param, cl_mem grad, cl_mem state1,
                      cl_mem state2, size_t off, size_t count) {
    TRY(check_config(cfg));
    const int sgd_momentum = cfg->kind == OCLSEG_OPT_SGD && cfg->momentum != 0.0f;
    TRY(check_buffers(cfg, sgd_momentum, param, grad, state1, state2, off, count));
    const cl_uint off_u = (cl_uint)off, count_u = (cl_uint)count;
    const int64_t step = st->step + 1; /* PyTorch increments the step before using it */
    const double lr = cfg->lr, beta1 = cfg->beta1, beta2 = cfg->beta2;
    /* decoupled (AdamW-style, Adam/NAdam only): p *= 1 - lr * wd before the step, and no
     * weight decay in the gradient */
    const int decoupled = cfg->decoupled_wd && cfg->kind != OCLSEG_OPT_SGD;
    const cl_float weight_decay = decoupled ? 0.0f : cfg->weight_decay, eps = cfg->eps;
    const cl_float decay = decoupled ? (cl_float)(1.0 - lr * (double)cfg->weight_decay) : 1.0f;
    cl_kernel k;
    size_t global = count;

    if (cfg->kind == OCLSEG_OPT_NADAM || cfg->kind == OCLSEG_OPT_ADAM) {
        const cl_float beta1_f = cfg->beta1, beta2_f = cfg->beta2;
        const cl_float one_minus_beta1 = (cl_float)(1.0 - beta1);
        const cl_float one_minus_beta2 = (cl_float)(1.0 - beta2);
        const double bias_correction2 = 1.0 - pow(beta2, (double)step);
        const int nadam = cfg->kind == OCLSEG_OPT_NADAM;
        /* the kernels' step coefficients: NAdam (bc2, grad_coef, avg_coef), Adam (sqrt(bc2),
         * -lr / bc1) */
        cl_float bc2_arg, step_coef, avg_coef = 0.0f;
        double mu_product = st->mu_product;
        if (nadam) {
            const double psi = cfg->momentum_decay;
            const double mu = beta1 * (1.0 - 0.5 * pow(0.96, (double)step * psi));
            const double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (double)(step + 1) * psi));
            mu_product = st->mu_product * mu;
            /* PyTorch 1.13's _single_tensor_nadam: mu_product_next = mu_product * mu * mu_next,
             * with mu_product already including mu (the docs and the foreach path use
             * mu_product * mu_next; torch.optim.NAdam defaults to this single-tensor path). */
            const double mu_product_next = mu_product * mu * mu_next;
            step_coef = (cl_float)(-lr * (1.0 - mu) / (1.0 - mu_product));
            avg_coef = (cl_float)(-lr * mu_next / (1.0 - mu_product_next));
            bc2_arg = (cl_float)bias_correction2;
        } else {
            const double bias_correction1 = 1.0 - pow(beta1, (double)step);
            bc2_arg = (cl_float)sqrt(bias_correction2);
            step_coef = (cl_float)(-lr / bias_correction1);
        }
        TRY(oclseg_kernel_get(ctx, "optim", NULL, nadam ? "nadam_step" : "adam_step", &k));
        kargs a = karg_begin(k);
        karg_mem(&a, param);
        karg_mem(&a, grad);
        karg_mem(&a, state1);
        karg_mem(&a, state2);
        karg_u32(&a, off_u);
        karg_u32(&a, count_u);
        karg_f32(&a, weight_decay);
        karg_f32(&a, beta1_f);
        karg_f32(&a, one_minus_beta1);
        karg_f32(&a, beta2_f);
        karg_f32(&a, one_minus_beta2);
        karg_f32(&a, bc2_arg);
        karg_f32(&a, eps);
        karg_f32(&a, step_coef);
        if (nadam) karg_f32(&a, avg_coef);
        karg_f32(&a, decay);
        TRY(karg_end(&a));
        TRY(oclseg_launch(ctx, k, 1, &global, NULL));
        st->mu_product = mu_product;
    } else if (cfg->kind == OCLSEG_OPT_SGD) {
        TRY(sgd_step(ctx, cfg, st, param, grad, sgd_momentum ? state1 : NULL, off, count));
    } else {
        OCLSEG_ERROR("optimizer step: unknown optimizer kind %d", (int)cfg->kind);
        return OCLSEG_ERR_INVALID_ARG;
    }
    st->step = step;
    return OCLSEG_OK;
}
