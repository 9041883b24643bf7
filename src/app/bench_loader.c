/* `oclseg bench --loader`: the loader's images/s by thread count, augmentation off and on
 * (median of alternating runs), against the device step's images/s. */
#include "oclseg/bench_loader.h"

#include <stdio.h>
#include <stdlib.h>

#include "oclseg/bench.h"
#include "oclseg/loader.h"
#include "oclseg/util.h"

enum { SAMPLES = 64, BATCHES = 20, REPEATS = 5, MAX_COUNTS = 12 };

/* SAMPLES random images (bytes from a fixed seed) and 0/1 masks of side size. */
static oclseg_dataset *random_dataset(int size) {
    oclseg_dataset *ds = calloc(1, sizeof *ds);
    const size_t px = (size_t)SAMPLES * size * size;
    if (!ds || !(ds->images = malloc(px * 3)) || !(ds->masks = malloc(px)) ||
        !(ds->samples = calloc(SAMPLES, sizeof *ds->samples))) {
        oclseg_dataset_free(ds);
        return NULL;
    }
    ds->count = SAMPLES;
    ds->size = size;
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < px * 3; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ds->images[i] = (uint8_t)(x >> 24);
        if (i < px) ds->masks[i] = (uint8_t)(x >> 50) & 1;
    }
    return ds;
}

/* Images/s of BATCHES batches assembled by `threads` loader threads and taken at once. */
static int run_once(const oclseg_dataset *ds, const oclseg_bench_loader_options *o, int threads,
                    const oclseg_augment_config *aug, int epoch, double *images_per_s) {
    oclseg_loader_options lo = {.threads = threads, .prefetch = 2, .max_batch = o->batch};
    oclseg_loader *l = NULL;
    TRY(oclseg_loader_create(ds, &lo, &l));
    int *idx = malloc((size_t)o->batch * sizeof *idx);
    oclseg_augment *a = malloc((size_t)o->batch * sizeof *a);
    int st = idx && a ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    const double t0 = oclseg_now_s();
    for (int submitted = 0, taken = 0; st == OCLSEG_OK && taken < BATCHES; taken++) {
        while (st == OCLSEG_OK && submitted < BATCHES && oclseg_loader_room(l) > 0) {
            for (int b = 0; b < o->batch; b++) {
                idx[b] = (submitted * o->batch + b) % SAMPLES;
                a[b] = aug ? oclseg_augment_draw_config(aug, 1, epoch, submitted * o->batch + b)
                           : (oclseg_augment){0};
            }
            st = oclseg_loader_submit(l, idx, o->batch, a);
            submitted++;
        }
        const float *images, *masks;
        int count;
        if (st == OCLSEG_OK) st = oclseg_loader_take(l, &images, &masks, &count, NULL);
    }
    *images_per_s = (double)BATCHES * o->batch / (oclseg_now_s() - t0);
    oclseg_loader_free(l);
    free(idx);
    free(a);
    return st;
}

int oclseg_bench_loader(const oclseg_bench_loader_options *o) {
    int counts[MAX_COUNTS], n = 0;
    counts[n++] = 0;
    for (int t = 1; t < o->max_threads && n < MAX_COUNTS - 1; t *= 2) counts[n++] = t;
    if (o->max_threads > 0) counts[n++] = o->max_threads;
    oclseg_dataset *ds = random_dataset(o->size);
    double *v = calloc((size_t)n * 2 * REPEATS, sizeof *v);
    if (!ds || !v) {
        oclseg_dataset_free(ds);
        free(v);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    int st = OCLSEG_OK;
    /* alternating: every cell once per repeat, so load on the machine spreads over all */
    for (int r = 0; r < REPEATS && st == OCLSEG_OK; r++)
        for (int i = 0; i < n * 2 && st == OCLSEG_OK; i++)
            st = run_once(ds, o, counts[i / 2], i % 2 ? &o->aug : NULL, r,
                          &v[(size_t)i * REPEATS + r]);
    if (st == OCLSEG_OK) {
        printf("\nbatch assembly at %dx%d, batch %d (median of %d alternating runs of %d "
               "batches):\n| loader threads | no augmentation img/s | --recipe %s img/s |\n"
               "|---|---|---|\n", o->size, o->size, o->batch, REPEATS, BATCHES, o->recipe);
        double best = 0;
        int best_threads = 0;
        for (int k = 0; k < n; k++) {
            const double off = oclseg_median(&v[(size_t)(2 * k) * REPEATS], REPEATS);
            const double on = oclseg_median(&v[(size_t)(2 * k + 1) * REPEATS], REPEATS);
            printf("| %d%s | %.0f | %.0f |\n", counts[k], counts[k] ? "" : " (in the step's thread)",
                   off, on);
            if (on > best) best = on, best_threads = counts[k];
        }
        if (o->step_images_per_s > 0)
            printf("device step: %.1f images/s; the loader (%d threads, --recipe %s) is %.1fx "
                   "that: training is %s-bound\n", o->step_images_per_s, best_threads, o->recipe,
                   best / o->step_images_per_s, best >= o->step_images_per_s ? "step" : "data");
    }
    free(v);
    oclseg_dataset_free(ds);
    return st;
}
