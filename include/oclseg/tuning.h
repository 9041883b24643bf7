/* GEMM tuning: recorded GEMM shapes, per-device tuning files (CLBlast parameters and the backend
 * per shape: parse, locate, apply), status. */
#ifndef OCLSEG_TUNING_H
#define OCLSEG_TUNING_H

#include <stddef.h>

#include "oclseg/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OCLSEG_TUNE_NAME_LEN 32
#define OCLSEG_TUNE_MAX_PARAMS 24

/* A set of CLBlast kernel parameters: names[i] = values[i], i < count. */
typedef struct oclseg_clblast_params {
    int count;
    char names[OCLSEG_TUNE_MAX_PARAMS][OCLSEG_TUNE_NAME_LEN];
    size_t values[OCLSEG_TUNE_MAX_PARAMS];
} oclseg_clblast_params;

/* One GEMM call as oclseg's ops issue it (src/ops/gemm.h; row-major, tight leading dimensions in
 * the tuner's trials): batched = 0: one C = op(A) op(B) + beta C (gemm_single); batched = 1, sum
 * = 0: `batch` such products (gemm_batched); sum = 1: C = the sum of the `batch` products, beta 0
 * (gemm_batched_sum). `calls`: how many such calls one recorded training step made. The backend
 * chosen for a shape runs all of that call (CLBlast may split it into several calls of its own). */
typedef struct oclseg_gemm_shape {
    int trans_a, trans_b, batched, batch;
    size_t m, n, k;
    float beta;
    long calls;
    int sum;
} oclseg_gemm_shape;

/* Whether two shapes are the same call (every field but `calls`). */
int oclseg_gemm_shape_same(const oclseg_gemm_shape *a, const oclseg_gemm_shape *b);
/* "nn b16 32x4096x27 beta 0" ("sum16" for a batch sum, "single" for one matrix): for messages. */
void oclseg_gemm_shape_name(const oclseg_gemm_shape *s, char *out, size_t n);

/* Starts recording every GEMM issued on ctx (forgets its earlier records; other contexts are
 * not recorded). */
void oclseg_gemm_record_begin(oclseg_ctx *ctx);
/* Stops recording on ctx; *shapes (malloc'd, *count entries) holds the unique shapes with call
 * counts in first-seen order. */
int oclseg_gemm_record_end(oclseg_ctx *ctx, oclseg_gemm_shape **shapes, int *count);

/* The CLBlast kernels a tuning file may set: "Xgemm", "XgemmDirect", "GemmRoutine". */
#define OCLSEG_TUNING_KERNELS 3

/* At most this many per-shape backend entries in a tuning file (a training step has ~75 shapes). */
#define OCLSEG_TUNING_MAX_BACKENDS 256

/* The backend `oclseg tune` chose for one shape (shape.calls is not stored). */
typedef struct oclseg_gemm_backend_choice {
    oclseg_gemm_shape shape;
    int backend; /* OCLSEG_GEMM_OWN or OCLSEG_GEMM_CLBLAST */
} oclseg_gemm_backend_choice;

/* A tuning file: the device key it was made for, parameters per kernel (has[i] = 0: that kernel
 * keeps CLBlast's defaults) and the backend per recorded shape (format 2; none in format 1
 * files). Timings are informational (ms per recorded step's GEMMs). */
typedef struct oclseg_tuning {
    char device[256], driver[256], platform_version[256], clblast[32];
    int has[OCLSEG_TUNING_KERNELS];
    oclseg_clblast_params params[OCLSEG_TUNING_KERNELS];
    double baseline_ms, tuned_ms;
    int nbackends;
    oclseg_gemm_backend_choice backends[OCLSEG_TUNING_MAX_BACKENDS];
} oclseg_tuning;

/* Parses a tuning file's text (not NUL-terminated necessarily: `len` bytes): format
 * "oclseg-gemm-tuning-2" (written now) or "oclseg-gemm-tuning-1" (parameters only). A kernel
 * section must name every parameter CLBlast has for that kernel, each a non-negative integer
 * < 2^20. "backends" (format 2, optional) is an array of {trans_a, trans_b, batched, sum, batch,
 * m, n, k, beta, backend: "own" | "clblast"}, each shape at most once.
 * `params_only` = 1 parses a bare {"Xgemm": {...}, ...} object (trial candidates).
 * On OCLSEG_ERR_FORMAT, err names the offending key. */
int oclseg_tuning_parse(const char *json, size_t len, int params_only, oclseg_tuning *out,
                        char *err, size_t errn);
/* The JSON text of a tuning (malloc'd; params_only as above). NULL when out of memory. */
char *oclseg_tuning_format(const oclseg_tuning *t, int params_only);

/* The tuning directory: $OCLSEG_TUNING_DIR, else $XDG_CACHE_HOME/oclseg/tuning, else
 * $HOME/.cache/oclseg/tuning. */
void oclseg_tuning_dir(char *out, size_t n);
/* The file for a device: <dir>/<device name>-<hash of device, driver, platform version and
 * CLBlast version>.json. */
void oclseg_tuning_path(const oclseg_device_info *dev, char *out, size_t n);
/* Fills the key fields of t from the device (and the CLBlast version oclseg was built with). */
void oclseg_tuning_key(const oclseg_device_info *dev, oclseg_tuning *t);

/* Overrides CLBlast's parameters for every kernel in t on `device` (CLBlastOverrideParameters;
 * process-wide for that device until overridden again). */
int oclseg_tuning_apply_params(cl_device_id device, const oclseg_tuning *t);
/* Called when a context is created: unless OCLSEG_NO_TUNING=1, reads the device's tuning file,
 * applies its parameters and keeps its per-shape backends in the context. A missing file is
 * silently the defaults; a malformed or foreign file is a warning naming the file (and key),
 * then the defaults (CLBlast's parameters, the device's backend for every shape). Never fails. */
void oclseg_tuning_apply(oclseg_ctx *ctx);
/* The backend the context's tuning file gives shape s: OCLSEG_GEMM_OWN, OCLSEG_GEMM_CLBLAST, or
 * OCLSEG_GEMM_AUTO when the file has no entry for it (or there is no file). */
int oclseg_tuning_backend(const oclseg_ctx *ctx, const oclseg_gemm_shape *s);
/* How many shapes the context's tuning file sends to the own kernels and to CLBlast; returns
 * their sum (0: no per-shape choices). */
int oclseg_tuning_backend_counts(const oclseg_ctx *ctx, int *own, int *clblast);
/* 1 when ctx runs with tuned GEMM parameters, else 0; desc gets a one-line description (the
 * file used, or why the defaults are used). */
int oclseg_tuning_status(const oclseg_ctx *ctx, char *desc, size_t n);

#ifdef __cplusplus
}
#endif

#endif
