/* `oclseg bench` under mpirun/srun: per-rank and aggregate images/s of data-parallel training
 * steps, time in the gradient sum, the all-reduce bandwidth, and scaling efficiency against
 * one rank training the whole global batch alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "oclseg/bench.h"
#include "oclseg/dist.h"
#include "oclseg/session.h"

typedef struct rank_result {
    double alone_ms;    /* this rank's device, whole global batch, no communication */
    double step_ms;     /* data-parallel step (its share + the gradient sum) */
    double reduce_ms;   /* of which: gradient read, sum over ranks, write back */
    double allreduce_ms; /* oclseg_dist_sum of all parameters alone */
    double add_ms;       /* of which the host additions */
    int share;
    double params;
    char device[256];
} rank_result;

/* Times `steps` steps (after one warm-up): data-parallel when counts != NULL. */
static int time_steps(oclseg_trainer *t, const float *images, const float *masks, int n,
                      const int *counts, int steps, double *samples, double *reduce_ms) {
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    double reduce0 = 0;
    for (int i = -1; i < steps; i++) {
        if (i == 0) reduce0 = t->reduce_seconds;
        double t0 = bench_now_ms();
        TRY(counts ? oclseg_trainer_step_shard(t, images, masks, n, counts)
                   : oclseg_trainer_step(t, images, masks, n));
        TRY(oclseg_finish(t->ctx));
        if (i >= 0) samples[i] = bench_now_ms() - t0;
        TRY(oclseg_trainer_drain_losses(t, losses, &first, &count));
    }
    if (reduce_ms) *reduce_ms = (t->reduce_seconds - reduce0) * 1e3 / steps;
    return OCLSEG_OK;
}

static int measure(const char *device, int batch, int size, int steps, int frozen,
                   rank_result *res) {
    const int ranks = oclseg_dist_size(), rank = oclseg_dist_rank();
    int *counts = malloc((size_t)ranks * sizeof *counts);
    double *samples = malloc((size_t)(steps > 10 ? steps : 10) * sizeof *samples);
    float *images = NULL, *masks = NULL, *sum = NULL;
    oclseg_session *ses = NULL;
    int st = counts && samples ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    for (int r = 0; st == OCLSEG_OK && r < ranks; r++) counts[r] = batch / ranks + (r < batch % ranks);
    oclseg_session_options so;
    oclseg_session_options_synthetic_training(&so, size, batch, frozen);
    so.device = device;
    if (st == OCLSEG_OK) st = oclseg_session_create(&so, &ses);
    oclseg_ctx *ctx = ses ? ses->ctx : NULL;
    oclseg_model *m = ses ? ses->model : NULL;
    oclseg_trainer *t = ses ? ses->trainer : NULL;
    size_t s2 = (size_t)size * size;
    images = malloc((size_t)batch * 3 * s2 * sizeof *images);
    masks = malloc((size_t)batch * s2 * sizeof *masks);
    if (st == OCLSEG_OK && (!images || !masks)) st = OCLSEG_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; st == OCLSEG_OK && i < (size_t)batch * 3 * s2; i++)
        images[i] = (float)((i * 2654435761u) % 1000) / 250.0f - 2.0f;
    for (size_t i = 0; st == OCLSEG_OK && i < (size_t)batch * s2; i++) masks[i] = (float)((i / 37) % 2);
    /* one rank at a time trains the global batch alone (they may share a machine's cores) */
    for (int r = 0; st == OCLSEG_OK && r < ranks; r++) {
        if (r == rank) {
            st = time_steps(t, images, masks, batch, NULL, steps, samples, NULL);
            if (st == OCLSEG_OK) res->alone_ms = oclseg_median(samples, steps);
        }
        if (st == OCLSEG_OK) st = oclseg_dist_barrier();
    }
    res->share = counts[rank];
    if (st == OCLSEG_OK)
        st = time_steps(t, images, masks, counts[rank], counts, steps, samples, &res->reduce_ms);
    if (st == OCLSEG_OK) res->step_ms = oclseg_median(samples, steps);
    /* the gradient sum alone, on a host buffer of every parameter */
    sum = st == OCLSEG_OK ? calloc(m->param_floats, sizeof *sum) : NULL;
    if (st == OCLSEG_OK && !sum) st = OCLSEG_ERR_OUT_OF_MEMORY;
    double add0 = 0;
    for (int i = -1; st == OCLSEG_OK && i < 10; i++) {
        if (i == 0) add0 = oclseg_dist_add_seconds();
        st = oclseg_dist_barrier();
        double t0 = bench_now_ms();
        if (st == OCLSEG_OK) st = oclseg_dist_sum(sum, m->param_floats, NULL);
        if (i >= 0) samples[i] = bench_now_ms() - t0;
    }
    if (st == OCLSEG_OK) res->allreduce_ms = oclseg_median(samples, 10);
    res->add_ms = (oclseg_dist_add_seconds() - add0) * 1e3 / 10;
    if (ctx) snprintf(res->device, sizeof res->device, "%s", ctx->info.name);
    size_t params = m ? m->param_floats : 0;
    res->params = (double)params;
    free(sum);
    free(images);
    free(masks);
    free(samples);
    free(counts);
    oclseg_session_free(ses);
    if (st == OCLSEG_OK && rank == 0)
        printf("data-parallel bench: %d ranks, global batch %d, %dx%d, %zu parameters (%.1f MiB "
               "of gradients per step), median of %d steps\n", ranks, batch, size, size, params,
               params * 4.0 / 1048576.0, steps);
    return st;
}

