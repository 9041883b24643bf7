/* Host side of synchronised BatchNorm (--sync-bn): combines per-rank statistics and gradient
 * sums across the ranks of oclseg/dist.h (used by src/ops/batchnorm.c). */
#ifndef OCLSEG_BATCHNORM_SYNC_H
#define OCLSEG_BATCHNORM_SYNC_H

#include "oclseg/ops.h"

/* part holds this rank's (C, chunks, 2) chunk partials {mean, M2} of bn_stats_partial over m
 * values per channel (chunks of chunk_len, the last shorter). Replaces them, at offset 0, by
 * (C, 1, 2) {mean, M2} over all ranks' values, and sets *m_global to their count. */
int bn_sync_stats(oclseg_ctx *ctx, cl_mem part, cl_uint chunks, cl_uint chunk_len, cl_uint m,
                  cl_uint channels, const op_bn_sync *sync, cl_uint *m_global);
/* sums at sums_off holds this rank's (C, 2) {sum dy, sum dy * xhat}. Replaces them by what this
 * rank's dx needs, (sum over ranks r of w_r * sums_r) / w_self with w_r = rank_counts[r] / total
 * (the ranks' losses are weighted so; with equal counts it is the plain sum over ranks), and
 * turns *m (this rank's values per channel) into the global count. */
int bn_sync_grad_sums(oclseg_ctx *ctx, cl_mem sums, cl_uint sums_off, cl_uint channels,
                      const op_bn_sync *sync, cl_uint *m);

#endif
