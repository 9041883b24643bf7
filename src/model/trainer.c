/* The training step (upload, forward, loss, backward, optimizer) and evaluation batches. */
#include "oclseg/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oclseg/dist.h"
#include "oclseg/util.h"

int oclseg_trainer_create(oclseg_model *model, const oclseg_trainer_config *cfg,
                          oclseg_trainer **out) {
    *out = NULL;
    oclseg_trainer *t = calloc(1, sizeof *t);
    if (!t) return OCLSEG_ERR_OUT_OF_MEMORY;
    t->model = model;
    t->ctx = model->ctx;
    if (cfg) {
        t->cfg = *cfg;
        int st = oclseg_optim_config_check(&cfg->optim);
        if (st == OCLSEG_OK) st = oclseg_model_enable_training(model);
        if (st == OCLSEG_OK) st = oclseg_model_enable_optimizer(model, &cfg->optim);
        if (st != OCLSEG_OK) {
            free(t);
            return st;
        }
    } else { /* evaluation only: the optimizer is never used */
        t->eval_only = 1;
        oclseg_optim_config_default(&t->cfg.optim, OCLSEG_OPT_NADAM);
    }
    oclseg_optim_host_state_init(&t->opt);
    size_t s = (size_t)model->cfg.size, b = (size_t)model->cfg.max_batch;
    t->image_floats = b * 3 * s * s;
    t->mask_floats = b * s * s;
    int st = OCLSEG_OK;
    TRY_GOTO(oclseg_buffer_create(t->ctx, t->mask_floats * sizeof(float), "target masks",
                                  &t->targets_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(t->ctx, OCLSEG_LOSS_RING * sizeof(float), "loss ring",
                                  &t->loss_ring_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(t->ctx, OCLSEG_LOSS_RING * sizeof(float), "gradient check ring",
                                  &t->finite_ring_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(t->ctx, b * 4 * sizeof(uint32_t), "confusion counts",
                                  &t->counts_buf), st, fail);
    TRY_GOTO(oclseg_buffer_create(t->ctx, sizeof(float), "evaluation loss", &t->eval_loss_buf),
             st, fail);
    TRY_GOTO(oclseg_buffer_create(t->ctx, 2 * sizeof(float), "gradient norm", &t->clip_buf), st,
             fail);
    for (int i = 0; i < 2; i++) {
        void *host;
        TRY_GOTO(oclseg_host_buffer_create(t->ctx, (t->image_floats + t->mask_floats) *
                                                       sizeof(float), &t->staging_buf[i], &host),
                 st, fail);
        t->staging[i] = host;
    }
    *out = t;
    return OCLSEG_OK;
fail:
    oclseg_trainer_free(t);
    return st;
}

void oclseg_trainer_free(oclseg_trainer *t) {
    if (!t) return;
    clFinish(t->ctx->queue);
    for (int i = 0; i < 2; i++) {
        if (t->upload_done[i]) {
            clReleaseEvent(t->upload_done[i]);
            oclseg_cl_released(OCLSEG_CL_EVENT);
        }
        if (t->staging[i]) oclseg_host_buffer_free(t->ctx, t->staging_buf[i], t->staging[i]);
    }
    free(t->reduce_host);
    oclseg_buffer_free(t->ctx, t->targets_buf);
    oclseg_buffer_free(t->ctx, t->loss_ring_buf);
    oclseg_buffer_free(t->ctx, t->finite_ring_buf);
    oclseg_buffer_free(t->ctx, t->counts_buf);
    oclseg_buffer_free(t->ctx, t->eval_loss_buf);
    oclseg_buffer_free(t->ctx, t->clip_buf);
    free(t);
}

/* Copies the batch into a staging slot and enqueues non-blocking uploads of images and masks.
 * The slot used two uploads ago is waited for first (normally long complete). */
static int upload_batch(oclseg_trainer *t, const float *images, const float *masks, int n) {
    oclseg_model *m = t->model;
    int slot = (int)(t->step & 1);
    if (t->upload_done[slot]) {
        CL_CHECK(clWaitForEvents(1, &t->upload_done[slot]));
        clReleaseEvent(t->upload_done[slot]);
        oclseg_cl_released(OCLSEG_CL_EVENT);
        t->upload_done[slot] = NULL;
    }
    size_t s2 = (size_t)m->cfg.size * m->cfg.size;
    size_t img = (size_t)n * 3 * s2, msk = (size_t)n * s2;
    float *stage = t->staging[slot];
    memcpy(stage, images, img * sizeof(float));
    memcpy(stage + t->image_floats, masks, msk * sizeof(float));
    oclseg_tensor in = oclseg_model_input(m, n);
    CL_CHECK(clEnqueueWriteBuffer(t->ctx->queue, in.buf, CL_FALSE, in.off * sizeof(float),
                                  img * sizeof(float), stage, 0, NULL, NULL));
    CL_CHECK(clEnqueueWriteBuffer(t->ctx->queue, t->targets_buf, CL_FALSE, 0, msk * sizeof(float),
                                  stage + t->image_floats, 0, NULL, &t->upload_done[slot]));
    oclseg_cl_created(OCLSEG_CL_EVENT);
    return OCLSEG_OK;
}

/* Test hook: OCLSEG_FAULT_NAN=param:NAME:STEP writes a NaN into parameter NAME before step
 * STEP's forward; grad:NAME:STEP into its gradient after the backward (the loss stays finite). */
static int inject_nan(oclseg_trainer *t, int into_grad) {
    const char *spec = t->ctx->env.fault_nan;
    const char *kind = into_grad ? "grad:" : "param:";
    if (!spec || strncmp(spec, kind, strlen(kind)) != 0) return OCLSEG_OK;
    char name[128];
    snprintf(name, sizeof name, "%s", spec + strlen(kind));
    char *colon = strrchr(name, ':');
    if (!colon || atoll(colon + 1) != t->step) return OCLSEG_OK;
    *colon = '\0';
    int index = oclseg_model_find_param(t->model, name);
    if (index < 0) {
        OCLSEG_ERROR("OCLSEG_FAULT_NAN: no parameter '%s'", name);
        return OCLSEG_ERR_NOT_FOUND;
    }
    const float nan = NAN;
    const oclseg_model *m = t->model;
    return oclseg_write(t->ctx, into_grad ? m->grads_buf : m->params_buf,
                        (m->params[index].off + oclseg_param_numel(&m->params[index]) / 2) *
                            sizeof(float), sizeof nan, &nan);
}

/* --check-numerics: stops at the first non-finite value of this step's forward (phase 0) or
 * backward (phase 1), naming the layer; the optimizer has not run yet, so weights are intact. */
static int check_numerics(oclseg_trainer *t, const oclseg_pass *pass, int backward) {
    char where[256];
    int found = oclseg_model_locate_nonfinite(t->model, pass, backward, where, sizeof where);
    if (found < 0) return found;
    if (found) {
        OCLSEG_ERROR("step %lld: the first NaN/Inf of the %s pass is in %s; stopping before the "
                     "weights change (the last checkpoint is kept)", (long long)t->step,
                     backward ? "backward" : "forward", where);
        return OCLSEG_ERR_NUMERIC;
    }
    return OCLSEG_OK;
}

static int local_pass(oclseg_trainer *t, const float *images, const float *masks,
                      const oclseg_pass *pass);

/* Data parallel: reads this rank's gradients (from element off) and loss to the host, replaces
 * them by the global-batch average over all ranks, writes them back. Every rank ends up with the
 * same bits, so the optimizer keeps the parameters identical everywhere. */
static int reduce_over_ranks(oclseg_trainer *t, const int *rank_counts, size_t off,
                             double step_start) {
    oclseg_model *m = t->model;
    double t0 = oclseg_now_s();
    const int size = oclseg_dist_size();
    const size_t count = m->param_floats - off;
    const size_t loss_byte = (size_t)(t->step % OCLSEG_LOSS_RING) * sizeof(float);
    if (!t->reduce_host && !(t->reduce_host = malloc((m->param_floats + 1) * sizeof(float))))
        return OCLSEG_ERR_OUT_OF_MEMORY;
    double *w = malloc((size_t)size * sizeof *w);
    if (!w) return OCLSEG_ERR_OUT_OF_MEMORY;
    double total = 0.0;
    for (int r = 0; r < size; r++) total += rank_counts[r];
    for (int r = 0; r < size; r++) w[r] = (double)rank_counts[r] / total;
    float *h = t->reduce_host;
    int st = oclseg_read(t->ctx, m->grads_buf, off * sizeof(float), count * sizeof(float), h);
    t->last_compute_seconds = oclseg_now_s() - step_start; /* the read waited for the backward */
    if (st == OCLSEG_OK) st = oclseg_read(t->ctx, t->loss_ring_buf, loss_byte, sizeof(float), h + count);
    if (st == OCLSEG_OK) st = oclseg_dist_sum(h, count + 1, w);
    if (st == OCLSEG_OK)
        st = oclseg_write(t->ctx, m->grads_buf, off * sizeof(float), count * sizeof(float), h);
    if (st == OCLSEG_OK) st = oclseg_write(t->ctx, t->loss_ring_buf, loss_byte, sizeof(float), h + count);
    free(w);
    t->reduce_seconds += oclseg_now_s() - t0;
    t->reduce_steps++;
    return st;
}

/* Copies rank 0's trained parameters and the running statistics to every rank (blocking). The
 * same kernels on two OpenCL implementations may round sqrt, division or a contracted
 * multiply-add differently (OpenCL allows a few ulp), so heterogeneous ranks would drift apart
 * by rounding even from bit-identical gradients. */
static int params_from_rank0(oclseg_trainer *t, size_t off) {
    oclseg_model *m = t->model;
    double t0 = oclseg_now_s();
    const int root = oclseg_dist_rank() == 0;
    struct { cl_mem buf; size_t off, count; } parts[2] = {
        {m->params_buf, off, m->param_floats - off}, {m->buffers_buf, 0, m->buffer_floats}};
    for (int i = 0; i < 2; i++) {
        size_t bytes = parts[i].count * sizeof(float), at = parts[i].off * sizeof(float);
        if (bytes == 0) continue;
        if (root) TRY(oclseg_read(t->ctx, parts[i].buf, at, bytes, t->reduce_host));
        TRY(oclseg_dist_bcast(t->reduce_host, bytes, 0));
        if (!root) TRY(oclseg_write(t->ctx, parts[i].buf, at, bytes, t->reduce_host));
    }
    t->reduce_seconds += oclseg_now_s() - t0;
    return OCLSEG_OK;
}

/* This step's pass over this rank's n images. Data parallel (rank_counts): the global batch is
 * split over the ranks in rank order, so this rank's images start after the lower ranks'. */
static oclseg_pass training_pass(const oclseg_trainer *t, int n, const int *rank_counts) {
    oclseg_pass pass = {.n = n, .train = 1, .frozen_encoder = t->cfg.frozen_encoder,
                        .dropout_seed = t->cfg.seed, .step = (uint64_t)t->step};
    if (rank_counts) {
        pass.rank_counts = rank_counts;
        pass.sync_bn = t->cfg.sync_bn;
        for (int r = 0; r < oclseg_dist_rank(); r++) pass.image_offset += rank_counts[r];
    }
    return pass;
}

int oclseg_trainer_step(oclseg_trainer *t, const float *images, const float *masks, int n) {
    return oclseg_trainer_step_shard(t, images, masks, n, NULL);
}

int oclseg_trainer_step_shard(oclseg_trainer *t, const float *images, const float *masks, int n,
                              const int *rank_counts) {
    const double step_start = oclseg_now_s();
    oclseg_model *m = t->model;
    if (t->eval_only) {
        OCLSEG_ERROR("oclseg_trainer_step: this trainer was created for evaluation only");
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (t->step - t->drained >= OCLSEG_LOSS_RING) {
        OCLSEG_ERROR("%d losses are waiting to be read: call oclseg_trainer_drain_losses",
                     OCLSEG_LOSS_RING);
        return OCLSEG_ERR_INVALID_ARG;
    }
    int dist = rank_counts && oclseg_dist_size() > 1;
    size_t off = oclseg_model_trained_offset(m, t->cfg.frozen_encoder);
    if (n > 0 || !dist) {
        const oclseg_pass pass = training_pass(t, n, dist ? rank_counts : NULL);
        TRY(local_pass(t, images, masks, &pass));
    }
    if (dist) TRY(reduce_over_ranks(t, rank_counts, off, step_start));
    /* every step: one flag for all trained gradients, read back with the losses */
    TRY(op_check_finite(t->ctx, m->grads_buf, off, m->param_floats - off, t->finite_ring_buf,
                        (size_t)(t->step % OCLSEG_LOSS_RING)));
    if (t->cfg.clip_norm > 0.0f)
        TRY(op_clip_grad_norm(t->ctx, m->grads_buf, off, m->param_floats - off, t->cfg.clip_norm,
                              t->clip_buf));
    oclseg_optim_config optim = t->cfg.optim;
    optim.lr = (float)oclseg_schedule_lr(&t->cfg.schedule, t->cfg.optim.lr, t->step);
    TRY(op_optimizer_step(t->ctx, &optim, &t->opt, m->params_buf, m->grads_buf, m->state_bufs,
                          off, m->param_floats - off));
    if (dist && t->broadcast_params) TRY(params_from_rank0(t, off));
    CL_CHECK(clFlush(t->ctx->queue));
    t->step++;
    return OCLSEG_OK;
}

/* Upload, forward, loss and backward of this rank's images (no host synchronisation). */
static int local_pass(oclseg_trainer *t, const float *images, const float *masks,
                      const oclseg_pass *pass) {
    oclseg_model *m = t->model;
    const int n = pass->n;
    TRY(upload_batch(t, images, masks, n));
    TRY(inject_nan(t, 0));
    TRY(oclseg_model_forward(m, pass));
    if (t->cfg.check_numerics) TRY(check_numerics(t, pass, 0));
    oclseg_tensor logits = oclseg_model_logits(m, n), dlogits = oclseg_model_logits_grad(m, n);
    oclseg_tensor target = oclseg_tensor_view(t->targets_buf, 0, n, 1, m->cfg.size, m->cfg.size);
    oclseg_tensor loss = oclseg_tensor_view(t->loss_ring_buf, (size_t)(t->step % OCLSEG_LOSS_RING),
                                            1, 1, 1, 1);
    if (t->cfg.loss != OCLSEG_LOSS_DICE)
        TRY(op_bce_with_logits(t->ctx, &logits, &target, &loss, &dlogits));
    if (t->cfg.loss != OCLSEG_LOSS_BCE)
        TRY(op_soft_dice(t->ctx, &logits, &target, &loss, &dlogits,
                         t->cfg.loss == OCLSEG_LOSS_BCE_DICE));
    TRY(oclseg_model_backward(m, pass));
    TRY(inject_nan(t, 1));
    if (t->cfg.check_numerics) TRY(check_numerics(t, pass, 1));
    return OCLSEG_OK;
}

int64_t oclseg_trainer_pending(const oclseg_trainer *t) { return t->step - t->drained; }

int oclseg_trainer_drain_losses(oclseg_trainer *t, float *losses, int64_t *first_step,
                                int *count) {
    *first_step = t->drained;
    *count = (int)(t->step - t->drained);
    if (*count == 0) return OCLSEG_OK;
    float ring[OCLSEG_LOSS_RING], finite[OCLSEG_LOSS_RING];
    TRY(oclseg_read(t->ctx, t->loss_ring_buf, 0, sizeof ring, ring));
    TRY(oclseg_read(t->ctx, t->finite_ring_buf, 0, sizeof finite, finite));
    for (int i = 0; i < *count; i++) {
        int64_t step = t->drained + i;
        losses[i] = ring[step % OCLSEG_LOSS_RING];
        if (!isfinite(losses[i])) {
            OCLSEG_ERROR("the training loss became %g at step %lld: stopping (lower --lr, or "
                         "check the data); the last checkpoint is kept",
                         (double)losses[i], (long long)step);
            t->drained = step + 1;
            *count = i + 1;
            return OCLSEG_ERR_NUMERIC;
        }
        if (finite[step % OCLSEG_LOSS_RING] != 0.0f) {
            OCLSEG_ERROR("the gradients held NaN/Inf at step %lld (its loss %g was finite): "
                         "stopping; the last checkpoint is kept (run with --check-numerics to "
                         "find the first layer)", (long long)step, (double)losses[i]);
            t->drained = step + 1;
            *count = i + 1;
            return OCLSEG_ERR_NUMERIC;
        }
    }
    t->drained = t->step;
    return OCLSEG_OK;
}

int oclseg_trainer_eval_batch(oclseg_trainer *t, const float *images, const float *masks, int n,
                              float *loss, uint32_t *counts, float *probs) {
    oclseg_model *m = t->model;
    oclseg_tensor in = oclseg_model_input(m, n);
    size_t s2 = (size_t)m->cfg.size * m->cfg.size;
    TRY(oclseg_write(t->ctx, in.buf, in.off * sizeof(float), (size_t)n * 3 * s2 * sizeof(float),
                     images));
    TRY(oclseg_write(t->ctx, t->targets_buf, 0, (size_t)n * s2 * sizeof(float), masks));
    const oclseg_pass pass = oclseg_pass_eval(n);
    TRY(oclseg_model_forward(m, &pass));
    oclseg_tensor logits = oclseg_model_logits(m, n);
    oclseg_tensor target = oclseg_tensor_view(t->targets_buf, 0, n, 1, m->cfg.size, m->cfg.size);
    oclseg_tensor loss_t = oclseg_tensor_view(t->eval_loss_buf, 0, 1, 1, 1, 1);
    TRY(op_bce_with_logits(t->ctx, &logits, &target, &loss_t, NULL));
    TRY(op_seg_counts(t->ctx, &logits, &target, 0.5f, t->counts_buf, 0));
    if (probs) {
        oclseg_tensor p = oclseg_model_probs(m, n);
        TRY(op_sigmoid(t->ctx, &logits, &p));
        TRY(oclseg_tensor_read(t->ctx, &p, probs));
    }
    TRY(oclseg_read(t->ctx, t->eval_loss_buf, 0, sizeof(float), loss));
    TRY(oclseg_read(t->ctx, t->counts_buf, 0, (size_t)n * 4 * sizeof(uint32_t), counts));
    return OCLSEG_OK;
}

int oclseg_trainer_optimizer_step_detached(oclseg_trainer *t) {
    oclseg_model *m = t->model;
    size_t off = oclseg_model_trained_offset(m, t->cfg.frozen_encoder);
    oclseg_optim_host_state host = t->opt; /* a copy: the trainer's own state stays as it was */
    return op_optimizer_step(t->ctx, &t->cfg.optim, &host, m->params_buf, m->grads_buf,
                             m->state_bufs, off, m->param_floats - off);
}
