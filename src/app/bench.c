/* `oclseg bench`'s measurement on one device: the training step pipelined and waited for, its
 * parts alone, host enqueue counts, the SGEMM ceiling and a per-kernel profile. */
#include "oclseg/bench.h"

#include <stdlib.h>
#include <string.h>

#include "oclseg/session.h"
#include "oclseg/trainer.h"
#include "oclseg/tuning.h"
#include "oclseg/util.h"

/* One device's measurement: its session, the random batch and the sample buffer. */
typedef struct bench_run {
    const oclseg_bench_options *o;
    oclseg_session *ses;
    float *images, *masks;
    double *samples; /* (steps) */
} bench_run;

static double now_ms(void) { return oclseg_now_s() * 1e3; }

/* The session of a bench run: random init (seed 1), NAdam, the mode's frozen encoder, the
 * options' decoder. */
static void session_options(const oclseg_device_info *dev, const oclseg_bench_options *o,
                            oclseg_session_options *so) {
    oclseg_session_options_synthetic_training(so, o->size, o->batch, o->frozen);
    so->model.decoder_kind = o->decoder;
    so->dev = dev;
}

/* A fixed pseudo-random batch (images in [-2, 2), striped masks). */
static int make_batch(bench_run *b) {
    const oclseg_bench_options *o = b->o;
    size_t s2 = (size_t)o->size * o->size;
    b->images = malloc((size_t)o->batch * 3 * s2 * sizeof *b->images);
    b->masks = malloc((size_t)o->batch * s2 * sizeof *b->masks);
    b->samples = malloc((size_t)o->steps * sizeof *b->samples);
    if (!b->images || !b->masks || !b->samples) return OCLSEG_ERR_OUT_OF_MEMORY;
    uint64_t rng = 12345;
    for (size_t i = 0; i < (size_t)o->batch * 3 * s2; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        b->images[i] = (float)((rng >> 40) / 16777216.0 * 4.0 - 2.0);
    }
    for (size_t i = 0; i < (size_t)o->batch * s2; i++) b->masks[i] = (float)((i / 37) % 2);
    return OCLSEG_OK;
}

static int drain(oclseg_trainer *t) {
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    return oclseg_trainer_drain_losses(t, losses, &first, &count);
}

/* Full steps as training runs them: enqueued back to back, one wait per window of steps (the
 * host prepares the next step while the device runs this one); the host's enqueue counts. */
static int time_pipelined(bench_run *b, oclseg_bench_result *r) {
    const oclseg_bench_options *o = b->o;
    oclseg_ctx *ctx = b->ses->ctx;
    oclseg_trainer *t = b->ses->trainer;
    const int window = o->steps >= 10 ? 5 : 1, windows = o->steps / window;
    const oclseg_enqueue_stats before = ctx->enqueued;
    for (int i = 0; i < windows; i++) {
        double t0 = now_ms();
        for (int k = 0; k < window; k++) TRY(oclseg_trainer_step(t, b->images, b->masks, o->batch));
        TRY(drain(t));
        b->samples[i] = (now_ms() - t0) / window;
    }
    r->step_ms = oclseg_median(b->samples, windows);
    const double steps_run = (double)windows * window;
    r->launches = (double)(ctx->enqueued.kernels - before.kernels) / steps_run;
    r->clblast_calls = (double)(ctx->enqueued.clblast_calls - before.clblast_calls) / steps_run;
    r->enqueue_ms = (ctx->enqueued.enqueue_s - before.enqueue_s) * 1e3 / steps_run;
    r->clblast_ms = (ctx->enqueued.clblast_s - before.clblast_s) * 1e3 / steps_run;
    r->blocking_calls =
        (double)(ctx->enqueued.clblast_blocking - before.clblast_blocking) / steps_run;
    return OCLSEG_OK;
}

/* Each step waited for alone (latency: includes every launch's host overhead), then forward,
 * backward and the optimizer, each timed alone. */
static int time_waited_and_parts(bench_run *b, oclseg_bench_result *r) {
    const oclseg_bench_options *o = b->o;
    oclseg_ctx *ctx = b->ses->ctx;
    oclseg_model *m = b->ses->model;
    oclseg_trainer *t = b->ses->trainer;
    for (int i = 0; i < o->steps; i++) {
        double t0 = now_ms();
        TRY(oclseg_trainer_step(t, b->images, b->masks, o->batch));
        TRY(oclseg_finish(ctx));
        b->samples[i] = now_ms() - t0;
        TRY(drain(t));
    }
    r->step_sync_ms = oclseg_median(b->samples, o->steps);
    double *part_ms[3] = {&r->forward_ms, &r->backward_ms, &r->optim_ms};
    const oclseg_pass pass = {.n = o->batch, .train = 1, .frozen_encoder = o->frozen,
                              .dropout_seed = 1, .step = 99};
    for (int part = 0; part < 3; part++) {
        for (int i = 0; i < o->steps; i++) {
            double t0 = now_ms();
            if (part == 0) TRY(oclseg_model_forward(m, &pass));
            else if (part == 1) TRY(oclseg_model_backward(m, &pass));
            else TRY(oclseg_trainer_optimizer_step_detached(t));
            TRY(oclseg_finish(ctx));
            b->samples[i] = now_ms() - t0;
        }
        *part_ms[part] = oclseg_median(b->samples, o->steps);
    }
    return OCLSEG_OK;
}

