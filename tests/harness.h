/* Test harness for op tests: device iteration, guarded/poisoned device buffers, deterministic
 * random data, and comparison against double-precision references with stated tolerances.
 * tests/test_ops_eltwise.c is the template that shows each part in use. */
#ifndef OCLSEG_TEST_HARNESS_H
#define OCLSEG_TEST_HARNESS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oclseg/ops.h"

/* Devices under test: the one named by OCLSEG_TEST_DEVICE (same syntax as --device), else
 * every device present. Contexts are created once per process and shared by all tests. */
int harness_device_count(void);
oclseg_ctx *harness_ctx(int i);
/* OCLSEG_TEST_SMALL=1 (set under Oclgrind): tests should use their smallest shapes. */
int harness_small(void);
/* A test's case table: `small` under OCLSEG_TEST_SMALL (Oclgrind), else `full` (both arrays);
 * stores the count in *count_out and yields the first case. */
#define HARNESS_CASES(full, small, count_out)                                                      \
    (harness_small() ? (*(count_out) = sizeof(small) / sizeof((small)[0]), (small))                 \
                     : (*(count_out) = sizeof(full) / sizeof((full)[0]), (full)))
/* OCLSEG_TEST_NO_GEMM=1 (set under Oclgrind, where CLBlast does not run): skip GEMM paths. */
int harness_no_gemm(void);

/* A device buffer with guard regions before and after the tensor data. The leading guard
 * also makes every tensor start at a non-zero offset, so offset handling is exercised.
 * Guards hold a sentinel pattern; the body is poisoned with NaN before use as an output. */
typedef struct hbuf {
    oclseg_ctx *ctx;
    cl_mem buf;
    size_t n;            /* floats in the body */
    size_t lead, trail;  /* guard floats before / after */
} hbuf;

hbuf hb_create(oclseg_ctx *ctx, size_t n);
void hb_free(hbuf *b);
/* A (N, C, H, W) tensor view of the body (n*c*h*w must equal b->n). */
oclseg_tensor hb_tensor(const hbuf *b, int n, int c, int h, int w);
void hb_upload(hbuf *b, const float *src);
/* Fills the body with a NaN pattern, so elements an op forgets to write fail the comparison. */
void hb_poison(hbuf *b);
/* Reads the body to dst and asserts (ck_assert) that both guards are intact. */
void hb_download(hbuf *b, float *dst, const char *what);
/* Downloads b (hb_download: guards asserted) and compares it with ref (harness_compare); the
 * comparison's name is printf-formatted (op, case, device). */
