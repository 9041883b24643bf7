/* Tests the optimizer step (NAdam, Adam, SGD with/without momentum, Nesterov, dampening, weight
 * decay, decoupled weight decay), the learning-rate schedules (one-cycle and AdamW under it
 * against PyTorch: tools/make_schedule_golden.py; cosine against its closed form) and gradient
 * clipping by global norm, against real PyTorch 1.13 (tools/make_optim_golden.py) and against a
 * double-precision C reference of the same formulas over a sub-range of an odd-length buffer
 * (elements outside the range must stay bit-identical), plus defaults, host state and argument
 * checks.
 * Tolerance: each step rounds the float32 parameter once (1/2 ulp) and adds an update that is
 * far smaller than the parameter and carries a few ulp of its own (OpenCL 1.2 allows 2.5 ulp for
 * division and 3 ulp for sqrt; the float32 step scalars are within 1/2 ulp of the double ones),
 * so after step s we allow atol = 4 * s * ulp(parameter scale) (measured: ~0.5 ulp per step).
 * States (exp_avg, exp_avg_sq, momentum buffer) get the same bound relative to their scale.
 * (No harness_check_fd: a step has no backward; the PyTorch golden values check the same
 * formulas as the double reference, so a wrong reference cannot make a wrong kernel pass.) */
#include <float.h>
#include <math.h>
#include <string.h>

#include "data/optim_golden.h"
#include "data/schedule_golden.h"
#include "harness.h"
#include "oclseg/schedule.h"

#define STEPS 5
static const double ULPS_PER_STEP = 4.0;

/* ---- the double-precision reference ----------------------------------------------------- */
typedef struct ref_state {
    int64_t step;
    double mu_product;
} ref_state;

/* One step over n elements, the formulas of PyTorch 1.13's single-tensor optimizers with the
 * hyperparameters as the float values of cfg. */
/* The smallest nonzero |c| Lion's reference met (its sign decides the update). */
static double ref_lion_min_abs_c = INFINITY;

static void ref_step(const oclseg_optim_config *cfg, ref_state *st, double *p, const double *grad,
                     double *s1, double *s2, size_t n) {
    const int64_t t = ++st->step;
    const double lr = cfg->lr, wd = cfg->weight_decay, b1 = cfg->beta1, b2 = cfg->beta2;
    const double eps = cfg->eps;
    if (cfg->kind == OCLSEG_OPT_LION) { /* Chen et al. 2023, Algorithm 2; sign(0) = 0 */
        for (size_t i = 0; i < n; i++) {
            const double c = b1 * s1[i] + (1.0 - b1) * grad[i];
            const double sign = c > 0.0 ? 1.0 : c < 0.0 ? -1.0 : 0.0;
            if (c != 0.0) ref_lion_min_abs_c = fmin(ref_lion_min_abs_c, fabs(c));
            p[i] -= lr * (sign + wd * p[i]);
            s1[i] = b2 * s1[i] + (1.0 - b2) * grad[i];
        }
        return;
    }
    double mu = 0, mu_next = 0;
    if (cfg->kind == OCLSEG_OPT_NADAM) {
        mu = b1 * (1.0 - 0.5 * pow(0.96, (double)t * cfg->momentum_decay));
        mu_next = b1 * (1.0 - 0.5 * pow(0.96, (double)(t + 1) * cfg->momentum_decay));
        st->mu_product *= mu;
    }
    /* AdamW decouples by definition (torch.optim.AdamW), whatever the flag says */
    const int adamw = cfg->kind == OCLSEG_OPT_ADAMW;
    const int decoupled = adamw || (cfg->decoupled_wd && cfg->kind != OCLSEG_OPT_SGD);
    for (size_t i = 0; i < n; i++) {
        double g = grad[i];
        if (decoupled) p[i] *= 1.0 - lr * wd; /* AdamW: decay first, no decay in g */
        else if (wd != 0.0) g += wd * p[i];
        if (cfg->kind == OCLSEG_OPT_SGD) {
            if (cfg->momentum != 0.0f) {
                s1[i] = t == 1 ? g : cfg->momentum * s1[i] + (1.0 - cfg->dampening) * g;
                g = cfg->nesterov ? g + cfg->momentum * s1[i] : s1[i];
            }
            p[i] -= lr * g;
            continue;
        }
        s1[i] = b1 * s1[i] + (1.0 - b1) * g;
        s2[i] = b2 * s2[i] + (1.0 - b2) * g * g;
        const double bc2 = 1.0 - pow(b2, (double)t);
        if (cfg->kind == OCLSEG_OPT_ADAM || adamw) {
            const double bc1 = 1.0 - pow(b1, (double)t);
            p[i] -= lr / bc1 * s1[i] / (sqrt(s2[i]) / sqrt(bc2) + eps);
        } else {
            const double denom = sqrt(s2[i] / bc2) + eps;
            /* torch 1.13 _single_tensor_nadam: mu_product_next = mu_product * mu * mu_next */
            const double mu_product_next = st->mu_product * mu * mu_next;
            p[i] += -lr * (1.0 - mu) / (1.0 - st->mu_product) * g / denom;
            p[i] += -lr * mu_next / (1.0 - mu_product_next) * s1[i] / denom;
        }
    }
}

