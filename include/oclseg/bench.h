/* What `oclseg bench` measures (src/app/bench*.c): the training step and its parts on one device,
 * the data-parallel step under mpirun, and the SGEMM ceiling of a device. Each returns a result
 * struct; the command line (src/cli/cmd_bench*.c) formats and prints it. */
#ifndef OCLSEG_BENCH_H
#define OCLSEG_BENCH_H

#include "oclseg/model.h" /* oclseg_decoder_kind */
#include "oclseg/runtime.h"

/* What one measurement trains: a random batch of `batch` images of size x size, NAdam, the
 * encoder frozen or not, the model with `decoder` (0: the seed decoder); `steps` timed steps
 * (after two warm-up steps). */
typedef struct oclseg_bench_options {
    int batch, size, steps, frozen;
    oclseg_decoder_kind decoder;
} oclseg_bench_options;

/* One device's measurement. Medians in ms of `steps` samples. */
typedef struct oclseg_bench_result {
    oclseg_device_info info;
    double step_ms;      /* steps enqueued back to back (windows of 5 when steps >= 10) */
    double step_sync_ms; /* each step waited for alone */
    double forward_ms, backward_ms, optim_ms; /* each part alone */
    double images_per_s, gflops;              /* from step_ms */
    double flops_fwd, flops_bwd;              /* convolution FLOPs per step, counted analytically */
    size_t peak_bytes;                        /* peak device memory of the session */
    char (*kernel_names)[48];                 /* one profiled step, costliest kernel first */
    double *kernel_ms;
    int kernel_count;
    double profiled_ms; /* the sum of kernel_ms */
    double sgemm_gflops; /* a large square SGEMM (n = 1024) on the same device: the ceiling */
    int gemm_tuned;      /* CLBlast ran with a tuning file's parameters (oclseg tune) */
    int gemm_own;        /* GEMMs on oclseg's own kernels (CPU devices), not CLBlast */
    int gemm_file_own, gemm_file_clblast; /* shapes the tuning file sends to each backend */
    int gemm_ceiling_own; /* the 1024^3 SGEMM ran on the own kernels */
    double launches, clblast_calls, enqueue_ms, clblast_ms; /* per pipelined step, host side */
    double blocking_calls; /* CLBlast calls per step that wait for the queue */
    char gemm_tuning[4200]; /* the CLBlast parameters in use, in words */
} oclseg_bench_result;

/* The devices a bench run measures: every device for spec "all", else the one device spec
 * selects (oclseg_device_choose; NULL: OCLSEG_DEVICE or the default). *devs is malloc'ed. */
int oclseg_bench_devices(const char *spec, oclseg_device_info **devs, int *count);
/* Measures the training step on dev (zeroes *r first; on failure *r may hold part of it).
 * oclseg_bench_result_release frees its kernel profile, also after a failure. */
int oclseg_bench_device(const oclseg_device_info *dev, const oclseg_bench_options *o,
                        oclseg_bench_result *r);
void oclseg_bench_result_release(oclseg_bench_result *r);

/* One rank's part of the data-parallel measurement (plain data: gathered over the ranks). */
typedef struct oclseg_bench_rank_result {
    double alone_ms;     /* this rank's device, whole global batch, no communication */
    double step_ms;      /* data-parallel step (its share + the gradient sum) */
    double reduce_ms;    /* of which: gradient read, sum over ranks, write back */
    double allreduce_ms; /* oclseg_dist_sum of all parameters alone */
    double add_ms;       /* of which the host additions */
    int share;           /* this rank's images of the global batch */
    double params;       /* parameters of the model (floats in the gradient sum) */
    char device[256];
} oclseg_bench_rank_result;

/* Under mpirun/srun (oclseg_dist_size() > 1; o->batch >= the number of ranks): every rank
 * measures, then all[0..ranks) receives every rank's result on every rank. Collective: a failure
 * on any rank fails it on all. */
int oclseg_bench_dist(const char *device, const oclseg_bench_options *o,
                      oclseg_bench_rank_result *all);

/* GFLOP/s of an n x n x n SGEMM (one CLBlast call through the gemm module, median of 5 after a
 * warm-up, each waited for): the practical ceiling the training step's GFLOP/s is compared with. */
int oclseg_sgemm_ceiling_gflops(oclseg_ctx *ctx, size_t n, double *gflops);
/* Median of v[0..n) (sorts v). */
double oclseg_median(double *v, int n);

#endif
