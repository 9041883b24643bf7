/* GEMM tuning: finds faster CLBlast parameters for one device by validated, timed trials. */
#ifndef OCLSEG_TUNE_H
#define OCLSEG_TUNE_H

#include <stddef.h>

#include "oclseg/util.h"

typedef struct oclseg_tune_options {
    const char *device;            /* device spec (see oclseg_device_choose) */
    int batch, size, repeats;      /* the training step whose GEMMs are recorded; timing medians */
    double budget_s;               /* time for the whole search */
    double trial_timeout_s;        /* a child running longer is killed and its candidate rejected */
    /* The executable whose `tune` subcommand runs the children (hidden options, see
     * oclseg_tune_child_*); NULL: /proc/self/exe, i.e. the calling oclseg binary. */
    const char *exe;
    /* Progress lines (no newline); NULL: silent. */
    void (*progress)(void *user, const char *line);
    void *progress_user;
} oclseg_tune_options;

/* batch 16, size 128, repeats 3, budget 300 s, trial timeout 300 s. */
void oclseg_tune_options_default(oclseg_tune_options *o);

typedef struct oclseg_tune_report {
    int shapes;                      /* unique GEMM shapes of one step */
    long calls;                      /* GEMM calls (gemm_single/_batched/_batched_sum) per step */
    int candidates, rejected;
    char best[64];                   /* name of the chosen candidate ("CLBlast defaults": none) */
    double baseline_ms, best_ms;     /* weighted GEMM time of one step */
    double baseline_gflops, best_gflops; /* 1024^3 SGEMM through CLBlast */
    int params_chosen;               /* 1: `best` beat the defaults and is in the file */
    /* the backend per shape (last phase): shapes sent to each, shapes whose own-kernel trial
     * failed, and the weighted GEMM time of one step with the device's backend for every shape
     * and with the chosen ones (0 when the phase could not compare) */
    int backend_own, backend_clblast, own_rejected;
    double default_backends_ms, chosen_backends_ms;
    char default_backend[32];        /* "own kernels" or "CLBlast" */
    int written;                     /* 1: `path` now holds the results; 0: nothing to keep */
    char path[OCLSEG_PATH_MAX];      /* the device's tuning file */
    char work_dir[256];              /* candidates, results and child logs (removed at the end) */
    double seconds;
} oclseg_tune_report;

/* Records the GEMM shapes of one training step, tries CLBlast's defaults, its tuners' results and
 * hand-picked sets in child processes (every recorded shape must reproduce the defaults bit for bit
 * on integer data) and keeps the fastest if it beats the defaults by 3%; then times every shape on
 * CLBlast with the kept parameters and on the own kernels (validated the same way) and chooses the
 * backend per shape. Writes the device's tuning file when the parameters or some shape's backend
 * differ from the defaults (else removes an older file). OCLSEG_OK when the search completed.
 * SIGINT and SIGTERM stop it: the running child is killed, no file is written, and it returns
 * OCLSEG_ERR_INTERRUPTED (oclseg_stop_signal() says which). The work folder
 * (/tmp/oclseg-tune-*) is removed whatever the outcome. */
int oclseg_tune(const oclseg_tune_options *o, oclseg_tune_report *r);

/* Child entry points, each run in its own process by oclseg_tune through `EXE tune --record ...`,
 * `--tuner ...`, `--trial ...` (the CLI maps those options here). Each returns OCLSEG_OK after
 * writing its JSON result file. */
/* Called first in a child: it is killed when its parent dies (Linux), so no trial outlives a
 * tuner that was killed itself. */
void oclseg_tune_child_init(void);
int oclseg_tune_child_record(const char *device, int batch, int size, const char *shapes_path);
int oclseg_tune_child_tuner(const char *device, const char *kernel, size_t m, size_t n, size_t k,
                            double fraction, const char *result_path);
int oclseg_tune_child_trial(const char *device, const char *candidate_path,
                            const char *shapes_path, const char *result_path, int repeats);
/* `--own`: the recorded shapes on oclseg's own kernels, each validated against CLBlast's
 * defaults and timed; a shape that fails is rejected alone (its reason in the result). */
int oclseg_tune_child_own(const char *device, const char *shapes_path, const char *result_path,
                          int repeats);

#endif