/* ---- configurations under test ---------------------------------------------------------- */
static oclseg_optim_config make_config(oclseg_optimizer_kind kind, float lr, float wd, float b1,
                                       float b2, float eps, float psi, float momentum,
                                       float dampening, int nesterov) {
    oclseg_optim_config c;
    oclseg_optim_config_default(&c, kind);
    c.lr = lr;
    c.weight_decay = wd;
    c.beta1 = b1;
    c.beta2 = b2;
    c.eps = eps;
    c.momentum_decay = psi;
    c.momentum = momentum;
    c.dampening = dampening;
    c.nesterov = nesterov;
    return c;
}

static double max_abs(const double *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Allowed error after `steps` steps for values of magnitude up to `scale`. */
static double step_atol(int steps, double scale) {
    return ULPS_PER_STEP * steps * FLT_EPSILON * fmax(scale, 1e-3);
}

/* Downloads b (guards asserted) into got, compares its range [off, off + count) with ref
 * (harness_compare, named `what`) and asserts every element outside the range bit-identical to
 * init; ref NULL (the op keeps no such state): all of b must be unchanged. */
static void check_range(hbuf *b, float *got, const float *init, size_t off, size_t count,
                        const double *ref, double atol, double rtol, const char *what) {
    hb_download(b, got, what);
    if (ref) harness_compare(what, got + off, ref, count, atol, rtol);
    const size_t begin = ref ? off : 0, end = ref ? off + count : 0;
    ck_assert_msg(memcmp(got, init, begin * sizeof *got) == 0 &&
                      memcmp(got + end, init + end, (b->n - end) * sizeof *got) == 0,
                  "%s: elements outside [%zu, %zu) changed", what, begin, end);
}

/* ---- golden values from PyTorch ---------------------------------------------------------- */
/* The golden problem on one device: parameters optim_golden_param0, a gradient buffer and both
 * states zero, as PyTorch starts them. */
typedef struct golden_bufs {
    hbuf *p, *g, *s1, *s2;
} golden_bufs;

static golden_bufs golden_bufs_create(harness_arena *A, oclseg_ctx *ctx) {
    const size_t n = OPTIM_GOLDEN_N;
    const float *zeros = ha_floats(A, n);
    golden_bufs B = {ha_buf_from(A, ctx, optim_golden_param0, n), ha_buf(A, ctx, n),
                     ha_buf_from(A, ctx, zeros, n), ha_buf_from(A, ctx, zeros, n)};
    return B;
}

/* Step s (from 0) on the golden gradients, with the first `nstates` state buffers. */
static void golden_step(oclseg_ctx *ctx, const oclseg_optim_config *cfg,
                        oclseg_optim_host_state *st, const golden_bufs *B, int s, int nstates) {
    hb_upload(B->g, optim_golden_grad[s]);
    const cl_mem states[2] = {B->s1->buf, nstates >= 2 ? B->s2->buf : NULL};
    ck_assert_int_eq(op_optimizer_step(ctx, cfg, st, B->p->buf, B->g->buf, states, B->p->lead,
                                       OPTIM_GOLDEN_N),
                     OCLSEG_OK);
}

START_TEST(matches_pytorch_golden) {
    const size_t n = OPTIM_GOLDEN_N;
    const size_t cases = sizeof optim_golden_cases / sizeof optim_golden_cases[0];
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        const char *dev = harness_device_name(d);
        for (size_t c = 0; c < cases; c++) {
            const optim_golden_case *gc = &optim_golden_cases[c];
            oclseg_optim_config cfg = make_config((oclseg_optimizer_kind)gc->kind, gc->lr,
                                                  gc->weight_decay, gc->beta1, gc->beta2, gc->eps,
                                                  gc->momentum_decay, gc->momentum, gc->dampening,
                                                  gc->nesterov);
            oclseg_optim_host_state st;
            oclseg_optim_host_state_init(&st);
            harness_arena A = {0};
            const golden_bufs B = golden_bufs_create(&A, ctx);
            const int sgd = gc->kind == OCLSEG_OPT_SGD;
            for (int s = 0; s < OPTIM_GOLDEN_STEPS; s++) {
                golden_step(ctx, &cfg, &st, &B, s, sgd ? 1 : 2);
                hb_check(B.p, gc->param[s], step_atol(s + 1, max_abs(gc->param[s], n)), 0.0,
                         "%s on %s, step %d", gc->name, dev, s + 1);
            }
            ck_assert_int_eq(st.step, OPTIM_GOLDEN_STEPS);
            hb_check(B.s1, gc->state1, step_atol(OPTIM_GOLDEN_STEPS, max_abs(gc->state1, n)), 0.0,
                     "%s on %s, state1", gc->name, dev);
            if (!sgd)
                hb_check(B.s2, gc->state2, step_atol(OPTIM_GOLDEN_STEPS, max_abs(gc->state2, n)),
                         0.0, "%s on %s, state2", gc->name, dev);
            ha_free(&A);
        }
    }
}
END_TEST

