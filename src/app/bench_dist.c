/* `oclseg bench`'s measurement under mpirun/srun: per rank, the global batch trained alone and
 * its share trained data-parallel (with the time in the gradient sum), and the all-reduce of
 * every parameter alone; gathered over the ranks. */
#include "oclseg/bench.h"

#include <stdio.h>
#include <stdlib.h>

#include "oclseg/dist.h"
#include "oclseg/session.h"
#include "oclseg/util.h"

static double now_ms(void) { return oclseg_now_s() * 1e3; }

/* Times `steps` steps (after one warm-up): data-parallel when counts != NULL. */
static int time_steps(oclseg_trainer *t, const float *images, const float *masks, int n,
                      const int *counts, int steps, double *samples, double *reduce_ms) {
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    double reduce0 = 0;
    for (int i = -1; i < steps; i++) {
        if (i == 0) reduce0 = t->reduce_seconds;
        double t0 = now_ms();
        TRY(counts ? oclseg_trainer_step_shard(t, images, masks, n, counts)
                   : oclseg_trainer_step(t, images, masks, n));
        TRY(oclseg_finish(t->ctx));
        if (i >= 0) samples[i] = now_ms() - t0;
        TRY(oclseg_trainer_drain_losses(t, losses, &first, &count));
    }
    if (reduce_ms) *reduce_ms = (t->reduce_seconds - reduce0) * 1e3 / steps;
    return OCLSEG_OK;
}

static int measure(const char *device, const oclseg_bench_options *o,
                   oclseg_bench_rank_result *res) {
    const int batch = o->batch, size = o->size, steps = o->steps;
    const int ranks = oclseg_dist_size(), rank = oclseg_dist_rank();
    int *counts = malloc((size_t)ranks * sizeof *counts);
    double *samples = malloc((size_t)(steps > 10 ? steps : 10) * sizeof *samples);
    float *images = NULL, *masks = NULL, *sum = NULL;
    oclseg_session *ses = NULL;
    int st = counts && samples ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    for (int r = 0; st == OCLSEG_OK && r < ranks; r++) counts[r] = batch / ranks + (r < batch % ranks);
    oclseg_session_options so;
    oclseg_session_options_synthetic_training(&so, size, batch, o->frozen);
    so.model.decoder_kind = o->decoder;
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
    res->share = counts ? counts[rank] : 0;
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
        double t0 = now_ms();
        if (st == OCLSEG_OK) st = oclseg_dist_sum(sum, m->param_floats, NULL);
        if (i >= 0) samples[i] = now_ms() - t0;
    }
    if (st == OCLSEG_OK) res->allreduce_ms = oclseg_median(samples, 10);
    res->add_ms = (oclseg_dist_add_seconds() - add0) * 1e3 / 10;
    if (ctx) snprintf(res->device, sizeof res->device, "%s", ctx->info.name);
    res->params = m ? (double)m->param_floats : 0;
    free(sum);
    free(images);
    free(masks);
    free(samples);
    free(counts);
    oclseg_session_free(ses);
    return st;
}

int oclseg_bench_dist(const char *device, const oclseg_bench_options *o,
                      oclseg_bench_rank_result *all) {
    oclseg_bench_rank_result mine = {0};
    const int st = measure(device, o, &mine); /* a failure was logged by the rank it hit */
    int any_failed = st != OCLSEG_OK;
    TRY(oclseg_dist_any(any_failed, &any_failed));
    if (st != OCLSEG_OK) return st;
    if (any_failed) {
        OCLSEG_ERROR("bench: another rank failed (its message above)");
        return OCLSEG_ERR_INTERRUPTED;
    }
    return oclseg_dist_allgather(&mine, sizeof mine, all);
}
