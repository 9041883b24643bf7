/* Private interface between the tuner's parts: shapes files (shapes.c), child processes
 * (process.c), the search's state and trials (search.c) and the backend phase (backends.c). */
#ifndef OCLSEG_TUNE_INTERNAL_H
#define OCLSEG_TUNE_INTERNAL_H

#include <stddef.h>

#include "oclseg/tune.h"
#include "oclseg/tuning.h"

#include <jansson.h>

/* Writes j (taking its reference) to path atomically, indented. */
int tune_dump_json(json_t *j, const char *path);

/* {"shapes": [{trans_a, trans_b, batched, sum, batch, m, n, k, beta, calls}, ...],
 *  "device_default_own": whether the device's GEMMs default to the own kernels (the recording
 *  child has a context to probe that; oclseg_gemm_device_default_own)}; default_own may be NULL */
int tune_shapes_save(const oclseg_gemm_shape *shapes, int count, int default_own,
                     const char *path);
int tune_shapes_load(const char *path, oclseg_gemm_shape **out, int *count, int *default_own);

/* Runs `exe tune ARGS...` (posix_spawn, no fork of an OpenCL process), stdout and stderr
 * appended to log, killed after timeout_s or as soon as a stop is requested (oclseg/stop.h; none
 * is started after one). OCLSEG_OK on exit status 0; otherwise an error with the reason (crash
 * signal, exit status, timeout, stop: OCLSEG_ERR_INTERRUPTED) in `why`. *took: wall seconds. */
int tune_spawn(const char *exe, char *const args[], const char *log, double timeout_s, char *why,
               size_t whyn, double *took);

/* "its log ends: <last non-empty line>" of a child's log into buf (the work folder, logs
 * included, is removed when the search ends); returns buf. */
const char *tune_log_note(const char *log, char *buf, size_t size);

/* ---- the search's state (search.c), shared with the backend phase (backends.c) ---- */

/* At most this many trials in one search (about 10 are run). */
#define MAX_CANDIDATES 32

typedef struct candidate {
    char name[64];
    oclseg_tuning t;
    int ok;
    double ms, ceiling, took;
    char why[512];
} candidate;

typedef struct tune_state {
    const oclseg_tune_options *o;
    char dir[256], device_arg[32], shapes_path[300];
    double t_start, trial_cost;
    oclseg_gemm_shape *shapes;
    int nshapes;
    int default_own; /* the device's GEMMs default to the own kernels (from the recording) */
    candidate c[MAX_CANDIDATES];
    int nc;
} tune_state;

/* A progress line (through o->progress). */
void tune_say(const tune_state *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* out = the work directory's file named by fmt with index (e.g. "result%d.json"). */
void tune_file_in(const tune_state *S, char *out, size_t n, const char *fmt, int index);
/* Validates and times CLBlast with candidate t's parameters in a child: the next slot S->c[S->nc]
 * (its result file "result<nc>.json" holds "per_shape_ms"); NULL when no slot is left. */
candidate *tune_run_trial(tune_state *S, const char *name, const oclseg_tuning *t);

/* The last phase (backends.c): every recorded shape with CLBlast on `params` and on the own
 * kernels, each in a child and validated against CLBlast's defaults; per shape the faster (the
 * device default unless the other is faster by more than `margin`) into out->backends. Prints
 * the per-shape table, fills r's backend fields; returns 1 when some shape's choice differs from
 * the device default (then the file must be written), else 0. */
int tune_choose_backends(tune_state *S, double margin, oclseg_tuning *out,
                         oclseg_tune_report *r);

#endif