/* ---- the C reference on a sub-range ------------------------------------------------------ */
static void check_against_reference(const char *name, const oclseg_optim_config *cfg) {
    const size_t total = harness_small() ? 13 : 1001;
    const size_t off = harness_small() ? 3 : 100, count = harness_small() ? 7 : 777;
    harness_arena A = {0};
    float *p0 = ha_uniform(&A, total, -1.0f, 1.0f, 21);
    float *s10 = ha_uniform(&A, total, -0.5f, 0.5f, 22);
    float *s20 = ha_uniform(&A, total, 0.0f, 0.5f, 23); /* exp_avg_sq >= 0 */
    float *g = ha_floats(&A, total), *got = ha_floats(&A, total);
    double *rp = ha_doubles(&A, count), *rs1 = ha_doubles(&A, count);
    double *rs2 = ha_doubles(&A, count), *rg = ha_doubles(&A, count);
    const int sgd = cfg->kind == OCLSEG_OPT_SGD, lion = cfg->kind == OCLSEG_OPT_LION;
    const int nstates = oclseg_optim_state_count(cfg);
    /* Adam/NAdam start from zero moments inside the range, as PyTorch (random moments with a
     * step-1 bias correction would shrink the updates to nothing); outside the range the states
     * are random so that any write there shows. SGD's buffer stays random: step 1 must ignore it.
     * Lion's momentum stays random too, but for the range's first two elements, whose gradient
     * is always 0 and -0: their c is zero at every step (sign(0) = 0: they only decay). */
    if (!sgd && !lion)
        for (size_t i = off; i < off + count; i++) s10[i] = s20[i] = 0.0f;
    if (lion) s10[off] = s10[off + 1] = 0.0f;
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bp = ha_buf_from(&A, ctx, p0, total), *b1 = ha_buf_from(&A, ctx, s10, total);
        hbuf *b2 = ha_buf_from(&A, ctx, s20, total), *bg = ha_buf(&A, ctx, total);
        oclseg_optim_host_state st;
        oclseg_optim_host_state_init(&st);
        ref_state rst = {0, 1.0};
        for (size_t i = 0; i < count; i++) {
            rp[i] = p0[off + i];
            rs1[i] = s10[off + i];
            rs2[i] = s20[off + i];
        }
        char what[160];
        for (int s = 0; s < STEPS; s++) {
            harness_fill_uniform(g, total, -1.0f, 1.0f, 30 + (uint64_t)s);
            if (lion) g[off] = 0.0f, g[off + 1] = -0.0f;
            for (size_t i = 0; i < count; i++) rg[i] = g[off + i];
            hb_upload(bg, g);
            const cl_mem states[2] = {b1->buf, nstates >= 2 ? b2->buf : NULL};
            ck_assert_int_eq(op_optimizer_step(ctx, cfg, &st, bp->buf, bg->buf, states,
                                               bp->lead + off, count),
                             OCLSEG_OK);
            ref_step(cfg, &rst, rp, rg, rs1, rs2, count);
            snprintf(what, sizeof what, "%s on %s, step %d: param", name, harness_device_name(d), s + 1);
            check_range(bp, got, p0, off, count, rp, step_atol(s + 1, max_abs(rp, count)), 0.0,
                        what);
        }
        ck_assert_int_eq(st.step, STEPS);
        if (cfg->kind == OCLSEG_OPT_NADAM)
            ck_assert_msg(fabs(st.mu_product - rst.mu_product) <= 1e-15, "mu_product %.17g vs %.17g",
                          st.mu_product, rst.mu_product);
        /* states: in range as the reference, outside untouched (SGD without momentum: all) */
        snprintf(what, sizeof what, "%s on %s: state1", name, harness_device_name(d));
        check_range(b1, got, s10, off, count, nstates >= 1 ? rs1 : NULL,
                    step_atol(STEPS, max_abs(rs1, count)), 0.0, what);
        snprintf(what, sizeof what, "%s on %s: state2", name, harness_device_name(d));
        check_range(b2, got, s20, off, count, nstates >= 2 ? rs2 : NULL,
                    step_atol(STEPS, max_abs(rs2, count)), 0.0, what);
    }
    ha_free(&A);
}

