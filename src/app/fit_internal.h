/* Pieces of the training run shared by fit.c, fit_eval.c and fit_files.c (not public API). */
#ifndef OCLSEG_FIT_INTERNAL_H
#define OCLSEG_FIT_INTERNAL_H

#include <jansson.h>
#include <stdio.h>

#include "oclseg/data.h"
#include "oclseg/fit.h"
#include "oclseg/infer.h"
#include "oclseg/metrics.h"
#include "oclseg/session.h"
#include "oclseg/trainer.h"
#include "oclseg/util.h"

typedef struct fit_data {
    oclseg_dataset *train, *val, *test; /* val: NULL with --val-fraction 0; test: NULL (generic) */
} fit_data;

/* Loads the data of the run (prints the data health line), holds out the validation split. */
int fit_load_data(const oclseg_fit_options *o, fit_data *d);

/* The state of one training run (fit.c), shared by its phases. */
typedef struct fit_run {
    const oclseg_fit_options *o;
    fit_data data;
    oclseg_session *session;
    oclseg_ctx *ctx;                /* the session's */
    oclseg_model *model;
    oclseg_trainer *trainer;
    char dir[OCLSEG_PATH_MAX];      /* the run directory */
    int lock_fd, created_dir;       /* rank 0: its lock (-1: none), whether this run created it */
    char metrics_path[OCLSEG_PATH_MAX + 16];
    char *config_json;
    oclseg_fit_record *record;      /* --resume: the checkpoint's recorded configuration */
    FILE *steps_csv;
    float *images, *masks;
    int *perm, *batch_idx;
    int *rank_counts, *rank_starts; /* this step's split of the global batch over the ranks */
    double *rank_speed;             /* --balance: images/s per rank once measured */
    int balanced, steps_here;       /* steps taken by this process (resumed runs start at 0) */
    double speed_images, speed_seconds;
    int local_batch;
    oclseg_augment *aug;
    struct oclseg_loader *loader;   /* assembles the batches of the next steps */
    int next_submit;                /* the epoch's next step whose batch is to be queued */
    double epoch_wait_s;            /* this epoch's wait for batches (in the loader's take) */
    int metrics_no_wait;            /* metrics.csv of a run begun before its data_wait_s column:
                                       rows keep that file's 11 columns */
    double epoch_loss_sum;
    int64_t epoch_loss_count;
} fit_run;



/* ---- the run directory's ownership (fit_claim.c) ---- */
/* Phase 0: rank 0 names the run directory (--out, the --resume checkpoint's directory, or a new
 * unique runs/<date-time>[-N]), creates and locks it (RUN/.lock: a second process gets an error
 * naming the holder) and refuses it when it holds another run (unless --overwrite: then that
 * run's files are removed first); every rank gets the name, or the refusal. */
int fit_claim_run_dir(fit_run *r);
/* End of the run (every exit path): the lock is released and its file removed; a directory this
 * run created and wrote nothing into is removed when st is an error. */
void fit_release_run_dir(fit_run *r, int st);

/* ---- the run directory (fit_rundir.c) ---- */
/* dir/name into out. */
void fit_path(const fit_run *r, const char *name, char *out, size_t size);
/* Opens the claimed run directory: loads a --resume checkpoint (rank 0, then sent to
 * every rank), writes config.json and opens steps.csv; metrics.csv gets its header (or loses
 * the epochs a resume redoes). */
int fit_open_run_dir(fit_run *r, oclseg_run_position *pos);
/* checkpoint.safetensors (rank 0 writes). */
int fit_save_checkpoint(fit_run *r, const oclseg_run_position *pos);
/* Overlays (and masks) of the first `count` test images in RUN/predictions/, by the model as it
 * is at `threshold` with the recipe's TTA and post-processing (at the end of a run: the selected
 * model and the threshold final.csv reports, so that they show the masks it scores). */
int fit_write_predictions(fit_run *r, int count, float threshold);

/* ---- the recorded configuration (fit_config.c) ---- */
/* Every option of o as config.json records it (a new JSON object). */
json_t *fit_options_json(const oclseg_fit_options *o);
/* The optimizer configuration of the (resolved) options: the kind's defaults with --lr,
 * --weight-decay and --decoupled-wd. */
void fit_optim_config(const oclseg_fit_options *o, oclseg_optim_config *c);
/* The loaded data has the image counts the record names (else an error naming its checkpoint). */
int fit_record_check_data(const oclseg_fit_record *rec, const fit_data *d);
/* --out with --resume names the checkpoint's own directory (else an error naming both). */
int fit_check_resume_dir(const oclseg_fit_options *o);
/* After a resume's checkpoint is loaded: its step fits the data (epoch, step in epoch and step
 * counter agree with the steps of an epoch); the error names the checkpoint (fit.c). */
int fit_check_position(const fit_run *r, const oclseg_run_position *pos);

/* ---- run directory files (fit_files.c) ---- */
/* config.json: every effective setting, the model, device and versions (malloc'd text). */
char *fit_config_json(const oclseg_fit_options *o, const oclseg_ctx *ctx, const oclseg_model *m,
                      const fit_data *d);
/* Writes dir/name atomically. */
int fit_write_text_file(const char *dir, const char *name, const char *text);
/* Keeps the lines of a CSV whose first field is < limit (drops what a resumed run redoes);
 * OCLSEG_OK when the file does not exist, else an error naming it. */
int fit_csv_truncate(const char *path, long long limit);
/* Draws dir/curves.png from dir/metrics.csv with gnuplot (a warning if that fails). */
void fit_plot_curves(const char *dir);

/* Scores of the selected model on one split, as written to final.csv. */
typedef struct fit_split_report {
    double loss;
    oclseg_metrics met;
    oclseg_jaccard_summary ja;
} fit_split_report;

/* Selection and the single test evaluation at the end of a run: the decision threshold is chosen
 * on val (if any) with the model as it is (the caller loads best.safetensors first) into
 * *threshold, then val and test (each if present) are scored with that threshold and po's
 * TTA/post-processing and written to dir/final.csv (split,epoch,threshold,loss,AC,DI,JA,SE,SP,
 * pooled_dice,pooled_iou,thresholded_JA,JA_p10,JA_median,JA_p90). */
int fit_final_report(oclseg_trainer *t, const oclseg_dataset *val, const oclseg_dataset *test,
                     int batch, const oclseg_predict_options *po, int best_epoch,
                     const char *dir, int quiet, float *threshold);

#endif
