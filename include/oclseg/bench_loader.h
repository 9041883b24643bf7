/* `oclseg bench --loader`: batch assembly (augmentation, normalisation) alone in images/s, by
 * loader thread count, with augmentation off and on, next to the device step's images/s. */
#ifndef OCLSEG_BENCH_LOADER_H
#define OCLSEG_BENCH_LOADER_H

#include "oclseg/data.h"

typedef struct oclseg_bench_loader_options {
    int size, batch;             /* image side and batch, as the step's */
    int max_threads;             /* measured: 0 (the step's thread), 1, 2, 4, ... and this */
    const char *recipe;          /* the name of aug, for the table ("seed", "best") */
    oclseg_augment_config aug;   /* the recipe's augmentation: the "on" column */
    double step_images_per_s;    /* the device step's (0: not measured) */
} oclseg_bench_loader_options;

/* Measures and prints the table: a data set of 64 random images of the size in memory, batches
 * of the loader as training takes them (prefetch 2), median of 5 alternating runs of 20 batches
 * per cell; the last line says which side bounds training. */
int oclseg_bench_loader(const oclseg_bench_loader_options *o);

#endif