START_TEST(nadam_vs_reference) {
    oclseg_optim_config cfg;
    oclseg_optim_config_default(&cfg, OCLSEG_OPT_NADAM);
    check_against_reference("nadam default", &cfg);
    cfg = make_config(OCLSEG_OPT_NADAM, 2e-3f, 1e-2f, 0.8f, 0.99f, 1e-6f, 4e-2f, 0, 0, 0);
    check_against_reference("nadam weight decay", &cfg);
    /* momentum decay 1 (250x the default) and lr 1e-2: mu_1 = 0.468, mu_2 = 0.485 (at the
     * default they differ by ~1e-5 relative), so mu_t and mu_{t+1} exchanged move step 1's
     * parameters by 1.7e-5 (in mu_product) to 3.4e-4 (in the coefficients), 36x and 720x
     * step_atol; the configurations above show either at 1-5x the tolerance */
    cfg = make_config(OCLSEG_OPT_NADAM, 1e-2f, 0, 0.9f, 0.999f, 1e-8f, 1.0f, 0, 0, 0);
    check_against_reference("nadam fast momentum decay", &cfg);
}
END_TEST

START_TEST(decoupled_vs_reference) {
    oclseg_optim_config cfg = make_config(OCLSEG_OPT_NADAM, 2e-3f, 5e-2f, 0.8f, 0.99f, 1e-6f,
                                          4e-2f, 0, 0, 0);
    cfg.decoupled_wd = 1;
    check_against_reference("nadam decoupled weight decay", &cfg);
    cfg = make_config(OCLSEG_OPT_ADAM, 3e-3f, 5e-2f, 0.85f, 0.995f, 1e-6f, 0, 0, 0, 0);
    cfg.decoupled_wd = 1;
    check_against_reference("adam decoupled weight decay", &cfg);
    /* AdamW (torch.optim.AdamW: p *= 1 - lr * wd, then Adam's step) decouples by its kind: its
     * defaults (wd 1e-2), and the Adam case above with decoupled_wd cleared */
    oclseg_optim_config_default(&cfg, OCLSEG_OPT_ADAMW);
    check_against_reference("adamw default", &cfg);
    cfg = make_config(OCLSEG_OPT_ADAMW, 3e-3f, 5e-2f, 0.85f, 0.995f, 1e-6f, 0, 0, 0, 0);
    cfg.decoupled_wd = 0;
    check_against_reference("adamw weight decay", &cfg);
}
END_TEST

