/* The training run: data, epochs, per-step loss log, evaluation, checkpoints and resume, run
 * directory outputs (config.json, steps.csv, metrics.csv, weights, curves.png), progress display
 * and stops on SIGINT/SIGTERM. */
#include "oclseg/env.h"
#include "oclseg/fit.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/fit_dist.h"
#include "oclseg/data.h"
#include "oclseg/dist.h"
#include "oclseg/infer.h"
#include "oclseg/loader.h"
#include "oclseg/safetensors.h"
#include "oclseg/metrics.h"
#include "oclseg/stop.h"
#include "app/fit_internal.h"

void oclseg_fit_options_default(oclseg_fit_options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 25;
    o->batch = 16;
    o->size = 128;
    o->eval_every = 1;
    o->lr = OCLSEG_FIT_OPTIMIZER_DEFAULT;
    o->dropout = 0.5f;
    o->optimizer = OCLSEG_OPT_NADAM;
    o->weight_decay = OCLSEG_FIT_OPTIMIZER_DEFAULT;
    o->seed = 1;
    o->shuffle = 1;
    o->augment = 1;
    o->loader_threads = -1;
    o->prefetch = 2;
    o->aug.flips = 1;
    o->val_fraction = 0.1;
    o->warmup = 0.05f;
    oclseg_predict_options_default(&o->predict);
}

/* ---- the run ------------------------------------------------------------------------------------ */
/* Reads back pending losses (one blocking read) and appends them to steps.csv. */
static int drain_losses(fit_run *r, int epoch) {
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    int st = oclseg_trainer_drain_losses(r->trainer, losses, &first, &count);
    for (int i = 0; i < count; i++) { /* the global-batch losses, the same on every rank */
        if (r->steps_csv)
            fprintf(r->steps_csv, "%lld,%d,%.9g\n", (long long)(first + i), epoch + 1, (double)losses[i]);
        r->epoch_loss_sum += losses[i];
        r->epoch_loss_count++;
    }
    if (r->steps_csv && (fflush(r->steps_csv) != 0 || ferror(r->steps_csv)) && st == OCLSEG_OK) {
        OCLSEG_ERROR("cannot write %s/steps.csv: %s", r->dir, strerror(errno));
        st = OCLSEG_ERR_IO;
    }
    return st;
}

/* Trainer settings of the run (the schedule spans every step of every epoch). */
static void trainer_config(const fit_run *r, oclseg_trainer_config *tc) {
    const oclseg_fit_options *o = r->o;
    *tc = (oclseg_trainer_config){.frozen_encoder = o->frozen_encoder, .seed = o->seed,
                                  .sync_bn = o->sync_bn, .check_numerics = o->check_numerics};
    if (oclseg_env_get()->check_numerics) tc->check_numerics = 1;
    fit_optim_config(o, &tc->optim);
    tc->loss = o->loss;
    tc->clip_norm = o->clip_norm;
    const int64_t steps_per_epoch = (r->data.train->count + o->batch - 1) / o->batch;
    oclseg_schedule_default(&tc->schedule, o->schedule, steps_per_epoch * o->epochs);
    tc->schedule.warmup_steps = (int64_t)(o->warmup * (double)tc->schedule.total_steps);
}

/* Phase 2: context, model (random init, then --init or --pretrained on rank 0), trainer, and
 * the host buffers of the steps. */
