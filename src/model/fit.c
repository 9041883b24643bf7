/* The training run: data, epochs, per-step loss log, evaluation, checkpoints and resume, run
 * directory outputs (config.json, steps.csv, metrics.csv, weights, curves.png), progress display
 * and Ctrl-C handling. */
#include "oclseg/fit.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oclseg/data.h"
#include "oclseg/infer.h"
#include "oclseg/safetensors.h"
#include "oclseg/metrics.h"
#include "model/fit_internal.h"

void oclseg_fit_options_default(oclseg_fit_options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 25;
    o->batch = 16;
    o->size = 128;
    o->eval_every = 1;
    o->lr = 1e-3f;
    o->dropout = 0.5f;
    o->optimizer = OCLSEG_OPT_NADAM;
    o->seed = 1;
    o->shuffle = 1;
    o->augment = 1;
    o->aug.flips = 1;
    o->val_fraction = 0.1;
    o->warmup = 0.05f;
    oclseg_predict_options_default(&o->predict);
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int mkdir_p(const char *path) {
    char tmp[8300];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(tmp, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

static int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- data ------------------------------------------------------------------------------------ */

static int load_split(const oclseg_fit_options *o, const char *root, oclseg_split split,
                      oclseg_dataset **out) {
    oclseg_pair_list pairs = {0};
    int st = oclseg_isic_scan(root, split, o->skip_bad, &pairs);
    if (st != OCLSEG_OK) return st;
    oclseg_dataset_options dopts = {o->size, o->threads, o->skip_bad};
    st = oclseg_dataset_load(&pairs, &dopts, out);
    oclseg_pair_list_free(&pairs);
    return st;
}

/* Holds out the validation part of d->train (deterministic from the seed). */
static int split_val(const oclseg_fit_options *o, fit_data *d) {
    if (!(o->val_fraction > 0.0)) return OCLSEG_OK;
    oclseg_dataset *all = d->train, *train = NULL;
    int st = oclseg_dataset_split(all, o->val_fraction, o->seed, &train, &d->val);
    if (st != OCLSEG_OK) return st;
    if (!d->val) {
        oclseg_dataset_free(train);
        OCLSEG_ERROR("--val-fraction %g: %d training images are too few to hold any out",
                     o->val_fraction, all->count);
        return OCLSEG_ERR_INVALID_ARG;
    }
    oclseg_dataset_free(all);
    d->train = train;
    return OCLSEG_OK;
}

static int load_data_all(const oclseg_fit_options *o, fit_data *d);
static int load_data(const oclseg_fit_options *o, fit_data *d) {
    TRY(load_data_all(o, d));
    return split_val(o, d);
}

static int load_data_all(const oclseg_fit_options *o, fit_data *d) {
    memset(d, 0, sizeof *d);
    if (o->images_dir || o->masks_dir) {
        if (!o->images_dir || !o->masks_dir) {
            OCLSEG_ERROR("--images and --masks go together");
            return OCLSEG_ERR_INVALID_ARG;
        }
        oclseg_pair_list pairs = {0};
        TRY(oclseg_pairs_scan(o->images_dir, o->masks_dir, o->mask_suffix, o->skip_bad, &pairs));
        oclseg_dataset_options dopts = {o->size, o->threads, o->skip_bad};
        int st = oclseg_dataset_load(&pairs, &dopts, &d->train);
        oclseg_pair_list_free(&pairs);
        return st;
    }
    const char *root = o->data_dir;
    if (!root) {
        root = OCLSEG_SYNTH_DIR;
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/ISBI2016_ISIC_Part1_Test_GroundTruth", root);
        if (!dir_exists(probe)) {
            if (!o->quiet)
                printf("no --data given: generating the synthetic set in %s (900 train, 379 test)\n",
                       root);
            TRY(oclseg_synth_write(root, 900, 379, 1));
        }
    }
    TRY(load_split(o, root, OCLSEG_SPLIT_TRAIN, &d->train));
    return load_split(o, root, OCLSEG_SPLIT_TEST, &d->test);
}

/* ---- the run ------------------------------------------------------------------------------------ */
typedef struct fit_run {
    const oclseg_fit_options *o;
    fit_data data;
    oclseg_ctx *ctx;
    oclseg_model *model;
    oclseg_trainer *trainer;
    char dir[4096];
    char *config_json;
    FILE *steps_csv;
    float *images, *masks;
    int *perm, *batch_idx;
    oclseg_augment *aug;
    double epoch_loss_sum;
    int64_t epoch_loss_count;
} fit_run;

static void path_in(const fit_run *r, const char *name, char *out, size_t size) {
    snprintf(out, size, "%s/%s", r->dir, name);
}

/* Reads back pending losses (one blocking read) and appends them to steps.csv. */
static int drain_losses(fit_run *r, int epoch) {
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    int st = oclseg_trainer_drain_losses(r->trainer, losses, &first, &count);
    for (int i = 0; i < count; i++) {
        fprintf(r->steps_csv, "%lld,%d,%.9g\n", (long long)(first + i), epoch + 1, (double)losses[i]);
        r->epoch_loss_sum += losses[i];
        r->epoch_loss_count++;
    }
    fflush(r->steps_csv);
    return st;
}

static int save_checkpoint(fit_run *r, const oclseg_run_position *pos) {
    char path[4200];
    path_in(r, "checkpoint.safetensors", path, sizeof path);
    return oclseg_checkpoint_save(r->trainer, pos, r->config_json, path);
}

static int setup(fit_run *r) {
    const oclseg_fit_options *o = r->o;
    TRY(load_data(o, &r->data));
    oclseg_ctx_options copts = {o->device, 0, 0};
    TRY(oclseg_ctx_create(&r->ctx, &copts));
    oclseg_model_config mc;
    oclseg_model_config_default(&mc);
    mc.size = o->size;
    mc.max_batch = o->batch;
    mc.dropout = o->dropout;
    TRY(oclseg_model_create(r->ctx, &mc, &r->model));
    TRY(oclseg_model_init_random(r->model, o->seed));
    if (o->init) {
        TRY(oclseg_weights_load(r->model, o->init, OCLSEG_WEIGHTS_FULL, NULL));
    } else if (o->pretrained) {
        TRY(oclseg_weights_load(r->model, o->pretrained, OCLSEG_WEIGHTS_TORCHVISION, NULL));
    } else if (!o->resume && !o->quiet) {
        printf("note: the encoder is not ImageNet-pretrained (random PyTorch-style init); pass "
               "--pretrained FILE (see tools/export_torchvision.py)\n");
    }
    oclseg_trainer_config tc = {.frozen_encoder = o->frozen_encoder, .seed = o->seed,
                                .check_numerics = o->check_numerics};
    const char *check_env = getenv("OCLSEG_CHECK_NUMERICS");
    if (check_env && strcmp(check_env, "1") == 0) tc.check_numerics = 1;
    oclseg_optim_config_default(&tc.optim, o->optimizer);
    tc.optim.lr = o->lr;
    tc.optim.weight_decay = o->weight_decay;
    tc.optim.decoupled_wd = o->decoupled_wd;
    tc.loss = o->loss;
    tc.clip_norm = o->clip_norm;
    const int64_t steps_per_epoch = (r->data.train->count + o->batch - 1) / o->batch;
    oclseg_schedule_default(&tc.schedule, o->schedule, steps_per_epoch * o->epochs);
    tc.schedule.warmup_steps = (int64_t)(o->warmup * (double)tc.schedule.total_steps);
    TRY(oclseg_trainer_create(r->model, &tc, &r->trainer));
    size_t s2 = (size_t)o->size * o->size;
    r->images = malloc((size_t)o->batch * 3 * s2 * sizeof(float));
    r->masks = malloc((size_t)o->batch * s2 * sizeof(float));
    r->perm = malloc((size_t)r->data.train->count * sizeof(int));
    r->batch_idx = malloc((size_t)o->batch * sizeof(int));
    r->aug = malloc((size_t)o->batch * sizeof *r->aug);
    if (!r->images || !r->masks || !r->perm || !r->batch_idx || !r->aug)
        return OCLSEG_ERR_OUT_OF_MEMORY;
    return OCLSEG_OK;
}

static void teardown(fit_run *r) {
    if (r->steps_csv) fclose(r->steps_csv);
    free(r->config_json);
    free(r->images);
    free(r->masks);
    free(r->perm);
    free(r->batch_idx);
    free(r->aug);
    oclseg_trainer_free(r->trainer);
    oclseg_model_free(r->model);
    oclseg_ctx_free(r->ctx);
    oclseg_dataset_free(r->data.train);
    oclseg_dataset_free(r->data.val);
    oclseg_dataset_free(r->data.test);
}

static void progress(const fit_run *r, int epoch, int step, int steps, double t_start,
                     int done_in_epoch) {
    if (r->o->quiet || !isatty(STDERR_FILENO)) return;
    double elapsed = now_s() - t_start;
    double per_step = done_in_epoch > 0 ? elapsed / done_in_epoch : 0;
    double eta = per_step * (steps - step);
    double last = r->epoch_loss_count ? r->epoch_loss_sum / r->epoch_loss_count : NAN;
    fprintf(stderr, "\r  epoch %d/%d  step %d/%d  loss %.4f  %.1f img/s  ETA %d:%02d   ",
            epoch + 1, r->o->epochs, step, steps, last,
            per_step > 0 ? r->o->batch / per_step : 0.0, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

/* Overlays (and masks) of the first `count` test images in RUN/predictions/, at their original
 * resolution, with the final weights. */
static int write_predictions(fit_run *r, int count) {
    const oclseg_dataset *ds = r->data.test ? r->data.test : r->data.train;
    char dir[4200];
    path_in(r, "predictions", dir, sizeof dir);
    if (mkdir_p(dir) != 0) {
        OCLSEG_ERROR("cannot create %s: %s", dir, strerror(errno));
        return OCLSEG_ERR_IO;
    }
    oclseg_infer *inf;
    TRY(oclseg_infer_wrap(r->model, &inf));
    int st = OCLSEG_OK;
    for (int i = 0; i < ds->count && i < count && st == OCLSEG_OK; i++)
        st = oclseg_predict_file(inf, ds->samples[i].image_path, dir, &r->o->predict);
    oclseg_infer_free(inf);
    return st;
}

/* Epoch end: validation scores (if there is a validation set, every --eval-every epochs and at
 * the last), the metrics.csv row, weights.safetensors, and best.safetensors when the validation
 * Jaccard improved (*improved; without validation every epoch counts as best). */
static int end_of_epoch(fit_run *r, int epoch, double seconds, oclseg_run_position *pos,
                        int *improved) {
    const oclseg_fit_options *o = r->o;
    double train_loss = r->epoch_loss_count ? r->epoch_loss_sum / r->epoch_loss_count : NAN;
    double val_loss = NAN;
    oclseg_metrics met;
    memset(&met, 0, sizeof met);
    const oclseg_dataset *val = r->data.val;
    int evaluated = val && ((epoch + 1) % o->eval_every == 0 || epoch + 1 == o->epochs);
    if (evaluated) {
        oclseg_predict_options plain;
        oclseg_predict_options_default(&plain);
        oclseg_confusion *conf = calloc((size_t)val->count, sizeof *conf);
        if (!conf) return OCLSEG_ERR_OUT_OF_MEMORY;
        int st = fit_evaluate(r->trainer, NULL, val, o->batch, &plain, &val_loss, conf, NULL);
        if (st == OCLSEG_OK) st = oclseg_metrics_compute(conf, val->count, &met);
        free(conf);
        TRY(st);
    }
    if (!o->quiet) {
        if (isatty(STDERR_FILENO)) fprintf(stderr, "\r%80s\r", "");
        printf("epoch %d/%d  train loss %.4f", epoch + 1, o->epochs, train_loss);
        if (evaluated)
            printf("  val loss %.4f  AC %.4f  DI %.4f  JA %.4f  SE %.4f  SP %.4f", val_loss,
                   met.mean.accuracy, met.mean.dice, met.mean.jaccard, met.mean.sensitivity,
                   met.mean.specificity);
        printf("  (%.1f s)\n", seconds);
        fflush(stdout);
    }
    char path[4200];
    path_in(r, "metrics.csv", path, sizeof path);
    FILE *mf = fopen(path, "a");
    if (mf) {
        if (evaluated)
            fprintf(mf, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f\n", epoch + 1,
                    train_loss, val_loss, met.mean.accuracy, met.mean.dice, met.mean.jaccard,
                    met.mean.sensitivity, met.mean.specificity, met.pooled_dice, met.pooled_iou,
                    seconds);
        else /* not evaluated this epoch: empty validation columns */
            fprintf(mf, "%d,%.6f,,,,,,,,,%.2f\n", epoch + 1, train_loss, seconds);
        fclose(mf);
    }
    path_in(r, "weights.safetensors", path, sizeof path);
    TRY(oclseg_weights_save(r->model, path));
    *improved = !val || (evaluated && met.mean.jaccard > pos->best_jaccard);
    if (*improved) {
        if (evaluated) pos->best_jaccard = met.mean.jaccard;
        path_in(r, "best.safetensors", path, sizeof path);
        TRY(oclseg_weights_save(r->model, path));
    }
    return OCLSEG_OK;
}

/* The selected model (best.safetensors) is loaded, its threshold chosen on validation, and the
 * test set scored once (final.csv). */
static int select_and_report(fit_run *r, int best_epoch) {
    char path[4200];
    path_in(r, "best.safetensors", path, sizeof path);
    if (r->data.val) TRY(oclseg_weights_load(r->model, path, OCLSEG_WEIGHTS_FULL, NULL));
    return fit_final_report(r->trainer, r->data.val, r->data.test, r->o->batch, &r->o->predict,
                            best_epoch, r->dir, r->o->quiet);
}

int oclseg_fit(const oclseg_fit_options *o) {
    fit_run run = {.o = o};
    fit_run *r = &run;
    oclseg_run_position pos = {0, 0, -1.0};
    int st = setup(r);
    if (st != OCLSEG_OK) goto done;
    /* run directory */
    if (o->out_dir) {
        snprintf(r->dir, sizeof r->dir, "%s", o->out_dir);
    } else if (o->resume) {
        snprintf(r->dir, sizeof r->dir, "%s", o->resume);
        char *slash = strrchr(r->dir, '/');
        if (slash) *slash = '\0';
        else snprintf(r->dir, sizeof r->dir, ".");
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(r->dir, sizeof r->dir, "runs/%Y%m%d-%H%M%S", &tm);
    }
    if (mkdir_p(r->dir) != 0) {
        OCLSEG_ERROR("cannot create the run directory %s: %s", r->dir, strerror(errno));
        st = OCLSEG_ERR_IO;
        goto done;
    }
    if (o->resume) {
        char *saved = NULL;
        st = oclseg_checkpoint_load(r->trainer, o->resume, &pos, &saved);
        free(saved);
        if (st != OCLSEG_OK) goto done;
        if (!o->quiet)
            printf("resuming from %s at epoch %d, step %lld\n", o->resume, pos.epoch + 1,
                   (long long)r->trainer->step);
    }
    r->config_json = fit_config_json(o, r->ctx, r->model, &r->data);
    if (!r->config_json || (st = fit_write_text_file(r->dir, "config.json", r->config_json)) != OCLSEG_OK) {
        if (st == OCLSEG_OK) st = OCLSEG_ERR_OUT_OF_MEMORY;
        goto done;
    }
    char path[4200];
    path_in(r, "steps.csv", path, sizeof path);
    if (o->resume) fit_csv_truncate(path, r->trainer->step);
    r->steps_csv = fopen(path, o->resume ? "a" : "w");
    if (!r->steps_csv) {
        OCLSEG_ERROR("cannot write %s: %s", path, strerror(errno));
        st = OCLSEG_ERR_IO;
        goto done;
    }
    if (!o->resume) fprintf(r->steps_csv, "step,epoch,loss\n");
    path_in(r, "metrics.csv", path, sizeof path);
    if (o->resume) fit_csv_truncate(path, pos.epoch + 1);
    else fit_write_text_file(r->dir, "metrics.csv",
                         "epoch,train_loss,val_loss,val_AC,val_DI,val_JA,val_SE,val_SP,val_pooled_dice,"
                         "val_pooled_iou,seconds\n");
    if (!o->quiet)
        printf("training on %s: %d train / %d validation / %d test images, %dx%d, batch %d, %s, "
               "%s, run dir %s\n",
               r->ctx->info.name, r->data.train->count, r->data.val ? r->data.val->count : 0,
               r->data.test ? r->data.test->count : 0,
               o->size, o->size, o->batch, o->frozen_encoder ? "frozen encoder (model 1)"
                                                             : "fine-tuned encoder (model 2)",
               (const char *[]){"NAdam", "Adam", "SGD"}[o->optimizer], r->dir);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_sa);
    interrupted = 0;
    const oclseg_dataset *train = r->data.train;
    const int steps_per_epoch = (train->count + o->batch - 1) / o->batch;
    int stop = 0, halted = 0, best_epoch = pos.epoch; /* the best epoch before a resume is not known */
    for (int epoch = pos.epoch; epoch < o->epochs && !stop; epoch++) {
        double t_start = now_s();
        r->epoch_loss_sum = 0;
        r->epoch_loss_count = 0;
        if (o->shuffle) {
            if ((st = oclseg_shuffle(r->perm, train->count, o->seed, epoch)) != OCLSEG_OK) break;
        } else {
            for (int i = 0; i < train->count; i++) r->perm[i] = i;
        }
        int first_step = epoch == pos.epoch ? pos.step_in_epoch : 0;
        for (int s = first_step; s < steps_per_epoch; s++) {
            int b0 = s * o->batch, n = train->count - b0 < o->batch ? train->count - b0 : o->batch;
            /* a last batch of one image at --size 32 would give the deepest training-mode
             * BatchNorms a single value per channel (undefined, PyTorch refuses it): skip it */
            if (n == 1 && o->size == 32) continue;
            for (int i = 0; i < n; i++) {
                r->batch_idx[i] = r->perm[b0 + i];
                r->aug[i] = o->augment ? oclseg_augment_draw_config(&o->aug, o->seed, epoch,
                                                                    r->batch_idx[i])
                                       : (oclseg_augment){0};
            }
            if ((st = oclseg_dataset_batch(train, r->batch_idx, n, r->aug, r->images, r->masks)) ||
                (st = oclseg_trainer_step(r->trainer, r->images, r->masks, n)))
                goto loop_end;
            if (oclseg_trainer_pending(r->trainer) >= 16 && (st = drain_losses(r, epoch))) goto loop_end;
            progress(r, epoch, s + 1, steps_per_epoch, t_start, s + 1 - first_step);
            int at_max = o->max_steps > 0 && r->trainer->step >= o->max_steps;
            if (interrupted || at_max) {
                if ((st = drain_losses(r, epoch)) != OCLSEG_OK) goto loop_end;
                pos.epoch = s + 1 == steps_per_epoch ? epoch + 1 : epoch;
                pos.step_in_epoch = s + 1 == steps_per_epoch ? 0 : s + 1;
                if ((st = save_checkpoint(r, &pos)) != OCLSEG_OK) goto loop_end;
                char wpath[4200];
                path_in(r, "weights.safetensors", wpath, sizeof wpath);
                if ((st = oclseg_weights_save(r->model, wpath)) != OCLSEG_OK) goto loop_end;
                if (!o->quiet && isatty(STDERR_FILENO)) fputc('\n', stderr);
                if (interrupted) {
                    fprintf(stderr, "interrupted at step %lld: checkpoint written; resume with\n"
                                    "  oclseg train --resume %s/checkpoint.safetensors [same options]\n",
                            (long long)r->trainer->step, r->dir);
                    st = OCLSEG_ERR_INTERRUPTED;
                } else if (!o->quiet) {
                    printf("stopped after --max-steps %d; checkpoint %s/checkpoint.safetensors\n",
                           o->max_steps, r->dir);
                }
                stop = halted = 1;
                goto loop_end;
            }
        }
        if ((st = drain_losses(r, epoch)) != OCLSEG_OK) goto loop_end;
        int improved = 0;
        if ((st = end_of_epoch(r, epoch, now_s() - t_start, &pos, &improved)) != OCLSEG_OK)
            goto loop_end;
        if (improved) best_epoch = epoch + 1;
        if (o->patience > 0 && r->data.val && epoch + 1 - best_epoch >= o->patience) {
            if (!o->quiet)
                printf("early stop: no better validation Jaccard for %d epochs (best: epoch %d)\n",
                       o->patience, best_epoch);
            stop = 1;
        }
        pos.epoch = epoch + 1;
        pos.step_in_epoch = 0;
        if ((st = save_checkpoint(r, &pos)) != OCLSEG_OK) goto loop_end;
        fit_plot_curves(r->dir);
    }
loop_end:
    sigaction(SIGINT, &old_sa, NULL);
    if (st == OCLSEG_OK && !halted) st = select_and_report(r, best_epoch);
    if (st == OCLSEG_OK) st = write_predictions(r, 8);
done:
    teardown(r);
    return st;
}