/* ---- AdamW under the one-cycle schedule against PyTorch (tools/make_schedule_golden.py) ---- */
START_TEST(adamw_onecycle_matches_pytorch) {
    oclseg_optim_config cfg = make_config(OCLSEG_OPT_ADAM, adamw_golden_lr, adamw_golden_wd,
                                          adamw_golden_beta1, adamw_golden_beta2,
                                          adamw_golden_eps, 0, 0, 0, 0);
    cfg.decoupled_wd = 1;
    oclseg_schedule sched;
    oclseg_schedule_default(&sched, OCLSEG_SCHED_ONECYCLE, OPTIM_GOLDEN_STEPS);
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        oclseg_optim_host_state st;
        oclseg_optim_host_state_init(&st);
        harness_arena A = {0};
        const golden_bufs B = golden_bufs_create(&A, ctx);
        for (int s = 0; s < OPTIM_GOLDEN_STEPS; s++) {
            oclseg_optim_config step_cfg = cfg;
            const double lr = oclseg_schedule_lr(&sched, adamw_golden_lr, s);
            ck_assert_msg(fabs(lr - adamw_golden_rates[s]) <= 1e-12 * adamw_golden_lr,
                          "AdamW one-cycle rate of step %d: %.17g vs %.17g", s, lr,
                          adamw_golden_rates[s]);
            step_cfg.lr = (float)lr;
            golden_step(ctx, &step_cfg, &st, &B, s, 2);
            /* the rate is rounded to float once per step (1/2 ulp of lr): within step_atol */
            hb_check(B.p, adamw_golden_param[s],
                     step_atol(s + 1, max_abs(adamw_golden_param[s], OPTIM_GOLDEN_N)), 0.0,
                     "AdamW one-cycle on %s, step %d", harness_device_name(d), s + 1);
        }
        ha_free(&A);
    }
}
END_TEST

/* ---- gradient clipping by global norm ----------------------------------------------------- */
/* Tolerance: the norm is a sum of <= 1200 squares in float (strided partial sums of <= ~19
 * terms, then two trees of depth <= 8): relative error <= ~40 * 6e-8 on the sum, half that on
 * its square root, so rtol 2e-6 on the norm and the coefficient, and 3e-6 on each scaled
 * gradient (one more rounding). */
START_TEST(clip_grad_norm_vs_reference) {
    const size_t total = harness_small() ? 29 : 1237, off = 5;
    const size_t count = harness_small() ? 19 : 1200;
    harness_arena A = {0};
    const float *g = ha_uniform(&A, total, -2.0f, 2.0f, 41);
    float *got = ha_floats(&A, total);
    double *ref = ha_doubles(&A, count);
    double sumsq = 0.0;
    for (size_t i = 0; i < count; i++) sumsq += (double)g[off + i] * g[off + i];
    const double norm = sqrt(sumsq);
    const float max_norms[2] = {(float)(norm / 3.0), (float)(norm * 2.0)}; /* clips; does not */
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        for (int k = 0; k < 2; k++) {
            hbuf *bg = ha_buf_from(&A, ctx, g, total);
            cl_mem o2; /* {norm, coefficient} */
            ck_assert_int_eq(oclseg_buffer_create(ctx, 2 * sizeof(float), "clip out", &o2), OCLSEG_OK);
            HARNESS_REJECTS(op_clip_grad_norm(ctx, bg->buf, bg->lead + off, count, 0.0f, o2));
            ck_assert_int_eq(
                op_clip_grad_norm(ctx, bg->buf, bg->lead + off, count, max_norms[k], o2), OCLSEG_OK);
            float res[2];
            ck_assert_int_eq(oclseg_read(ctx, o2, 0, sizeof res, res), OCLSEG_OK);
            oclseg_buffer_free(ctx, o2);
            const double coef = fmin(1.0, max_norms[k] / (norm + 1e-6));
            const double expect[2] = {norm, coef};
            harness_compare("clip norm and coefficient", res, expect, 2, 0.0, 2e-6);
            for (size_t i = 0; i < count; i++) ref[i] = g[off + i] * coef;
            char what[96];
            snprintf(what, sizeof what, "clipped gradients (max norm %g) on %s",
                     (double)max_norms[k], harness_device_name(d));
            check_range(bg, got, g, off, count, ref, 0.0, 3e-6, what);
        }
    }
    ha_free(&A);
}
END_TEST

