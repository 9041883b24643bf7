/* The prefetching batch loader: worker threads assemble (augment, normalise) the batches queued
 * ahead of the training step that consumes them, in the order they were queued. */
#ifndef OCLSEG_LOADER_H
#define OCLSEG_LOADER_H

#include "oclseg/data.h"

typedef struct oclseg_loader oclseg_loader;

typedef struct oclseg_loader_options {
    int threads;   /* worker threads; 0: each batch is assembled in the caller's thread when
                      it is taken (no prefetch) */
    int prefetch;  /* batches that may be queued ahead of the one in use (>= 1) */
    int max_batch; /* images per batch at most (>= 1) */
} oclseg_loader_options;

/* The default worker count: min(online CPUs, 4). */
int oclseg_loader_default_threads(void);

/* A loader over ds (which must outlive it): its buffers (prefetch + 1 batches) and threads. */
int oclseg_loader_create(const oclseg_dataset *ds, const oclseg_loader_options *o,
                         oclseg_loader **out);
/* Queues the batch of `count` samples (indices and aug, NULL for none, are copied): what
 * oclseg_dataset_batch would assemble from them. count may be 0 (an empty batch). An index
 * outside the data set is reported when the batch is taken. OCLSEG_ERR_INVALID_ARG when
 * `prefetch` batches are queued already or count > max_batch. */
int oclseg_loader_submit(oclseg_loader *l, const int *indices, int count,
                         const oclseg_augment *aug);
/* Batches queued and not yet taken. */
int oclseg_loader_queued(const oclseg_loader *l);
/* Batches that may still be queued (prefetch, or 1 without threads, less those queued). */
int oclseg_loader_room(const oclseg_loader *l);
/* Takes the oldest queued batch, waiting until it is assembled: *images (count, 3, S, S) and
 * *masks (count, 1, S, S) stay valid until the next take, cancel or free. *waited_s (may be
 * NULL) gets the seconds spent waiting. A worker's error (its message already printed) is
 * returned here, for the batch it belongs to. */
int oclseg_loader_take(oclseg_loader *l, const float **images, const float **masks, int *count,
                       double *waited_s);
/* Drops every queued batch: work not started is skipped, work in progress finishes first. */
void oclseg_loader_cancel(oclseg_loader *l);
/* Stops and joins the threads (after a cancel), frees everything; NULL is fine. */
void oclseg_loader_free(oclseg_loader *l);

#endif