/* One profiled step, on a fresh session whose queue has profiling enabled. */
static int profile_step(bench_run *b, const oclseg_device_info *dev, oclseg_bench_result *r) {
    oclseg_session_options so;
    session_options(dev, b->o, &so);
    so.profiling = 1;
    oclseg_session_free(b->ses);
    b->ses = NULL;
    TRY(oclseg_session_create(&so, &b->ses));
    oclseg_ctx *ctx = b->ses->ctx;
    oclseg_trainer *t = b->ses->trainer;
    TRY(oclseg_trainer_step(t, b->images, b->masks, b->o->batch));
    TRY(oclseg_finish(ctx));
    oclseg_prof_reset(ctx);
    TRY(oclseg_trainer_step(t, b->images, b->masks, b->o->batch));
    TRY(oclseg_prof_collect(ctx, &r->kernel_names, &r->kernel_ms, &r->kernel_count));
    for (int i = 0; i < r->kernel_count; i++) r->profiled_ms += r->kernel_ms[i];
    return drain(t);
}

/* The timings on a queue without profiling (event profiling costs time on some drivers), the
 * SGEMM ceiling, then the profiled step. */
static int measure(bench_run *b, const oclseg_device_info *dev, oclseg_bench_result *r) {
    const oclseg_bench_options *o = b->o;
    oclseg_session_options so;
    session_options(dev, o, &so);
    TRY(oclseg_session_create(&so, &b->ses));
    oclseg_ctx *ctx = b->ses->ctx;
    r->gemm_tuned = oclseg_tuning_status(ctx, r->gemm_tuning, sizeof r->gemm_tuning);
    r->gemm_own = oclseg_gemm_own_kernels(ctx);
    oclseg_tuning_backend_counts(ctx, &r->gemm_file_own, &r->gemm_file_clblast);
    const oclseg_gemm_shape ceiling = {0, 0, 0, 1, 1024, 1024, 1024, 0.0f, 0, 0};
    r->gemm_ceiling_own = oclseg_gemm_own_for(ctx, &ceiling);
    TRY(make_batch(b));
    for (int i = 0; i < 2; i++)
        TRY(oclseg_trainer_step(b->ses->trainer, b->images, b->masks, o->batch));
    TRY(oclseg_finish(ctx));
    TRY(time_pipelined(b, r));
    TRY(time_waited_and_parts(b, r));
    oclseg_model_flops(b->ses->model, o->batch, o->frozen, &r->flops_fwd, &r->flops_bwd);
    r->peak_bytes = ctx->peak_bytes;
    TRY(oclseg_sgemm_ceiling_gflops(ctx, 1024, &r->sgemm_gflops));
    TRY(profile_step(b, dev, r));
    r->images_per_s = o->batch / (r->step_ms / 1e3);
    r->gflops = (r->flops_fwd + r->flops_bwd) / (r->step_ms / 1e3) / 1e9;
    return OCLSEG_OK;
}

int oclseg_bench_device(const oclseg_device_info *dev, const oclseg_bench_options *o,
                        oclseg_bench_result *r) {
    memset(r, 0, sizeof *r);
    r->info = *dev;
    bench_run b = {.o = o};
    int st = measure(&b, dev, r);
    free(b.images);
    free(b.masks);
    free(b.samples);
    oclseg_session_free(b.ses);
    return st;
}

void oclseg_bench_result_release(oclseg_bench_result *r) {
    free(r->kernel_names);
    free(r->kernel_ms);
    r->kernel_names = NULL;
    r->kernel_ms = NULL;
    r->kernel_count = 0;
}

int oclseg_bench_devices(const char *spec, oclseg_device_info **devs, int *count) {
    *devs = NULL;
    *count = 0;
    if (spec && strcmp(spec, "all") == 0) return oclseg_devices_list(devs, count);
    oclseg_device_info *one = malloc(sizeof *one);
    if (!one) return OCLSEG_ERR_OUT_OF_MEMORY;
    int st = oclseg_device_choose(spec, one);
    if (st != OCLSEG_OK) {
        free(one);
        return st;
    }
    *devs = one;
    *count = 1;
    return OCLSEG_OK;
}