START_TEST(adam_vs_reference) {
    oclseg_optim_config cfg;
    oclseg_optim_config_default(&cfg, OCLSEG_OPT_ADAM);
    check_against_reference("adam default", &cfg);
    cfg = make_config(OCLSEG_OPT_ADAM, 3e-3f, 5e-2f, 0.85f, 0.995f, 1e-6f, 0, 0, 0, 0);
    check_against_reference("adam weight decay", &cfg);
}
END_TEST

/* Lion against the paper's rule in double (ref_step) on an odd sub-range: random starting
 * momentum, several steps, with and without weight decay; two elements have a zero gradient (0,
 * -0) and zero momentum, so c = 0 there at every step and sign(0) = 0 leaves them only decayed
 * (a sign(0) of +-1 would move them by lr per step: 40x step_atol at the default lr). Tolerance:
 * step_atol as above (each step rounds p * decay and p - lr * s once, the float decay and lr are
 * within 1/2 ulp of the double ones: ~1 ulp per step). The sign itself must agree: the kernel's
 * float c is within ~1e-6 of the double c (|m|, |g| <= 1, a few roundings per step), so the test
 * asserts that no nonzero |c| of its data is below 1e-5, where the two signs could differ. */
START_TEST(lion_vs_reference) {
    oclseg_optim_config cfg;
    ref_lion_min_abs_c = INFINITY;
    oclseg_optim_config_default(&cfg, OCLSEG_OPT_LION);
    check_against_reference("lion default", &cfg);
    cfg = make_config(OCLSEG_OPT_LION, 1e-3f, 0.1f, 0.8f, 0.95f, 0, 0, 0, 0, 0);
    check_against_reference("lion weight decay", &cfg);
    ck_assert_msg(ref_lion_min_abs_c > 1e-5, "test data too close to a sign change: |c| = %g",
                  ref_lion_min_abs_c);
}
END_TEST

/* Lion's sign(0) = 0, exactly: one step on four elements, g = {0, -0, 0, 1}, m = {0, 0, 1e-3, 0}:
 * c = {0, -0, 9e-4, 0.1}, so p = {p*decay, p*decay, p*decay - lr, p*decay - lr} with decay
 * = 1 - lr*wd, and m = {0, 0, 9.9e-4, 0.01}. A rounding or two each: 1e-7 absolute on p
 * (ulp(0.5) = 6e-8), 1e-9 on m (ulp(0.01) = 9.3e-10). */