int bench_dist(const char *device, int batch, int size, int steps, int frozen) {
    const int ranks = oclseg_dist_size();
    if (batch < ranks) {
        fprintf(stderr, "oclseg bench: --batch %d is smaller than the %d ranks\n", batch, ranks);
        return 2;
    }
    rank_result mine, *all = calloc((size_t)ranks, sizeof *all);
    memset(&mine, 0, sizeof mine);
    int st = all ? measure(device, batch, size, steps, frozen, &mine) : OCLSEG_ERR_OUT_OF_MEMORY;
    int failed = st != OCLSEG_OK;
    if (oclseg_dist_any(failed, &failed) != OCLSEG_OK || failed) {
        free(all);
        return 1;
    }
    if (oclseg_dist_allgather(&mine, sizeof mine, all) != OCLSEG_OK) {
        free(all);
        return 1;
    }
    if (oclseg_dist_rank() == 0) {
        double slowest = 0, best_alone = 1e300;
        printf("| rank | device | images | alone ms (batch %d) | step ms | images/s | gradient sum ms |\n"
               "|---|---|---|---|---|---|---|\n", batch);
        for (int r = 0; r < ranks; r++) {
            const rank_result *x = &all[r];
            printf("| %d | %s | %d | %.1f | %.1f | %.1f | %.1f |\n", r, x->device, x->share,
                   x->alone_ms, x->step_ms, x->share / (x->step_ms / 1e3), x->reduce_ms);
            if (x->step_ms > slowest) slowest = x->step_ms;
            if (x->alone_ms < best_alone) best_alone = x->alone_ms;
        }
        double agg = batch / (slowest / 1e3), one = batch / (best_alone / 1e3);
        printf("aggregate %.1f images/s; one rank alone (fastest) %.1f images/s; scaling "
               "efficiency %.0f%% (aggregate / (ranks x one rank))\n", agg, one,
               100.0 * agg / (ranks * one));
        double algbw = 4.0 * all[0].params / (all[0].allreduce_ms / 1e3) / 1e9;
        printf("gradient sum of all parameters alone: %.1f ms median (%.1f ms of it adding on the "
               "host): %.2f GB/s of gradients (bus bandwidth %.2f GB/s: each rank sends and "
               "receives 2 (N-1)/N of them)\n", all[0].allreduce_ms, all[0].add_ms, algbw,
               algbw * 2.0 * (ranks - 1) / ranks);
    }
    free(all);
    return 0;
}
