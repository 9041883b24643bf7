/* Private interface between the tuner's parts: shapes files (trial.c) and child processes. */
#ifndef OCLSEG_TUNE_INTERNAL_H
#define OCLSEG_TUNE_INTERNAL_H

#include <stddef.h>

#include "oclseg/tuning.h"

/* {"shapes": [{trans_a, trans_b, batched, batch, m, n, k, beta, calls}, ...]} */
int tune_shapes_save(const oclseg_gemm_shape *shapes, int count, const char *path);
int tune_shapes_load(const char *path, oclseg_gemm_shape **out, int *count);

/* Runs `exe tune ARGS...` (posix_spawn, no fork of an OpenCL process), stdout and stderr
 * appended to log, killed after timeout_s. OCLSEG_OK on exit status 0; otherwise an error with
 * the reason (crash signal, exit status, timeout) in `why`. *took: wall seconds. */
int tune_spawn(const char *exe, char *const args[], const char *log, double timeout_s, char *why,
               size_t whyn, double *took);

#endif
