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
    float lr, dropout;
    oclseg_optimizer_kind optimizer;
    int frozen_encoder;
    const char *pretrained, *init, *resume;
    uint64_t seed;
    int shuffle, augment, quiet, skip_bad, threads; /* augment 0: --no-augment (none at all) */
    oclseg_augment_config aug;  /* with augment: flips (default) and the --aug-* options */
    int check_numerics;         /* --check-numerics (also env OCLSEG_CHECK_NUMERICS=1) */
    int sync_bn;                /* --sync-bn: BatchNorm statistics over the global batch (MPI) */
    int balance;                /* --balance: split global batches in proportion to rank speed */
    double mask_threshold;      /* --mask-threshold T (> 0); 0: recognise the mask encoding */
    oclseg_loss_kind loss;      /* --loss bce (default), dice, bce+dice */
    oclseg_schedule_kind schedule; /* --schedule constant (default), cosine, onecycle */
    float warmup;               /* cosine: warm-up share of all steps (0.05) */
    float weight_decay;         /* --weight-decay (0) */
    int decoupled_wd;           /* --decoupled-wd: AdamW-style for adam/nadam */
    float clip_norm;            /* --clip-norm (0: off) */
    double val_fraction;        /* share of the training set held out for selection (0.1) */
    int patience;               /* stop after this many epochs without a better validation
                                   Jaccard (0: never) */
    oclseg_predict_options predict; /* TTA / post-processing of the final val+test report
                                       (its threshold is chosen on validation) */
} oclseg_fit_options;

void oclseg_fit_options_default(oclseg_fit_options *o);
/* Runs training (data-parallel over the ranks of oclseg/dist.h when started by mpirun: --batch
 * is the global batch, rank 0 alone writes the run directory); returns OCLSEG_OK,
 * OCLSEG_ERR_INTERRUPTED after SIGINT or SIGTERM (checkpoint written; oclseg_stop_signal() says
 * which), or an error. */
int oclseg_fit(const oclseg_fit_options *o);

/* Where `oclseg train` keeps the synthetic data set when no --data is given. */
#define OCLSEG_SYNTH_DIR "datasets/synth"

#endif
