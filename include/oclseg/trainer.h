/* One training/evaluation engine over a model: uploads batches, runs forward + loss + backward +
 * optimizer without host synchronisation, and reads losses back in bulk from a ring buffer. */
#ifndef OCLSEG_TRAINER_H
#define OCLSEG_TRAINER_H

#include "oclseg/model.h"
#include "oclseg/schedule.h"

/* Training loss: BCE with logits (mean), soft Dice (1 - mean per-image Dice of the
 * probabilities), or their sum. */
typedef enum oclseg_loss_kind {
    OCLSEG_LOSS_BCE = 0,
    OCLSEG_LOSS_DICE = 1,
    OCLSEG_LOSS_BCE_DICE = 2
} oclseg_loss_kind;

typedef struct oclseg_trainer_config {
    oclseg_optim_config optim; /* optim.lr: the constant rate or the schedule's maximum */
    oclseg_loss_kind loss;
    oclseg_schedule schedule;  /* zeroed: constant */
    float clip_norm;           /* > 0: clip gradients to this global L2 norm before each step */
    int frozen_encoder; /* model 1: encoder (and its BatchNorm statistics) frozen */
    uint64_t seed;      /* dropout masks derive from (seed, step) */
    int sync_bn;        /* data-parallel steps: BatchNorm batch statistics over the global batch
                           (--sync-bn; oclseg_trainer_step_shard) */
    int check_numerics; /* debug: after every forward/backward, look for NaN/Inf (blocking) and
                           stop at the first layer holding one, before the weights change */
} oclseg_trainer_config;

#define OCLSEG_LOSS_RING 256

/* Opaque outside the library, like oclseg_model (OCLSEG_INTERNALS, oclseg/model.h). */
#ifdef OCLSEG_INTERNALS
typedef struct oclseg_trainer {
    oclseg_model *model;
    oclseg_ctx *ctx;
    oclseg_trainer_config cfg;
    oclseg_optim_host_state opt;
    int64_t step;              /* steps taken (the next step's index) */
    int64_t drained;           /* steps whose loss was read back */
    cl_mem targets_buf;        /* (max_batch, 1, S, S) */
    cl_mem loss_ring_buf;      /* (OCLSEG_LOSS_RING) one loss per step, slot = step % ring */
    cl_mem finite_ring_buf;    /* (OCLSEG_LOSS_RING) 0 if step's gradients were finite, else NaN */
    cl_mem counts_buf;         /* (max_batch, 4) uint32 confusion counts for evaluation */
    cl_mem eval_loss_buf;      /* (1) */
    float *reduce_host;        /* (param_floats + 1): gradients + loss summed over ranks */
    double reduce_seconds;     /* time in data-parallel gradient sums (read, sum, write back) */
    int64_t reduce_steps;
    double last_compute_seconds; /* last data-parallel step: from its start until this rank's
                                    gradients were read (its own forward + backward) */
    int broadcast_params;      /* ranks on different devices/drivers: after each data-parallel
                                  step rank 0's parameters (and running statistics) are copied to
                                  all, as their optimizer arithmetic may round differently */
    cl_mem clip_buf;           /* (2) last gradient norm and clip coefficient */
    float *staging[2];         /* host copies of images+masks for non-blocking uploads: mapped
                                  CL_MEM_ALLOC_HOST_PTR memory (staging_buf) where possible */
    cl_mem staging_buf[2];
    cl_event upload_done[2];
    size_t image_floats, mask_floats; /* per max batch */
    int eval_only;             /* created without a config: oclseg_trainer_step refuses */
} oclseg_trainer;
#else
typedef struct oclseg_trainer oclseg_trainer;
#endif

/* cfg NULL: an evaluation-only trainer (oclseg_trainer_eval_batch; no optimizer config). */
int oclseg_trainer_create(oclseg_model *model, const oclseg_trainer_config *cfg,
                          oclseg_trainer **out);
void oclseg_trainer_free(oclseg_trainer *t);

/* Enqueues one training step on n images (N, 3, S, S) normalised and masks (N, 1, S, S) 0/1.
 * Never waits for the device (except to reuse a staging buffer two steps later). */
int oclseg_trainer_step(oclseg_trainer *t, const float *images, const float *masks, int n);

/* Data-parallel step (oclseg/dist.h): this rank's n images of a global batch split as
 * rank_counts[0..size-1] over the ranks in rank order (this rank's images follow the lower
 * ranks': their dropout masks are the ones they have in the global batch). The gradients and the loss are averaged over the whole
 * global batch (a deterministic sum over ranks weighted by rank_counts[r] / total, see
 * oclseg_dist_sum) before the optimizer, so every rank applies the same update to the same
 * parameters: N ranks with B/N images each compute one rank's step on B images. n may be 0
 * (this rank has no image in a short last batch: it only takes part in the sum). Blocking (it
 * waits for the backward). rank_counts NULL or a group of one: oclseg_trainer_step. */
int oclseg_trainer_step_shard(oclseg_trainer *t, const float *images, const float *masks, int n,
                              const int *rank_counts);

/* Reads back the losses of all steps not yet read (blocking): losses[i] belongs to step
 * first_step + i; *count <= OCLSEG_LOSS_RING. Call at least every OCLSEG_LOSS_RING steps
 * (oclseg_trainer_step refuses to overwrite unread losses). A non-finite loss, or a step whose
 * gradients held a NaN/Inf (checked on the device every step), returns OCLSEG_ERR_NUMERIC with a
 * message naming the step. */
int oclseg_trainer_drain_losses(oclseg_trainer *t, float *losses, int64_t *first_step,
                                int *count);
int64_t oclseg_trainer_pending(const oclseg_trainer *t);

/* Evaluation-mode forward on n images: mean BCE loss and per-image confusion counts
 * (counts[4*i + {0,1,2,3}] = TP, TP+FP, TP+FN, TN at probability 0.5). Blocking. If probs is
 * not NULL it receives the sigmoid probabilities (N, 1, S, S). */
int oclseg_trainer_eval_batch(oclseg_trainer *t, const float *images, const float *masks, int n,
                              float *loss, uint32_t *counts, float *probs);

/* Enqueues the optimizer update alone over the trained parameters (the decoder's when the
 * encoder is frozen) with the configured rate, on a copy of the optimizer's host state: what
 * `oclseg bench` times as the optimizer part. Parameters and device state change; the step
 * count does not. */
int oclseg_trainer_optimizer_step_detached(oclseg_trainer *t);

#endif
