/* `oclseg bench` under mpirun/srun: prints what src/app/bench_dist.c measures (per-rank and
 * aggregate images/s of data-parallel training steps, time in the gradient sum, the all-reduce
 * bandwidth, and scaling efficiency against one rank training the whole global batch alone). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "oclseg/bench.h"
#include "oclseg/dist.h"

int bench_dist(const char *device, const oclseg_bench_options *run) {
    const int ranks = oclseg_dist_size(), batch = run->batch, size = run->size, steps = run->steps;
    if (batch < ranks) {
        fprintf(stderr, "oclseg bench: --batch %d is smaller than the %d ranks\n", batch, ranks);
        return 2;
    }
    oclseg_bench_rank_result *all = calloc((size_t)ranks, sizeof *all);
    if (!all || oclseg_bench_dist(device, run, all) != OCLSEG_OK) {
        free(all);
        return 1;
    }
    if (oclseg_dist_rank() == 0) {
        const size_t params = (size_t)all[0].params;
        printf("data-parallel bench: %d ranks, global batch %d, %dx%d, %zu parameters (%.1f MiB "
               "of gradients per step), median of %d steps\n", ranks, batch, size, size, params,
               params * 4.0 / 1048576.0, steps);
        double slowest = 0, best_alone = 1e300;
        printf("| rank | device | images | alone ms (batch %d) | step ms | images/s | gradient sum ms |\n"
               "|---|---|---|---|---|---|---|\n", batch);
        for (int r = 0; r < ranks; r++) {
            const oclseg_bench_rank_result *x = &all[r];
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
