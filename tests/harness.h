/* Test harness for op tests: device iteration, guarded/poisoned device buffers, deterministic
 * random data, and comparison against double-precision references with stated tolerances. */
#ifndef OCLSEG_TEST_HARNESS_H
#define OCLSEG_TEST_HARNESS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "oclseg/ops.h"

/* Devices under test: the one named by OCLSEG_TEST_DEVICE (same syntax as --device), else
 * every device present. Contexts are created once per process and shared by all tests. */
int harness_device_count(void);
oclseg_ctx *harness_ctx(int i);
/* OCLSEG_TEST_SMALL=1 (set under Oclgrind): tests should use their smallest shapes. */
int harness_small(void);
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
/* Creates and uploads in one go. */
hbuf hb_from(oclseg_ctx *ctx, const float *src, size_t n);

/* Deterministic uniform floats in [lo, hi) from a seed (xorshift). */
void harness_fill_uniform(float *dst, size_t n, float lo, float hi, uint64_t seed);
/* Float data widened to double (for references). */
double *harness_to_double(const float *src, size_t n);

/* Asserts |got - ref| <= atol + rtol * |ref| for every element, and that got is finite. On the
 * first failure it reports the element index, both values and the worst error seen. */
void harness_compare(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol);

/* Runs a suite (no fork: contexts are shared) and returns the process exit code. */
int harness_run(Suite *s);

/* Runs a shell command built printf-style; returns its exit status (255 if it did not exit). */
int harness_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees every test context's shared scratch workspace (it lives as long as its context, and
 * the leak check at exit counts every live buffer): an unchecked teardown fixture for suites
 * whose ops use oclseg_scratch. */
void harness_release_scratch(void);

/* Convenience: name of device i for messages. */
const char *harness_device_name(int i);

#endif
