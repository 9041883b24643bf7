/* Data-parallel pieces of the training run (src/app/fit.c): rank slices of a global batch,
 * the start-up consistency check, state broadcast, sharded evaluation and the debug hash check. */
#ifndef OCLSEG_FIT_DIST_H
#define OCLSEG_FIT_DIST_H

#include <jansson.h>

#include "oclseg/data.h"
#include "oclseg/fit.h"
#include "oclseg/metrics.h"
#include "oclseg/weights.h"

/* Splits n items over `size` ranks: rank r gets [starts[r], starts[r] + counts[r]), contiguous,
 * in rank order, sizes differing by at most one (the first n % size ranks get one more). */
void fit_dist_split(int n, int size, int *counts, int *starts);
/* The same in proportion to speed[r] (> 0): every rank gets at least one item when n >= size,
 * the rest by largest remainder (ties to the lower rank); identical on every rank. */
void fit_dist_split_weighted(int n, int size, const double *speed, int *counts, int *starts);
/* --balance: call after every data-parallel step (step: counted from 0 in this process) with
 * this rank's images and compute time; after steps 1-3 (step 0 compiles kernels) it gathers each rank's images per second into
 * speed (size entries) and returns 1 (0 before). OCLSEG_BALANCE_SPEEDS=a,b,... (tests; the
 * context's switches) replaces the measurement. */
int fit_dist_measure_speed(const oclseg_ctx *ctx, int64_t step, int images, double seconds,
                           double *sum_images, double *sum_seconds, double *speed, int *ready);
/* This rank's slice [*lo, *hi) of fit_dist_split(n, size). */
void fit_dist_my_slice(int n, int *lo, int *hi);

/* Refuses (on every rank, with a message naming the ranks and what differs) a job whose ranks
 * run different builds, options or data: compares hashes of each with rank 0's. */
int fit_dist_check_same(const oclseg_fit_options *o, const oclseg_dataset *train,
                        const oclseg_dataset *test);

/* --sync-bn needs every rank to hold at least one image of every global batch (the last,
 * partial batch included); an error explaining the fix otherwise. */
int fit_dist_check_sync_bn(const oclseg_fit_options *o, int train_count);

/* Copies rank 0's whole training state (parameters, optimizer state, BatchNorm running
 * statistics and counters, step, run position) to every rank. */
int fit_dist_sync_state(oclseg_trainer *t, oclseg_run_position *pos);
/* Copies rank 0's BatchNorm running statistics to every rank (before evaluation; per-rank
 * BatchNorm lets them drift apart, as with DistributedDataParallel's buffers). */
int fit_dist_sync_buffers(oclseg_model *m);

/* Sets *differ on every rank when any rank's device, driver or platform differs from rank 0's. */
int fit_dist_devices_differ(const oclseg_ctx *ctx, int *differ);

/* Adds "ranks" and per-rank "rank_devices" [{rank, host, device, platform}] to config.json. */
int fit_dist_describe(json_t *config, const oclseg_ctx *ctx);

/* Evaluation-mode loss and metrics over ds in batches of `batch`, sharded: each rank evaluates
 * its slice and the slices are gathered (every rank gets the result). */
int fit_dist_evaluate(oclseg_trainer *t, const oclseg_dataset *ds, int batch, double *mean_loss,
                      oclseg_metrics *metrics);

/* Sharded evaluation: every rank filled conf[lo, hi) (its fit_dist_split slice of `count`) and
 * *loss_sum over it; afterwards every rank holds all of conf and the global loss sum (added in
 * rank order). */
int fit_dist_gather_eval(oclseg_confusion *conf, int count, double *loss_sum);

/* Debug (OCLSEG_DIST_CHECK=1): hashes the parameters (and running statistics) after a step and
 * stops every rank when any rank's hash differs from rank 0's. */
int fit_dist_check_params(oclseg_trainer *t, int64_t step);
/* The ranks' stop decision at a step (collective; every step): *sig in, this rank's caught
 * signal (0: none); out, on every rank, 0 when no rank saw one, else the signal of the lowest
 * rank that did. */
int fit_dist_agree_stop(int *sig);

#endif
