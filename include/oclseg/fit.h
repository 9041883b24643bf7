/* The training run: data loading, epochs, per-step loss log, evaluation, checkpoints, resume,
 * run directory outputs, progress display and Ctrl-C handling. */
#ifndef OCLSEG_FIT_H
#define OCLSEG_FIT_H

#include "oclseg/infer.h"
#include "oclseg/trainer.h"
#include "oclseg/weights.h"

typedef struct oclseg_fit_options {
    const char *data_dir;       /* ISIC layout root; NULL: generate/use the synthetic set */
    const char *images_dir, *masks_dir, *mask_suffix; /* generic layout (train only) */
    const char *out_dir;        /* run directory; NULL: runs/<date-time> (-2, -3, ... if taken) */
    int overwrite;              /* --overwrite: replace the run out_dir holds (else refused) */
    const char *device;
    int epochs, batch, size, eval_every, max_steps;
    float lr, dropout;          /* lr: OCLSEG_FIT_OPTIMIZER_DEFAULT (the optimizer's) */
    oclseg_optimizer_kind optimizer; /* --optimizer (nadam) */
    int frozen_encoder;
    oclseg_decoder_kind decoder; /* --decoder seed (default) | skip */
    const char *pretrained, *init, *resume;
    uint64_t seed;
    int shuffle, augment, quiet, skip_bad, threads; /* augment 0: --no-augment (none at all) */
    int loader_threads;         /* --loader-threads: batch assembly threads (-1: automatic,
                                   oclseg_loader_default_threads; 0: in the training thread) */
    int prefetch;               /* --prefetch: batches assembled ahead of the step (2) */
    oclseg_augment_config aug;  /* with augment: flips (default) and the --aug-* options */
    int check_numerics;         /* --check-numerics (also env OCLSEG_CHECK_NUMERICS=1) */
    int sync_bn;                /* --sync-bn: BatchNorm statistics over the global batch (MPI) */
    int balance;                /* --balance: split global batches in proportion to rank speed */
    int allow_overlap;          /* --allow-overlap: an id in both splits is a warning, not an error */
    double mask_threshold;      /* --mask-threshold T (> 0); 0: recognise the mask encoding */
    oclseg_loss_kind loss;      /* --loss bce (default), dice, bce+dice */
    oclseg_schedule_kind schedule; /* --schedule constant (default), cosine, onecycle */
    float warmup;               /* cosine: warm-up share of all steps (0.05) */
    float weight_decay;         /* --weight-decay (OCLSEG_FIT_OPTIMIZER_DEFAULT: the optimizer's) */
    int decoupled_wd;           /* --decoupled-wd: AdamW-style for adam/nadam */
    float clip_norm;            /* --clip-norm (0: off) */
    double val_fraction;        /* share of the training set held out for selection (0.1) */
    int patience;               /* stop after this many epochs without a better validation
                                   Jaccard (0: never) */
    oclseg_predict_options predict; /* TTA / post-processing of the final val+test report
                                       (its threshold is chosen on validation) */
} oclseg_fit_options;

/* lr and weight_decay holding this stand for the optimizer's own default (its row of the
 * optimizer table, oclseg/ops.h); oclseg_fit resolves them before it records the options. */
#define OCLSEG_FIT_OPTIMIZER_DEFAULT (-1.0f)

void oclseg_fit_options_default(oclseg_fit_options *o);
/* Replaces OCLSEG_FIT_OPTIMIZER_DEFAULT in lr and weight_decay by o->optimizer's defaults and
 * checks the optimizer configuration the options make (an error names the option). */
int oclseg_fit_options_resolve(oclseg_fit_options *o);
/* The optimizer that --optimizer / config.json "optimizer" names, or -1. */
int oclseg_fit_optimizer_find(const char *name);
/* For usage texts and messages: the optimizer names joined by `sep` ("nadam, adam, ..."), or
 * with rows = 1 one line per optimizer with its default lr and weight decay, each line
 * starting with `sep`. */
void oclseg_fit_optimizer_list(char *out, size_t size, const char *sep, int rows);
/* Runs training (data-parallel over the ranks of oclseg/dist.h when started by mpirun: --batch
 * is the global batch, rank 0 alone writes the run directory); returns OCLSEG_OK,
 * OCLSEG_ERR_INTERRUPTED after SIGINT or SIGTERM (checkpoint written; oclseg_stop_signal() says
 * which), or an error. */
int oclseg_fit(const oclseg_fit_options *o);

/* ---- the recorded configuration of a run (config.json, and the same text in every checkpoint) ---- */
/* Options read back from a record; their strings point into it (free it after the run). */
typedef struct oclseg_fit_record oclseg_fit_record;
/* Reads the options recorded in config.json text onto *o: every key is checked (an unknown key,
 * a wrong type or an out-of-range value is OCLSEG_ERR_FORMAT with a message naming the key and
 * `source`); a key that is absent leaves *o's value. --resume and --out are cleared. */
int oclseg_fit_options_parse(const char *text, const char *source, oclseg_fit_options *o,
                             oclseg_fit_record **rec);
/* The same from a run's config.json file (`oclseg train --config`). */
int oclseg_fit_options_read_config(const char *path, oclseg_fit_options *o,
                                   oclseg_fit_record **rec);
/* The same from the configuration recorded in a checkpoint (rank 0 reads the file and sends the
 * text to every rank): the options a resume of it starts from. */
int oclseg_fit_options_read_checkpoint(const char *ckpt, oclseg_fit_options *o,
                                       oclseg_fit_record **rec);
void oclseg_fit_record_free(oclseg_fit_record *rec);
/* Checks that o continues the run recorded in rec: every option equal to the recorded one but
 * those of oclseg_fit_resume_changeable (--epochs only with a constant schedule), --epochs and
 * --max-steps beyond the checkpoint's position; otherwise
 * OCLSEG_ERR_INVALID_ARG with a message naming the option and both values. oclseg_fit runs it
 * for o->resume before it reads data or writes anything. */
int oclseg_fit_check_resume(const oclseg_fit_record *rec, const oclseg_fit_options *o);
/* The options that may differ from the recorded ones when a run is resumed (for messages). */
extern const char oclseg_fit_resume_changeable[];

/* Where `oclseg train` keeps the synthetic data set when no --data is given. */
#define OCLSEG_SYNTH_DIR "datasets/synth"

#endif