void hb_check(hbuf *b, const double *ref, double atol, double rtol, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Creates and uploads in one go. */
hbuf hb_from(oclseg_ctx *ctx, const float *src, size_t n);

/* Deterministic uniform floats in [lo, hi) from a seed (xorshift). */
void harness_fill_uniform(float *dst, size_t n, float lo, float hi, uint64_t seed);
/* Float data widened to double (for references). */
double *harness_to_double(const float *src, size_t n);

/* The worst element of got against ref: the largest |got - ref| / (atol + rtol * |ref|) (0 for
 * n == 0; a non-finite element, or any error against a zero tolerance, gives INFINITY), with its
 * index and |got - ref| when the pointers are not NULL. */
double harness_max_error(const float *got, const double *ref, size_t n, double atol, double rtol,
                         size_t *index, double *abs_err);

/* Asserts |got - ref| <= atol + rtol * |ref| for every element, and that got is finite. On the
 * first failure it reports the element index, both values and the worst error seen. Every call's
 * worst error is kept and printed, with its tolerance, when harness_run finishes (one line per
 * `what`: op, case and device), so the margins are visible on every run. */
void harness_compare(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol);

/* ---- per-case arena: every host array and guarded device buffer of one case, one free ---- */
typedef struct harness_arena {
    void **host;   /* malloc'd host arrays */
    void **bufs;   /* guarded device buffers (hbuf *) */
    size_t host_count, host_cap, buf_count, buf_cap;
} harness_arena;

/* Zeroed host arrays (asserted non-NULL), freed by ha_free. */
float *ha_floats(harness_arena *a, size_t n);
double *ha_doubles(harness_arena *a, size_t n);
/* Zeroed host memory of n bytes (masks, integer counts; asserted non-NULL), freed by ha_free. */
void *ha_bytes(harness_arena *a, size_t n);
/* Uniform floats in [lo, hi) from a seed (harness_fill_uniform), and their double copy. */
float *ha_uniform(harness_arena *a, size_t n, float lo, float hi, uint64_t seed);
double *ha_widen(harness_arena *a, const float *src, size_t n);
/* A guarded device buffer: poisoned (ha_buf), or holding src (ha_buf_from). */
hbuf *ha_buf(harness_arena *a, oclseg_ctx *ctx, size_t n);
hbuf *ha_buf_from(harness_arena *a, oclseg_ctx *ctx, const float *src, size_t n);
/* Frees everything the arena holds; the arena can be used again. */
void ha_free(harness_arena *a);

/* ---- finite differences of a double-precision reference ---- */
/* One argument of the reference: `n` values the check perturbs in place, and the analytic
 * gradient of the loss with respect to them. */
typedef struct harness_fd_arg {
    const char *name;
    double *value;
    const double *grad;
    size_t n;
} harness_fd_arg;

/* The loss at the current argument values (the reference forward, reduced to a number). */
typedef double (*harness_loss_fn)(void *user);

/* For every element of every argument: the central difference (L(v + h) - L(v - h)) / 2h,
 * asserted within atol + rtol * |fd| of the analytic gradient (one assertion per element); the
 * values are restored. */
void harness_check_fd(const char *what, harness_loss_fn loss, void *user,
                      const harness_fd_arg *args, size_t arg_count, double h, double atol,
                      double rtol);

/* Asserts that an op call rejects its arguments (OCLSEG_ERR_INVALID_ARG, one assertion). */
#define HARNESS_REJECTS(call) ck_assert_int_eq((call), OCLSEG_ERR_INVALID_ARG)

/* Runs a suite (no fork: contexts are shared) and returns the process exit code. */
int harness_run(Suite *s);

/* A new directory $TMPDIR/oclseg-<name>-XXXXXX (TMPDIR unset: /tmp) written into dir (asserted).
 * harness_run removes every such directory when the whole suite passed and names those it keeps
 * when it failed (OCLSEG_KEEP_TEST_DIRS=1 keeps them always). A test run in a forked child
 * (Check's default runner) removes its own with harness_rmtree instead. */
void harness_mkdtemp(char *dir, size_t size, const char *name);

/* Removes a directory tree without following links; unreadable (chmod 0) folders included. */
void harness_rmtree(const char *path);

/* For a command-line test: the oclseg binary (OCLSEG_BIN, set by meson; asserted) and a new
 * directory from harness_mkdtemp written into root. */
const char *harness_cli_dir(char *root, size_t size, const char *name);

/* Runs a shell command built printf-style; returns its exit status (255 if it did not exit). */
int harness_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts `sh -c "exec CMD"` (CMD built printf-style) in the background; returns its pid (that of
 * CMD's program once the shell has exec'ed it). */
pid_t harness_spawn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The trainer step saved in a checkpoint file (asserted readable). */
long long harness_checkpoint_step(const char *path);
/* The newest child process of `parent` (pgrep -n -P), or -1. */
pid_t harness_child_of(pid_t parent);
/* Waits up to limit_s seconds for a child; returns its exit status, 256 + the signal that ended
 * it (so that a death by SIGTERM is not taken for an exit with status 143), or -1 after killing
 * it (SIGKILL) when it did not end in time. */
int harness_wait(pid_t pid, double limit_s);

/* Frees every test context's shared scratch workspace (it lives as long as its context, and
 * the leak check at exit counts every live buffer): an unchecked teardown fixture for suites
 * whose ops use oclseg_scratch. */
void harness_release_scratch(void);

/* Grows one of the context's grow-on-demand buffers (buf, have: &ctx->scratch and
 * &ctx->scratch_bytes, or &ctx->gemm_pack and &ctx->gemm_pack_bytes) to at least `bytes` and
 * writes NaN over all of it in one write at offset 0: a kernel that reads a part no kernel wrote
 * then gives NaN on every device, and Oclgrind tracks the buffer afresh (see harness.c). */
void harness_grow_nan(oclseg_ctx *ctx, cl_mem *buf, size_t *have, size_t bytes);

/* Convenience: name of device i for messages. */
const char *harness_device_name(int i);

#endif
