/* Measurements `oclseg bench` makes besides the training step: the SGEMM ceiling of a device. */
#ifndef OCLSEG_BENCH_H
#define OCLSEG_BENCH_H

#include "oclseg/runtime.h"

/* GFLOP/s of an n x n x n SGEMM (one CLBlast call through the gemm module, median of 5 after a
 * warm-up, each waited for): the practical ceiling the training step's GFLOP/s is compared with. */
int oclseg_sgemm_ceiling_gflops(oclseg_ctx *ctx, size_t n, double *gflops);
/* Median of v[0..n) (sorts v). */
double oclseg_median(double *v, int n);

#endif