START_TEST(lion_sign_of_zero) {
    const float p0[4] = {0.5f, -0.5f, 0.25f, 0.125f}, g[4] = {0.0f, -0.0f, 0.0f, 1.0f};
    const float m0[4] = {0.0f, 0.0f, 1e-3f, 0.0f};
    /* the float hyperparameters' exact values */
    const double lr = (double)1e-2f, decay = 1.0 - lr * 0.5, b2 = (double)0.99f;
    const double want_p[4] = {0.5 * decay, -0.5 * decay, 0.25 * decay - lr, 0.125 * decay - lr};
    const double want_m[4] = {0.0, 0.0, b2 * (double)1e-3f, 1.0 - b2};
    oclseg_optim_config cfg = make_config(OCLSEG_OPT_LION, 1e-2f, 0.5f, 0.9f, 0.99f, 0, 0, 0, 0, 0);
    harness_arena A = {0};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        hbuf *bp = ha_buf_from(&A, ctx, p0, 4), *bg = ha_buf_from(&A, ctx, g, 4);
        hbuf *bm = ha_buf_from(&A, ctx, m0, 4);
        oclseg_optim_host_state st;
        oclseg_optim_host_state_init(&st);
        const cl_mem states[2] = {bm->buf, NULL};
        ck_assert_int_eq(op_optimizer_step(ctx, &cfg, &st, bp->buf, bg->buf, states, bp->lead, 4),
                         OCLSEG_OK);
        hb_check(bp, want_p, 1e-7, 0.0, "lion sign(0): parameters");
        hb_check(bm, want_m, 1e-9, 0.0, "lion sign(0): momentum");
    }
    ha_free(&A);
}
END_TEST

START_TEST(sgd_vs_reference) {
    oclseg_optim_config cfg;
    oclseg_optim_config_default(&cfg, OCLSEG_OPT_SGD);
    check_against_reference("sgd momentum", &cfg);
    cfg.nesterov = 1;
    cfg.weight_decay = 1e-2f;
    check_against_reference("sgd nesterov + weight decay", &cfg);
    cfg = make_config(OCLSEG_OPT_SGD, 2e-2f, 1e-2f, 0, 0, 0, 0, 0.8f, 0.25f, 0);
    check_against_reference("sgd dampening", &cfg);
    cfg = make_config(OCLSEG_OPT_SGD, 1e-2f, 0, 0, 0, 0, 0, 0, 0, 0);
    check_against_reference("sgd plain", &cfg);
}
END_TEST

/* Every row of the optimizer table is usable: its name finds it, its defaults are its own kind
 * and pass the checks, its states fit and have distinct checkpoint keys. */
START_TEST(optimizer_table_complete) {
    for (int k = 0; k < OCLSEG_OPT_COUNT; k++) {
        const oclseg_optimizer_desc *d = oclseg_optimizer_get(k);
        ck_assert_msg(d && d->name && d->title && d->step, "optimizer %d: incomplete row", k);
        ck_assert_int_eq(oclseg_optimizer_find(d->name), k);
        ck_assert_int_eq((int)d->defaults.kind, k);
        ck_assert_msg(d->defaults.lr > 0.0f, "%s: no default learning rate", d->name);
        ck_assert_int_eq(oclseg_optim_config_check(&d->defaults), OCLSEG_OK);
        ck_assert(d->state_count >= 0 && d->state_count <= OCLSEG_OPTIM_MAX_STATES);
        ck_assert(oclseg_optim_state_count(&d->defaults) <= d->state_count);
        for (int s = 0; s < d->state_count; s++) {
            ck_assert_msg(d->state_keys[s] && d->state_keys[s][0], "%s: state %d unnamed", d->name, s);
            for (int r = 0; r < s; r++) ck_assert_str_ne(d->state_keys[r], d->state_keys[s]);
        }
    }
    ck_assert(oclseg_optimizer_get(OCLSEG_OPT_COUNT) == NULL && oclseg_optimizer_get(-1) == NULL);
    ck_assert_int_eq(oclseg_optimizer_find("adagrad"), -1);
    ck_assert_int_eq(oclseg_optimizer_find(NULL), -1);
    /* the checkpoint keys of existing checkpoints */
    ck_assert_str_eq(oclseg_optimizer_get(OCLSEG_OPT_NADAM)->state_keys[1], "exp_avg_sq");
    ck_assert_str_eq(oclseg_optimizer_get(OCLSEG_OPT_SGD)->state_keys[0], "exp_avg");
}
END_TEST

