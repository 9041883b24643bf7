/* Synchronised BatchNorm across ranks: per-rank statistics/gradient sums read to the host,
 * exchanged with an all-gather and combined in double in rank order (the same bits on every
 * rank, whatever the timing), written back for the existing finalize and dx kernels. */
#include "ops/batchnorm_sync.h"

#include <stdlib.h>

#include "oclseg/dist.h"

/* Chan et al.'s pairwise merge of (count, mean, M2) in double, as chan_merge in batchnorm.cl. */
static void merge(double *count, double *mean, double *m2, double nb, double mean_b, double m2_b) {
    if (nb == 0.0) return;
    double n = *count + nb, delta = mean_b - *mean;
    *mean += delta * (nb / n);
    *m2 += m2_b + delta * delta * (*count * nb / n);
    *count = n;
}

int bn_sync_stats(oclseg_ctx *ctx, cl_mem part, cl_uint chunks, cl_uint chunk_len, cl_uint m,
                  cl_uint channels, const op_bn_sync *sync, cl_uint *m_global) {
    const int size = oclseg_dist_size();
    const size_t c = channels, per_rank = 2 * c + 1; /* {mean, M2} per channel, then the count */
    float *p = malloc(c * chunks * 2 * sizeof *p);
    double *mine = malloc(per_rank * sizeof *mine), *all = malloc(per_rank * size * sizeof *all);
    int st = p && mine && all ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_read(ctx, part, 0, c * chunks * 2 * sizeof *p, p);
    for (size_t ch = 0; st == OCLSEG_OK && ch < c; ch++) { /* this rank's chunks, in order */
        double count = 0, mean = 0, m2 = 0;
        for (cl_uint k = 0; k < chunks; k++) {
            cl_uint len = m - k * chunk_len < chunk_len ? m - k * chunk_len : chunk_len;
            merge(&count, &mean, &m2, len, p[2 * (ch * chunks + k)], p[2 * (ch * chunks + k) + 1]);
        }
        mine[2 * ch] = mean;
        mine[2 * ch + 1] = m2;
    }
    mine[2 * c] = m;
    if (st == OCLSEG_OK) st = oclseg_dist_allgather(mine, per_rank * sizeof *mine, all);
    double total = 0;
    for (int r = 0; st == OCLSEG_OK && r < size; r++) total += all[per_rank * r + 2 * c];
    for (size_t ch = 0; st == OCLSEG_OK && ch < c; ch++) { /* the ranks, in rank order */
        double count = 0, mean = 0, m2 = 0;
        for (int r = 0; r < size; r++) {
            const double *e = all + per_rank * r;
            merge(&count, &mean, &m2, e[2 * c], e[2 * ch], e[2 * ch + 1]);
        }
        p[2 * ch] = (float)mean;
        p[2 * ch + 1] = (float)m2;
    }
    if (st == OCLSEG_OK && (total > 4294967295.0 || total <= 1)) {
        OCLSEG_ERROR("sync BatchNorm: %.0f values per channel over all ranks (more than 1 and "
                     "fewer than 2^32 needed)", total);
        st = total <= 1 ? OCLSEG_ERR_INVALID_ARG : OCLSEG_ERR_UNSUPPORTED;
    }
    if (st == OCLSEG_OK) st = oclseg_write(ctx, part, 0, c * 2 * sizeof *p, p);
    *m_global = (cl_uint)total;
    (void)sync;
    free(p);
    free(mine);
    free(all);
    return st;
}

int bn_sync_grad_sums(oclseg_ctx *ctx, cl_mem sums, cl_uint sums_off, cl_uint channels,
                      const op_bn_sync *sync, cl_uint *m) {
    const int size = oclseg_dist_size(), rank = oclseg_dist_rank();
    const size_t n2 = 2 * (size_t)channels;
    double total = 0;
    for (int r = 0; r < size; r++) total += sync->rank_counts[r];
    const double w_self = sync->rank_counts[rank] / total;
    float *s = malloc(n2 * sizeof *s), *all = malloc(n2 * size * sizeof *all);
    int st = s && all ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
    if (st == OCLSEG_OK) st = oclseg_read(ctx, sums, sums_off * sizeof *s, n2 * sizeof *s, s);
    if (st == OCLSEG_OK) st = oclseg_dist_allgather(s, n2 * sizeof *s, all);
    for (size_t i = 0; st == OCLSEG_OK && i < n2; i++) {
        double acc = 0;
        for (int r = 0; r < size; r++) acc += (sync->rank_counts[r] / total) * (double)all[n2 * r + i];
        s[i] = (float)(acc / w_self);
    }
    if (st == OCLSEG_OK) st = oclseg_write(ctx, sums, sums_off * sizeof *s, n2 * sizeof *s, s);
    /* values per channel: this rank's m covers rank_counts[rank] images */
    *m = (cl_uint)((double)*m / sync->rank_counts[rank] * total);
    free(s);
    free(all);
    return st;
}
