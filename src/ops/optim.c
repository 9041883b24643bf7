/* The optimizers (NAdam, Adam, SGD as PyTorch 1.13; AdamW; Lion): their one table (name, states and
 * checkpoint keys, defaults, checks, step), host scalar state, and the host side of
 * cl/optim.cl. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "oclseg/ops.h"
#include "runtime/kargs.h"

/* ---- checks ------------------------------------------------------------------------------ */
/* Betas of the moment averages in [0, 1). */
static int check_betas(const oclseg_optim_config *cfg) {
    if (cfg->beta1 < 1.0f && cfg->beta2 < 1.0f) return OCLSEG_OK;
    OCLSEG_ERROR("optimizer %s: betas (%g, %g) must be in [0, 1)",
                 oclseg_optimizer_get(cfg->kind)->name, (double)cfg->beta1, (double)cfg->beta2);
    return OCLSEG_ERR_INVALID_ARG;
}

static int check_sgd(const oclseg_optim_config *cfg) {
    if (cfg->nesterov && (cfg->momentum <= 0.0f || cfg->dampening != 0.0f)) {
        OCLSEG_ERROR("optimizer sgd: Nesterov momentum requires a momentum and zero dampening");
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (cfg->decoupled_wd) {
        OCLSEG_ERROR("optimizer sgd: decoupled weight decay (--decoupled-wd) is for adam and "
                     "nadam; SGD's weight decay is coupled, as torch.optim.SGD's");
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int oclseg_optim_config_check(const oclseg_optim_config *cfg) {
    const oclseg_optimizer_desc *d = oclseg_optimizer_get(cfg->kind);
    if (!d) {
        OCLSEG_ERROR("optimizer: unknown kind %d", (int)cfg->kind);
        return OCLSEG_ERR_INVALID_ARG;
    }
    const struct { const char *name; float value; } values[] = {
        {"lr", cfg->lr},   {"weight_decay", cfg->weight_decay},     {"beta1", cfg->beta1},
        {"beta2", cfg->beta2}, {"eps", cfg->eps}, {"momentum_decay", cfg->momentum_decay},
        {"momentum", cfg->momentum}, {"dampening", cfg->dampening}};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (!isfinite(values[i].value) || values[i].value < 0.0f) {
            OCLSEG_ERROR("optimizer %s: %s = %g must be finite and >= 0", d->name, values[i].name,
                         (double)values[i].value);
            return OCLSEG_ERR_INVALID_ARG;
        }
    }
    return d->check ? d->check(cfg) : OCLSEG_OK;
}

/* The buffers the optimizer needs are given and the range fits 32-bit indexing. */
static int check_buffers(const oclseg_optim_config *cfg, cl_mem param, cl_mem grad,
                         const cl_mem *states, size_t off, size_t count) {
    const int n = oclseg_optim_state_count(cfg);
    int missing = !param || !grad || (n > 0 && !states);
    for (int s = 0; s < n && !missing; s++) missing = !states[s];
    if (missing) {
        OCLSEG_ERROR("optimizer %s: a required buffer is NULL (param %p, grad %p, %d state "
                     "buffers needed)", oclseg_optimizer_get(cfg->kind)->name, (void *)param,
                     (void *)grad, n);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (off > UINT32_MAX || count > UINT32_MAX - off) {
        OCLSEG_ERROR("optimizer step: range [%zu, %zu + %zu) exceeds 32-bit indexing", off, off,
                     count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* ---- steps ------------------------------------------------------------------------------- */
/* NAdam, Adam and AdamW (adam_step with decoupled decay): one kernel launch. */
static int adam_like_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                          oclseg_optim_host_state *st, cl_mem param, cl_mem grad,
                          const cl_mem *states, size_t off, size_t count) {
    const int64_t step = st->step + 1; /* PyTorch increments the step before using it */
    const double lr = cfg->lr, beta1 = cfg->beta1, beta2 = cfg->beta2;
    /* decoupled (AdamW-style): p *= 1 - lr * wd before the step, and no weight decay in the
     * gradient */
    const int decoupled = cfg->decoupled_wd || cfg->kind == OCLSEG_OPT_ADAMW;
    const cl_float weight_decay = decoupled ? 0.0f : cfg->weight_decay, eps = cfg->eps;
    const cl_float decay = decoupled ? (cl_float)(1.0 - lr * (double)cfg->weight_decay) : 1.0f;
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
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "optim", NULL, nadam ? "nadam_step" : "adam_step", &k));
    kargs a = karg_begin(k);
    karg_mem(&a, param);
    karg_mem(&a, grad);
    karg_mem(&a, states[0]);
    karg_mem(&a, states[1]);
    karg_u32(&a, off);
    karg_u32(&a, count);
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
    size_t global = count;
    TRY(oclseg_launch(ctx, k, 1, &global, NULL));
    st->mu_product = mu_product;
    return OCLSEG_OK;
}

static int sgd_states_used(const oclseg_optim_config *cfg) { return cfg->momentum != 0.0f; }

/* SGD (PyTorch 1.13): a momentum buffer only with momentum. */
static int sgd_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg, oclseg_optim_host_state *st,
                    cl_mem param, cl_mem grad, const cl_mem *states, size_t off, size_t count) {
    const cl_mem momentum_buf = sgd_states_used(cfg) ? states[0] : NULL;
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

/* Lion (Chen et al. 2023): sign of the interpolated momentum, decoupled weight decay. */
static int lion_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg, oclseg_optim_host_state *st,
                     cl_mem param, cl_mem grad, const cl_mem *states, size_t off, size_t count) {
    (void)st; /* no step-dependent scalars */
    cl_kernel k;
    TRY(oclseg_kernel_get(ctx, "optim", NULL, "lion_step", &k));
    kargs a = karg_begin(k);
    karg_mem(&a, param);
    karg_mem(&a, grad);
    karg_mem(&a, states[0]);
    karg_u32(&a, off);
    karg_u32(&a, count);
    karg_f32(&a, cfg->beta1);
    karg_f32(&a, (float)(1.0 - (double)cfg->beta1));
    karg_f32(&a, cfg->beta2);
    karg_f32(&a, (float)(1.0 - (double)cfg->beta2));
    karg_f32(&a, -cfg->lr);
    karg_f32(&a, (float)(1.0 - (double)cfg->lr * (double)cfg->weight_decay));
    TRY(karg_end(&a));
    size_t global = count;
    return oclseg_launch(ctx, k, 1, &global, NULL);
}

/* ---- the table --------------------------------------------------------------------------- */
/* Moment estimates of the Adam family: PyTorch's state names, which checkpoints keep. */
#define ADAM_STATES {"exp_avg", "exp_avg_sq"}
#define ADAM_BETAS .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f

static const oclseg_optimizer_desc oclseg_optimizers[OCLSEG_OPT_COUNT] = {
    [OCLSEG_OPT_NADAM] = {"nadam", "NAdam", 2, ADAM_STATES,
                          /* lr: the recipe's value; torch.optim.NAdam defaults to 2e-3 */
                          {.kind = OCLSEG_OPT_NADAM, .lr = 1e-3f, ADAM_BETAS,
                           .momentum_decay = 4e-3f},
                          check_betas, NULL, adam_like_step},
    [OCLSEG_OPT_ADAM] = {"adam", "Adam", 2, ADAM_STATES,
                         {.kind = OCLSEG_OPT_ADAM, .lr = 1e-3f, ADAM_BETAS},
                         check_betas, NULL, adam_like_step},
    /* the momentum buffer keeps the key "exp_avg" that SGD checkpoints have always used */
    [OCLSEG_OPT_SGD] = {"sgd", "SGD", 1, {"exp_avg"},
                        {.kind = OCLSEG_OPT_SGD, .lr = 1e-2f, .momentum = 0.9f},
                        check_sgd, sgd_states_used, sgd_step},
    /* torch.optim.AdamW: Adam with decoupled weight decay, 1e-2 by default */
    [OCLSEG_OPT_ADAMW] = {"adamw", "AdamW", 2, ADAM_STATES,
                          {.kind = OCLSEG_OPT_ADAMW, .lr = 1e-3f, .weight_decay = 1e-2f,
                           ADAM_BETAS, .decoupled_wd = 1},
                          check_betas, NULL, adam_like_step},
    /* Lion (Chen et al. 2023): the paper's defaults (lr 1e-4, betas 0.9/0.99, no decay);
     * exp_avg as lion-pytorch names its one state */
    [OCLSEG_OPT_LION] = {"lion", "Lion", 1, {"exp_avg"},
                         {.kind = OCLSEG_OPT_LION, .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f,
                          .decoupled_wd = 1},
                         check_betas, NULL, lion_step},
};
static_assert(sizeof oclseg_optimizers / sizeof oclseg_optimizers[0] == OCLSEG_OPT_COUNT,
              "oclseg_optimizers[] needs one row per oclseg_optimizer_kind");

const oclseg_optimizer_desc *oclseg_optimizer_get(int kind) {
    return kind >= 0 && kind < OCLSEG_OPT_COUNT ? &oclseg_optimizers[kind] : NULL;
}

int oclseg_optimizer_find(const char *name) {
    for (int k = 0; name && k < OCLSEG_OPT_COUNT; k++)
        if (strcmp(oclseg_optimizers[k].name, name) == 0) return k;
    return -1;
}

int oclseg_optim_state_count(const oclseg_optim_config *cfg) {
    const oclseg_optimizer_desc *d = oclseg_optimizer_get(cfg->kind);
    if (!d) return 0;
    return d->states_used ? d->states_used(cfg) : d->state_count;
}

void oclseg_optim_config_default(oclseg_optim_config *cfg, oclseg_optimizer_kind kind) {
    const oclseg_optimizer_desc *d = oclseg_optimizer_get(kind);
    *cfg = d ? d->defaults : (oclseg_optim_config){.kind = kind};
}

void oclseg_optim_host_state_init(oclseg_optim_host_state *st) {
    st->step = 0;
    st->mu_product = 1.0;
}

int op_optimizer_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                      oclseg_optim_host_state *st, cl_mem param, cl_mem grad,
                      const cl_mem *states, size_t off, size_t count) {
    TRY(oclseg_optim_config_check(cfg));
    TRY(check_buffers(cfg, param, grad, states, off, count));
    TRY(oclseg_optimizer_get(cfg->kind)->step(ctx, cfg, st, param, grad, states, off, count));
    st->step++;
    return OCLSEG_OK;
}