static int create_session(fit_run *r) {
    const oclseg_fit_options *o = r->o;
    oclseg_session_options so;
    oclseg_session_options_default(&so);
    so.device = o->device;
    so.model.size = o->size;
    /* each rank holds its slice of the global batch (at most ceil(B / ranks) images) */
    r->local_batch = (o->batch + oclseg_dist_size() - 1) / oclseg_dist_size();
    if (o->balance) r->local_batch = o->batch; /* a fast rank may take most of the batch */
    so.model.max_batch = r->local_batch;
    so.model.dropout = o->dropout;
    so.model.decoder_kind = o->decoder;
    so.random_init = 1;
    so.seed = o->seed;
    if (oclseg_dist_rank() != 0 || o->resume) {
        /* weights come from rank 0 (fit_dist_sync_state): files need not exist on other hosts;
         * a resumed run's from its checkpoint */
    } else if (o->init) {
        so.weights = o->init;
        so.weights_source = OCLSEG_WEIGHTS_FULL;
    } else if (o->pretrained) {
        so.weights = o->pretrained;
        so.weights_source = OCLSEG_WEIGHTS_TORCHVISION;
    } else if (!o->resume && !o->quiet) {
        printf("note: the encoder is not ImageNet-pretrained (random PyTorch-style init); pass "
               "--pretrained FILE (see tools/export_torchvision.py)\n");
    }
    so.mode = OCLSEG_SESSION_TRAIN;
    trainer_config(r, &so.train);
    TRY(oclseg_session_create(&so, &r->session));
    r->ctx = r->session->ctx;
    r->model = r->session->model;
    r->trainer = r->session->trainer;
    /* what the saved weights say about themselves: the recipe's inference options (the input
     * size is the model's; the threshold is added to best.safetensors once it is chosen) */
    r->model->meta.has_options = 1;
    r->model->meta.tta_flips = o->predict.tta_flips;
    r->model->meta.largest_component = o->predict.largest_component;
    r->model->meta.fill_holes = o->predict.fill_holes;
    oclseg_loader_options lo = {.threads = o->loader_threads, .prefetch = o->prefetch,
                                .max_batch = o->batch};
    if (lo.threads < 0) lo.threads = oclseg_loader_default_threads();
    TRY(oclseg_loader_create(r->data.train, &lo, &r->loader));
    r->perm = malloc((size_t)r->data.train->count * sizeof(int));
    r->batch_idx = malloc((size_t)o->batch * sizeof(int));
    r->aug = malloc((size_t)o->batch * sizeof *r->aug);
    r->rank_counts = malloc(2 * (size_t)oclseg_dist_size() * sizeof(int));
    r->rank_speed = malloc((size_t)oclseg_dist_size() * sizeof(double));
    if (!r->perm || !r->batch_idx || !r->aug || !r->rank_counts ||
        !r->rank_speed)
        return OCLSEG_ERR_OUT_OF_MEMORY;
    r->rank_starts = r->rank_counts + oclseg_dist_size();
    return OCLSEG_OK;
}

static void teardown(fit_run *r) {
    if (r->steps_csv) fclose(r->steps_csv);
    free(r->config_json);
    oclseg_loader_free(r->loader); /* its threads joined, batches in flight dropped */
    free(r->perm);
    free(r->batch_idx);
    free(r->aug);
    free(r->rank_counts);
    free(r->rank_speed);
    oclseg_session_free(r->session);
    oclseg_dataset_free(r->data.train);
    oclseg_dataset_free(r->data.val);
    oclseg_dataset_free(r->data.test);
    oclseg_fit_record_free(r->record);
}