START_TEST(defaults_and_host_state) {
    oclseg_optim_config c;
    oclseg_optim_config_default(&c, OCLSEG_OPT_NADAM);
    ck_assert(c.kind == OCLSEG_OPT_NADAM && c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f &&
              c.eps == 1e-8f && c.momentum_decay == 4e-3f && c.weight_decay == 0.0f);
    oclseg_optim_config_default(&c, OCLSEG_OPT_ADAM);
    ck_assert(c.kind == OCLSEG_OPT_ADAM && c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f &&
              c.eps == 1e-8f && c.weight_decay == 0.0f);
    oclseg_optim_config_default(&c, OCLSEG_OPT_SGD);
    ck_assert(c.kind == OCLSEG_OPT_SGD && c.lr == 1e-2f && c.momentum == 0.9f &&
              c.dampening == 0.0f && !c.nesterov && c.weight_decay == 0.0f);
    ck_assert_int_eq(oclseg_optim_state_count(&c), 1);
    c.momentum = 0.0f; /* plain SGD keeps no state */
    ck_assert_int_eq(oclseg_optim_state_count(&c), 0);
    oclseg_optim_config_default(&c, OCLSEG_OPT_ADAMW); /* torch.optim.AdamW's defaults */
    ck_assert(c.kind == OCLSEG_OPT_ADAMW && c.lr == 1e-3f && c.beta1 == 0.9f &&
              c.beta2 == 0.999f && c.eps == 1e-8f && c.weight_decay == 1e-2f && c.decoupled_wd);
    oclseg_optim_host_state st = {42, 0.5};
    oclseg_optim_host_state_init(&st);
    ck_assert(st.step == 0 && st.mu_product == 1.0);
}
END_TEST

START_TEST(invalid_arguments) {
    const float v[4] = {1, 2, 3, 4};
    harness_arena A = {0};
    for (int d = 0; d < harness_device_count(); d++) {
        oclseg_ctx *ctx = harness_ctx(d);
        const hbuf *b = ha_buf_from(&A, ctx, v, 4);
        const cl_mem one[2] = {b->buf, NULL}, none[2] = {NULL, NULL}, both[2] = {b->buf, b->buf};
        oclseg_optim_config cfg;
        oclseg_optim_host_state st;
        oclseg_optim_host_state_init(&st);
        oclseg_optim_config_default(&cfg, OCLSEG_OPT_ADAM);
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, one, b->lead, 4));
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, NULL, b->lead, 4));
        oclseg_optim_config_default(&cfg, OCLSEG_OPT_SGD);
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, none, b->lead, 4));
        cfg.decoupled_wd = 1; /* SGD's weight decay is coupled: refused, not ignored */
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, one, b->lead, 4));
        cfg.decoupled_wd = 0;
        cfg.nesterov = 1;
        cfg.dampening = 0.1f;
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, one, b->lead, 4));
        oclseg_optim_config_default(&cfg, OCLSEG_OPT_NADAM);
        cfg.beta2 = 1.0f;
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, both, b->lead, 4));
        cfg.beta2 = 0.999f;
        cfg.lr = NAN;
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, both, b->lead, 4));
        cfg.lr = 1e-3f;
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, both,
                                          (size_t)UINT32_MAX, 4));
        cfg.kind = OCLSEG_OPT_COUNT; /* not an optimizer */
        HARNESS_REJECTS(op_optimizer_step(ctx, &cfg, &st, b->buf, b->buf, both, b->lead, 4));
        ck_assert_int_eq(st.step, 0); /* failed calls do not advance the step */
    }
    ha_free(&A);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_optim");
    TCase *tc = tcase_create("optim");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, matches_pytorch_golden);
    tcase_add_test(tc, nadam_vs_reference);
    tcase_add_test(tc, adam_vs_reference);
    tcase_add_test(tc, sgd_vs_reference);
    tcase_add_test(tc, lion_vs_reference);
    tcase_add_test(tc, lion_sign_of_zero);
    tcase_add_test(tc, defaults_and_host_state);
    tcase_add_test(tc, optimizer_table_complete);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, decoupled_vs_reference);
    tcase_add_test(tc, adamw_onecycle_matches_pytorch);
    tcase_add_test(tc, clip_grad_norm_vs_reference);
    tcase_add_unchecked_fixture(tc, NULL, harness_release_scratch);
    suite_add_tcase(s, tc);
    return harness_run(s);
}