static void progress(const fit_run *r, int epoch, int step, int steps, double t_start,
                     int done_in_epoch) {
    if (r->o->quiet || !isatty(STDERR_FILENO)) return;
    double elapsed = oclseg_now_s() - t_start;
    double per_step = done_in_epoch > 0 ? elapsed / done_in_epoch : 0;
    double eta = per_step * (steps - step);
    double last = r->epoch_loss_count ? r->epoch_loss_sum / r->epoch_loss_count : NAN;
    fprintf(stderr, "\r  epoch %d/%d  step %d/%d  loss %.4f  %.1f img/s  ETA %d:%02d   ",
            epoch + 1, r->o->epochs, step, steps, last,
            per_step > 0 ? r->o->batch / per_step : 0.0, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

/* The selected model (best.safetensors) is loaded, its threshold chosen on validation (into
 * *threshold), and the test set scored once (final.csv). */
static int select_and_report(fit_run *r, int best_epoch, float *threshold) {
    char path[4200];
    fit_path(r, "best.safetensors", path, sizeof path);
    if (r->data.val) TRY(oclseg_weights_load(r->model, path, OCLSEG_WEIGHTS_FULL, NULL));
    /* batches of this rank's model size (under mpirun it holds ceil(B / ranks) images) */
    return fit_final_report(r->trainer, r->data.val, r->data.test, r->local_batch,
                            &r->o->predict, best_epoch, r->dir, r->o->quiet, threshold);
}

/* At --size 32 the deepest maps are 1x1: a training-mode BatchNorm over one image has one
 * value per channel (undefined; PyTorch refuses it). A step where that would happen (a global
 * batch of one image, or with per-rank statistics a rank's slice of one) is skipped, on every
 * rank alike: the split is the same everywhere. 1 when the step over n images split as
 * counts[0..size) is such a step. */
static int step_skipped(const oclseg_fit_options *o, int n, const int *counts, int size) {
    if (o->size != 32) return 0;
    int single = n == 1;
    for (int k = 0; k < size && !o->sync_bn; k++) single |= counts[k] == 1;
    return single;
}

/* Refuses, before anything is created, a run none of whose steps would train (every step
 * skipped by step_skipped: it would write a nan loss and untrained weights and exit 0), saying
 * why and what to change. */
static int check_trains_something(const oclseg_fit_options *o, const fit_data *d) {
    const int size = oclseg_dist_size(), count = d->train->count;
    const int steps = (count + o->batch - 1) / o->batch;
    int *counts = malloc(2 * (size_t)size * sizeof *counts);
    if (!counts) return OCLSEG_ERR_OUT_OF_MEMORY;
    int trainable = 0;
    for (int s = 0; s < steps && !trainable; s++) {
        int n = count - s * o->batch < o->batch ? count - s * o->batch : o->batch;
        fit_dist_split(n, size, counts, counts + size);
        trainable = !step_skipped(o, n, counts, size);
    }
    free(counts);
    if (trainable) return OCLSEG_OK;
    /* per-rank statistics: 2 images on every rank; --sync-bn: 2 in all, 1 on every rank */
    const int smallest = o->sync_bn ? (size > 2 ? size : 2) : 2 * size;
    char need[128] = "";
    if (size > 1)
        snprintf(need, sizeof need, o->sync_bn ? " (2 images in all, 1 on each of the %d ranks)"
                                               : " (2 images on each of the %d ranks)", size);
    const char *why = "at --size 32 the deepest feature maps are 1x1, so training-mode BatchNorm "
                      "over a single image has one value per channel and such steps are skipped";
    if (o->batch < smallest) {
        OCLSEG_ERROR("--batch %d trains nothing: %s; the smallest batch BatchNorm allows here is "
                     "%d%s. Use --batch %d or more%s, or --size 64 or larger", o->batch, why,
                     smallest, need, smallest, size > 1 && !o->sync_bn ? ", or --sync-bn" : "");
    } else {
        char held[96] = "";
        if (d->val)
            snprintf(held, sizeof held, " (--val-fraction %g held %d out for validation)",
                     o->val_fraction, d->val->count);
        OCLSEG_ERROR("the training set of %d image%s%s trains nothing: %s; BatchNorm needs at "
                     "least %d images per step here%s. Add training images%s, or use --size "
                     "64 or larger", count, count == 1 ? "" : "s", held, why, smallest, need,
                     d->val ? ", lower --val-fraction" : "");
    }
    return OCLSEG_ERR_INVALID_ARG;
}

static int steps_per_epoch(const fit_run *r) {
    return (r->data.train->count + r->o->batch - 1) / r->o->batch;
}

int fit_check_position(const fit_run *r, const oclseg_run_position *pos) {
    const oclseg_fit_options *o = r->o;
    const int spe = steps_per_epoch(r);
    const long long step = (long long)r->trainer->step;
    /* at most one step per batch (a skipped one-image batch takes none, and which are skipped
     * depends on the number of ranks, which may change on resume) */
    if (pos->step_in_epoch >= spe || step > (long long)pos->epoch * spe + pos->step_in_epoch) {
        OCLSEG_ERROR("%s: step %lld (epoch %d, step %d in it) does not fit the data: %d training "
                     "images in batches of %d make %d steps per epoch (was the data changed?)",
                     o->resume, step, pos->epoch + 1, pos->step_in_epoch, r->data.train->count,
                     o->batch, spe);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

/* Splits step s's global batch of *n images over the ranks (r->rank_counts, r->rank_starts);
 * 1 when the step is skipped (step_skipped). */
static int split_step(fit_run *r, int s, int *n) {
    const oclseg_fit_options *o = r->o;
    const int b0 = s * o->batch, count = r->data.train->count, size = oclseg_dist_size();
    *n = count - b0 < o->batch ? count - b0 : o->batch;
    if (r->balanced) fit_dist_split_weighted(*n, size, r->rank_speed, r->rank_counts, r->rank_starts);
    else fit_dist_split(*n, size, r->rank_counts, r->rank_starts);
    return step_skipped(o, *n, r->rank_counts, size);
}

/* Queues the batch of step s on the loader: this rank's slice of the global batch perm[s*B ...]
 * (all of it with one rank), flips and augmentation from (seed, epoch, sample); an empty batch
 * for a skipped step. */
static int submit_step(fit_run *r, int epoch, int s) {
    const oclseg_fit_options *o = r->o;
    int n;
    if (split_step(r, s, &n)) return oclseg_loader_submit(r->loader, NULL, 0, NULL);
    const int first = r->rank_starts[oclseg_dist_rank()], mine = r->rank_counts[oclseg_dist_rank()];
    for (int i = 0; i < mine; i++) {
        r->batch_idx[i] = r->perm[s * o->batch + first + i];
        r->aug[i] = o->augment ? oclseg_augment_draw_config(&o->aug, o->seed, epoch,
                                                            r->batch_idx[i])
                               : (oclseg_augment){0};
    }
    return oclseg_loader_submit(r->loader, r->batch_idx, mine, r->aug);
}

/* Queues the batches of the steps from r->next_submit on, up to step `last` of the epoch, as
 * far as the loader takes them (--prefetch). While --balance still measures the ranks' speed
 * the split of a step depends on the steps before it: nothing beyond step `now` is queued. */
static int feed_loader(fit_run *r, int epoch, int now, int last) {
    if (r->o->balance && !r->balanced && last > now) last = now;
    while (r->next_submit <= last && oclseg_loader_room(r->loader) > 0)
        TRY(submit_step(r, epoch, r->next_submit++));
    return OCLSEG_OK;
}

/* Step s of an epoch: its batch from the loader (the next ones queued before the step runs),
 * this rank's slice of it. */
static int train_step(fit_run *r, int epoch, int s) {
    const oclseg_fit_options *o = r->o;
    const int last = steps_per_epoch(r) - 1;
    TRY(feed_loader(r, epoch, s, last));
    const float *images, *masks;
    int count;
    double waited;
    const int taken = oclseg_loader_take(r->loader, &images, &masks, &count, &waited);
    r->epoch_wait_s += waited;
    TRY(taken);
    TRY(feed_loader(r, epoch, s, last));
    int n;
    if (split_step(r, s, &n)) return OCLSEG_OK;
    const int size = oclseg_dist_size(), rank = oclseg_dist_rank();
    const int mine = r->rank_counts[rank];
    if (count != mine) {
        OCLSEG_ERROR("step %d: the loader's batch holds %d images, the step %d", s, count, mine);
        return OCLSEG_ERR_INTERNAL;
    }
    if (size == 1) return oclseg_trainer_step(r->trainer, images, masks, n);
    int64_t step = r->trainer->step;
    TRY(oclseg_trainer_step_shard(r->trainer, images, masks, mine, r->rank_counts));
    if (o->balance && !r->balanced) {
        TRY(fit_dist_measure_speed(r->ctx, r->steps_here++, mine,
                                   r->trainer->last_compute_seconds, &r->speed_images,
                                   &r->speed_seconds, r->rank_speed, &r->balanced));
        if (r->balanced && !o->quiet) {
            fit_dist_split_weighted(o->batch, size, r->rank_speed, r->rank_counts, r->rank_starts);
            printf("--balance: from step %lld on, a batch of %d splits as", (long long)step + 1,
                   o->batch);
            for (int k = 0; k < size; k++)
                printf(" %d (%.1f images/s)", r->rank_counts[k], r->rank_speed[k]);
            printf("\n");
        }
    }
    return fit_dist_check_params(r->trainer, step);
}

/* The stop the ranks agree on at this step: a SIGINT/SIGTERM seen by any rank (the lowest such
 * rank's signal), recorded on every rank so that all exit alike; *sig 0: go on. */
static int agreed_stop(int *sig) {
    *sig = oclseg_stop_signal();
    TRY(fit_dist_agree_stop(sig));
    if (*sig) oclseg_stop_request(*sig);
    return OCLSEG_OK;
}

/* After a stop on a signal, the checkpoint written: rank 0 prints how to resume; the ranks leave
 * together (a rank that exits first would make the launcher kill rank 0 while it writes). */
static int report_stop(const fit_run *r) {
    if (!r->o->quiet && isatty(STDERR_FILENO)) fputc('\n', stderr);
    if (oclseg_dist_rank() == 0) {
        char launcher[32] = "";
        if (oclseg_dist_size() > 1)
            snprintf(launcher, sizeof launcher, "mpirun -np %d ", oclseg_dist_size());
        fprintf(stderr, "stopped by %s at step %lld: checkpoint written; resume with\n"
                        "  %soclseg train --resume %s/checkpoint.safetensors\n",
                oclseg_stop_signal_name(), (long long)r->trainer->step, launcher, r->dir);
        fflush(stderr);
    }
    if (oclseg_dist_size() > 1) TRY(oclseg_dist_barrier());
    return OCLSEG_ERR_INTERRUPTED;
}

/* --max-steps or SIGINT/SIGTERM (on any rank, sig) inside an epoch, after its step s: drain,
 * checkpoint (with the epoch's losses so far), weights; returns the final status (stopped()). */
static int stopped(const fit_run *r, int sig);
static int stop_early(fit_run *r, oclseg_run_position *pos, int epoch, int s, int sig) {
    TRY(drain_losses(r, epoch));
    pos->epoch = epoch;
    pos->step_in_epoch = s + 1;
    pos->epoch_loss_sum = r->epoch_loss_sum;
    pos->epoch_loss_count = r->epoch_loss_count;
    TRY(fit_save_checkpoint(r, pos));
    char wpath[4200];
    fit_path(r, "weights.safetensors", wpath, sizeof wpath);
    if (oclseg_dist_rank() == 0) TRY(oclseg_weights_save(r->model, wpath));
    if (!sig && !r->o->quiet && isatty(STDERR_FILENO)) fputc('\n', stderr);
    return stopped(r, sig);
}

/* The end of a run stopped by a signal (sig: report_stop) or --max-steps, its checkpoint
 * written. */
static int stopped(const fit_run *r, int sig) {
    const oclseg_fit_options *o = r->o;
    if (sig) return report_stop(r);
    if (!o->quiet)
        printf("stopped after --max-steps %d; checkpoint %s/checkpoint.safetensors\n",
               o->max_steps, r->dir);
    return OCLSEG_OK;
}

/* One line of metrics.csv (met NULL: not evaluated this epoch, empty validation columns). */
static int append_metrics(const fit_run *r, int epoch, double train_loss,
                          const oclseg_metrics *met, double val_loss, double seconds) {
    FILE *mf = oclseg_output_fappend(r->metrics_path); /* refuses a link (message) */
    if (!mf) return OCLSEG_ERR_IO;
    int ok;
    if (met)
        ok = fprintf(mf, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f", epoch + 1,
                     train_loss, val_loss, met->mean.accuracy, met->mean.dice, met->mean.jaccard,
                     met->mean.sensitivity, met->mean.specificity, met->pooled_dice,
                     met->pooled_iou, seconds) > 0;
    else
        ok = fprintf(mf, "%d,%.6f,,,,,,,,,%.2f", epoch + 1, train_loss, seconds) > 0;
    if (ok && !r->metrics_no_wait) ok = fprintf(mf, ",%.3f", r->epoch_wait_s) > 0;
    if (ok) ok = fputc('\n', mf) != EOF;
    if (fclose(mf) != 0) ok = 0;
    if (!ok) {
        OCLSEG_ERROR("cannot append to %s: %s", r->metrics_path, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    return OCLSEG_OK;
}

/* End of an epoch: validation scores (sharded over the ranks; if there is a validation set,
 * every --eval-every epochs and at the last), the metrics line, weights, best weights when the
 * validation Jaccard improved (*improved; without validation every epoch counts as best),
 * checkpoint, curves (rank 0 writes). */
static int end_epoch(fit_run *r, oclseg_run_position *pos, int epoch, double t_start,
                     int *improved) {
    const oclseg_fit_options *o = r->o;
    const int writer = oclseg_dist_rank() == 0;
    TRY(drain_losses(r, epoch));
    double seconds = oclseg_now_s() - t_start;
    double train_loss = r->epoch_loss_count ? r->epoch_loss_sum / r->epoch_loss_count : NAN;
    double val_loss = NAN;
    oclseg_metrics met;
    memset(&met, 0, sizeof met);
    const oclseg_dataset *val = r->data.val;
    int evaluated = val && ((epoch + 1) % o->eval_every == 0 || epoch + 1 == o->epochs);
    if (evaluated) {
        TRY(fit_dist_sync_buffers(r->model)); /* rank 0's running statistics everywhere */
        TRY(fit_dist_evaluate(r->trainer, val, r->local_batch, &val_loss, &met));
    }
    if (!o->quiet) {
        if (isatty(STDERR_FILENO)) fprintf(stderr, "\r%80s\r", "");
        printf("epoch %d/%d  train loss %.4f", epoch + 1, o->epochs, train_loss);
        if (evaluated)
            printf("  val loss %.4f  AC %.4f  DI %.4f  JA %.4f  SE %.4f  SP %.4f", val_loss,
                   met.mean.accuracy, met.mean.dice, met.mean.jaccard, met.mean.sensitivity, met.mean.specificity);
        printf("  (%.1f s, data wait %.2f s)\n", seconds, r->epoch_wait_s);
        fflush(stdout);
    }
    if (writer) TRY(append_metrics(r, epoch, train_loss, evaluated ? &met : NULL, val_loss,
                                   seconds));
    char wpath[4200];
    fit_path(r, "weights.safetensors", wpath, sizeof wpath);
    if (writer) TRY(oclseg_weights_save(r->model, wpath));
    *improved = !val || (evaluated && met.mean.jaccard > pos->best_jaccard);
    if (*improved) {
        if (evaluated) pos->best_jaccard = met.mean.jaccard;
        pos->best_epoch = epoch + 1;
        fit_path(r, "best.safetensors", wpath, sizeof wpath);
        if (writer) TRY(oclseg_weights_save(r->model, wpath));
    }
    pos->epoch = epoch + 1;
    pos->step_in_epoch = 0;
    pos->epoch_loss_sum = 0;
    pos->epoch_loss_count = 0;
    TRY(fit_save_checkpoint(r, pos));
    if (writer) fit_plot_curves(r->dir);
    return OCLSEG_OK;
}

/* --patience: no better validation Jaccard for that many epochs after the best (pos->best_epoch)
 * once `done` epochs are trained. */
static int patience_over(const fit_run *r, const oclseg_run_position *pos, int done) {
    const oclseg_fit_options *o = r->o;
    if (!(o->patience > 0 && r->data.val && done - pos->best_epoch >= o->patience)) return 0;
    if (!o->quiet)
        printf("early stop: no better validation Jaccard for %d epochs (best: epoch %d)\n",
               o->patience, pos->best_epoch);
    return 1;
}

/* The epochs from pos on (a resumed run's: its epoch's losses so far, best epoch and patience
 * come from the checkpoint); *halted when --max-steps or a signal ended the run before its last
 * epoch. A stop after an epoch's last step first ends the epoch (validation, metrics row, best
 * weights), as an uninterrupted run does; the selected epoch is pos->best_epoch. */
static int train_loop(fit_run *r, oclseg_run_position *pos, int *halted) {
    const oclseg_fit_options *o = r->o;
    const oclseg_dataset *train = r->data.train;
    const int epoch_steps = steps_per_epoch(r);
    *halted = 0;
    for (int epoch = pos->epoch; epoch < o->epochs; epoch++) {
        const int first_step = epoch == pos->epoch ? pos->step_in_epoch : 0;
        if (first_step == 0 && epoch > 0 && patience_over(r, pos, epoch)) break;
        double t_start = oclseg_now_s();
        r->epoch_loss_sum = first_step ? pos->epoch_loss_sum : 0;
        r->epoch_loss_count = first_step ? pos->epoch_loss_count : 0;
        r->epoch_wait_s = 0;
        r->next_submit = first_step;
        if (o->shuffle) {
            TRY(oclseg_shuffle(r->perm, train->count, o->seed, epoch));
        } else {
            for (int i = 0; i < train->count; i++) r->perm[i] = i;
        }
        int stop = 0, at_max = 0;
        for (int s = first_step; s < epoch_steps && !stop && !at_max; s++) {
            TRY(train_step(r, epoch, s));
            if (oclseg_trainer_pending(r->trainer) >= 16) TRY(drain_losses(r, epoch));
            progress(r, epoch, s + 1, epoch_steps, t_start, s + 1 - first_step);
            at_max = o->max_steps > 0 && r->trainer->step >= o->max_steps;
            TRY(agreed_stop(&stop)); /* all stop together */
            if ((stop || at_max) && s + 1 < epoch_steps) {
                *halted = 1;
                return stop_early(r, pos, epoch, s, stop);
            }
        }
        int improved = 0;
        TRY(end_epoch(r, pos, epoch, t_start, &improved));
        /* a signal during the validation: its checkpoint is written (a signal stops even after
         * the last epoch: the resumed run writes the final report) */
        if (!stop) TRY(agreed_stop(&stop));
        if (stop || (at_max && epoch + 1 < o->epochs)) {
            *halted = 1;
            return stopped(r, stop);
        }
    }
    if (pos->epoch == o->epochs) patience_over(r, pos, o->epochs); /* its message, if due */
    return OCLSEG_OK;
}

/* Phase 1: the data, and (under mpirun) the checks that every rank runs the same job. */
static int prepare_data(fit_run *r) {
    const oclseg_fit_options *o = r->o;
    TRY(fit_load_data(o, &r->data));
    TRY(fit_dist_check_same(o, r->data.train, r->data.test));
    if (o->sync_bn && oclseg_dist_size() > 1) TRY(fit_dist_check_sync_bn(o, r->data.train->count));
    return check_trains_something(o, &r->data);
}

/* What is about to run: device, data, model, optimizer, run directory, ranks. */
static void announce(const fit_run *r) {
    const oclseg_fit_options *o = r->o;
    if (o->quiet) return;
    printf("training on %s: %d train / %d validation / %d test images, %dx%d, batch %d, %s, "
           "%s, run dir %s\n",
           r->ctx->info.name, r->data.train->count, r->data.val ? r->data.val->count : 0,
           r->data.test ? r->data.test->count : 0,
           o->size, o->size, o->batch, o->frozen_encoder ? "frozen encoder (model 1)"
                                                         : "fine-tuned encoder (model 2)",
           oclseg_optimizer_get(o->optimizer)->title, r->dir);
    if (oclseg_dist_size() > 1)
        printf("data parallel: %d ranks, global batch %d, %s BatchNorm statistics\n",
               oclseg_dist_size(), o->batch, o->sync_bn ? "synchronised (global batch)" : "per-rank");
    if (r->trainer->broadcast_params)
        printf("the ranks' devices differ: rank 0's parameters are sent to all after each step\n");
}

/* Phase 4: the epochs with SIGINT and SIGTERM caught (the current step finishes, then a
 * checkpoint; under mpirun the ranks agree on the step). */
static int epoch_loop(fit_run *r, oclseg_run_position *pos, int *halted) {
    oclseg_stop_catch();
    int st = train_loop(r, pos, halted);
    oclseg_stop_release();
    return st;
}

/* Phase 5 (rank 0): the selected model scored once on the test set (final.csv), prediction
 * overlays of the masks it scores (its model, threshold and options); the time in gradient sums
 * under mpirun. */
static int final_report(fit_run *r, int halted, int best_epoch) {
    const oclseg_fit_options *o = r->o;
    float threshold = o->predict.threshold; /* a halted run chose none */
    if (!halted && oclseg_dist_rank() == 0) TRY(select_and_report(r, best_epoch, &threshold));
    if (oclseg_dist_rank() == 0) TRY(fit_write_predictions(r, 8, threshold));
    if (oclseg_dist_size() > 1 && !o->quiet && r->trainer->reduce_steps > 0)
        printf("gradient sums: %.1f ms per step (%.1f ms of it in MPI + host sum)\n",
               1e3 * r->trainer->reduce_seconds / r->trainer->reduce_steps,
               1e3 * oclseg_dist_comm_seconds() / r->trainer->reduce_steps);
    return OCLSEG_OK;
}

int oclseg_fit(const oclseg_fit_options *given) {
    oclseg_fit_options resolved = *given; /* the optimizer's defaults filled in */
    const oclseg_fit_options *o = &resolved;
    fit_run run = {.o = o, .lock_fd = -1};
    fit_run *r = &run;
    oclseg_run_position pos = {.best_jaccard = -1.0};
    int halted = 0;
    int st = oclseg_fit_options_resolve(&resolved);
    if (st == OCLSEG_OK && o->resume) { /* the run it continues: nothing is read or written before these checks */
        oclseg_fit_options recorded;
        oclseg_fit_options_default(&recorded);
        st = oclseg_fit_options_read_checkpoint(o->resume, &recorded, &r->record);
        if (st == OCLSEG_OK) st = oclseg_fit_check_resume(r->record, o);
        if (st == OCLSEG_OK) st = fit_check_resume_dir(o);
    }
    if (st == OCLSEG_OK) st = fit_claim_run_dir(r);
    if (st == OCLSEG_OK) st = prepare_data(r);
    if (st == OCLSEG_OK && r->record) st = fit_record_check_data(r->record, &r->data);
    if (st == OCLSEG_OK) st = create_session(r);
    if (st == OCLSEG_OK) st = fit_dist_devices_differ(r->ctx, &r->trainer->broadcast_params);
    if (st == OCLSEG_OK) st = fit_open_run_dir(r, &pos);
    if (st == OCLSEG_OK) announce(r);
    if (st == OCLSEG_OK) st = epoch_loop(r, &pos, &halted);
    if (st == OCLSEG_OK) st = final_report(r, halted, pos.best_epoch);
    teardown(r);
    fit_release_run_dir(r, st);
    /* an error on one rank stops all of them (the others would wait in the next sum) */
    char why[160];
    if (st != OCLSEG_OK && st != OCLSEG_ERR_INTERRUPTED && oclseg_dist_size() > 1)
        oclseg_dist_abort(1, "stopping every rank after: %s (see the message above)",
                          oclseg_status_message(st, why, sizeof why));
    return st;
}
