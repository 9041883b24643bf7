// BatchNorm2d kernels (PyTorch semantics): batch statistics, normalisation, running-stat update
// and the training/eval backward.
//
// x is (N, C, H, W) with HW = H*W. Channel c holds M = N*HW values indexed by m in [0, M):
// n = m / HW, i = m % HW, at x[(n*C + c)*HW + i]. Per-channel reductions split the m range into
// `chunks` consecutive chunks of `chunk_len` values; one work-group of L items per (chunk,
// channel) reduces its chunk in local memory in a fixed tree order and writes one partial to
// scratch; then one work-item per channel combines the partials in chunk order. L is chosen by
// the host: a power of two <= REDUCE_WG that the device allows for the kernel (rusticl's
// llvmpipe allows only 32 items per work-group).
// Nothing depends on timing, so the same inputs always give the same bits.
// Mean/variance use Welford updates per work-item and Chan et al.'s pairwise merges, never
// E[x^2] - E[x]^2 (which cancels catastrophically for |mean| >> std in float32).

// REDUCE_WG (largest work-group size of the *_partial kernels) and WORK_GROUP_TREE:
// cl/common.clh (prepended by the loader).

// Merges the statistics of set b (count nb, mean mean_b, sum of squared deviations m2_b) into
// set a, in place (Chan, Golub, LeVeque). Counts are exact integers.
inline void chan_merge(uint *na, float *mean_a, float *m2_a, const uint nb, const float mean_b,
                       const float m2_b) {
    if (nb == 0) return;
    if (*na == 0) {
        *na = nb;
        *mean_a = mean_b;
        *m2_a = m2_b;
        return;
    }
    const uint n = *na + nb;
    const float frac_b = (float)nb / (float)n;
    const float delta = mean_b - *mean_a;
    *mean_a += delta * frac_b;
    *m2_a += m2_b + delta * delta * ((float)*na * frac_b);
    *na = n;
}

// Address of element m of channel c.
inline uint channel_index(const uint m, const uint c, const uint C, const uint HW) {
    const uint n = m / HW;
    return (n * C + c) * HW + (m - n * HW);
}

// Launched with global (chunks * L, C), local (L, 1), L a power of two <= REDUCE_WG. Writes,
// for each (channel c, chunk), part[part_off + 2*(c*chunks + chunk) + {0, 1}] = {mean, sum of
// squared deviations} of the chunk's values.
__kernel void bn_stats_partial(__global const float *x, const uint x_off, const uint C, const uint HW,
                 const uint M, const uint chunk_len, const uint chunks, __global float *part,
                 const uint part_off) {
    __local uint count_l[REDUCE_WG];
    __local float mean_l[REDUCE_WG], m2_l[REDUCE_WG];
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint chunk = get_group_id(0), c = get_group_id(1);
    if (chunk >= chunks || c >= C) return; // whole work-group: no barrier is skipped by part of it
    const uint start = chunk * chunk_len, end = min(M, start + chunk_len);

    uint count = 0;
    float mean = 0.0f, m2 = 0.0f;
    for (uint m = start + lid; m < end; m += L) {
        const float v = x[x_off + channel_index(m, c, C, HW)];
        count++;
        const float delta = v - mean;
        mean += delta / (float)count;
        m2 += delta * (v - mean);
    }
    count_l[lid] = count;
    mean_l[lid] = mean;
    m2_l[lid] = m2;
    WORK_GROUP_TREE(lid, step,
        count = count_l[lid];
        mean = mean_l[lid];
        m2 = m2_l[lid];
        chan_merge(&count, &mean, &m2, count_l[lid + step], mean_l[lid + step], m2_l[lid + step]);
        count_l[lid] = count;
        mean_l[lid] = mean;
        m2_l[lid] = m2;)
    if (lid == 0) {
        part[part_off + 2 * (c * chunks + chunk)] = mean_l[0];
        part[part_off + 2 * (c * chunks + chunk) + 1] = m2_l[0];
    }
}

// One work-item per channel: merges the chunk partials in order, writes save_mean and
// save_invstd = 1/sqrt(var_biased + eps), and updates the running statistics in place
// (running_var with the unbiased variance, M > 1 guaranteed by the host).
__kernel void bn_stats_finalize(__global const float *part, const uint part_off, const uint chunks,
                                const uint chunk_len, const uint M, const uint C, const float eps,
                                const float momentum, __global float *running_mean,
                                const uint rm_off, __global float *running_var, const uint rv_off,
                                __global float *save_mean, const uint sm_off,
                                __global float *save_invstd, const uint si_off) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    uint count = 0;
    float mean = 0.0f, m2 = 0.0f;
    for (uint chunk = 0; chunk < chunks; chunk++) {
        const uint chunk_count = min(chunk_len, M - chunk * chunk_len);
        chan_merge(&count, &mean, &m2, chunk_count, part[part_off + 2 * (c * chunks + chunk)],
                   part[part_off + 2 * (c * chunks + chunk) + 1]);
    }
    m2 = fmax(m2, 0.0f);
    const float var_biased = m2 / (float)M, var_unbiased = m2 / (float)(M - 1);
    save_mean[sm_off + c] = mean;
    save_invstd[si_off + c] = 1.0f / sqrt(var_biased + eps);
    running_mean[rm_off + c] = (1.0f - momentum) * running_mean[rm_off + c] + momentum * mean;
    running_var[rv_off + c] = (1.0f - momentum) * running_var[rv_off + c] + momentum * var_unbiased;
}

// invstd[c] = 1 / sqrt(var[c] + eps) (eval mode, from the running variance).
__kernel void bn_invstd_from_var(__global const float *var, const uint var_off, const float eps,
                                 __global float *invstd, const uint invstd_off, const uint C) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    invstd[invstd_off + c] = 1.0f / sqrt(var[var_off + c] + eps);
}

// The normalised output before any activation: (x - mean) * scale + beta with scale = invstd *
// gamma, as one explicit fma so that every kernel that recomputes it (the fused ReLU6 backward
// below) gets the forward's bits whatever the compiler contracts elsewhere.
inline float bn_output(const float x, const float mean, const float scale, const float beta) {
    return fma(x - mean, scale, beta);
}

// The gradient that reaches the BatchNorm through a fused ReLU6 (relu6 != 0): dy where the
// forward's output v lies strictly inside (0, 6), else 0 (NaN: 0), as relu6_backward computes
// from the stored y = clamp(v). Without relu6, dy itself.
inline float bn_relu6_grad(const uint relu6, const float dy, const float x, const float mean,
                           const float scale, const float beta) {
    if (!relu6) return dy;
    const float v = bn_output(x, mean, scale, beta);
    return v > 0.0f && v < 6.0f ? dy : 0.0f;
}

// A per-element kernel in two launch shapes from one body: NAME over work-items (HW, C, N) (the
// channel comes from the id, no per-element division; GPUs), and NAME_rows over (C, N), one
// item per plane looping over its HW contiguous elements with the channel's constants loaded
// once (CPU devices: a vectorisable loop instead of one scheduled item per element). CHANNEL
// declares the per-channel values from c; ELEMENT computes element i. Both are macro arguments:
// no comma outside parentheses in them (one declaration per statement).
#define BN_PER_ELEMENT(NAME, ARGS, CHANNEL, ELEMENT)                                           \
    __kernel void NAME(ARGS) {                                                                 \
        const uint p = get_global_id(0), c = get_global_id(1), n = get_global_id(2);           \
        if (p >= HW || c >= C) return;                                                         \
        const uint i = (n * C + c) * HW + p;                                                   \
        if (i >= total) return;                                                                \
        CHANNEL                                                                                \
        ELEMENT                                                                                \
    }                                                                                          \
    __kernel void NAME##_rows(ARGS) {                                                          \
        const uint c = get_global_id(0), n = get_global_id(1);                                 \
        const uint first = (n * C + c) * HW;                                                   \
        if (c >= C || first >= total) return;                                                  \
        CHANNEL                                                                                \
        for (uint i = first; i < first + HW; i++) {                                            \
            ELEMENT                                                                            \
        }                                                                                      \
    }

// y = (x - mean[c]) * (invstd[c] * gamma[c]) + beta[c] over all `total` elements. Subtracting
// the mean first keeps full precision when |mean| >> std (x * scale + shift would not).
// relu6 != 0 fuses the ReLU6 that follows most BatchNorms (one pass over y instead of two);
// NaN stays NaN as in PyTorch's hardtanh.
#define BN_APPLY_ARGS                                                                          \
    __global const float *x, const uint x_off, __global const float *mean, const uint mean_off,  \
        __global const float *invstd, const uint invstd_off, __global const float *gamma,        \
        const uint gamma_off, __global const float *beta, const uint beta_off,                   \
        __global float *y, const uint y_off, const uint C, const uint HW, const uint total,      \
        const uint relu6
BN_PER_ELEMENT(bn_apply, BN_APPLY_ARGS,
    const float scale = invstd[invstd_off + c] * gamma[gamma_off + c];
    const float mu = mean[mean_off + c];
    const float shift = beta[beta_off + c];,
    const float v = bn_output(x[x_off + i], mu, scale, shift);
    y[y_off + i] = relu6 && !isnan(v) ? fmin(fmax(v, 0.0f), 6.0f) : v;)

// Arguments and per-channel set-up of the backward kernels that take a fused ReLU6's gradient
// (relu6 != 0: the forward ran bn_apply with relu6; dy is the gradient of the ReLU6's output and
// the mask is recomputed from x, so neither y nor a relu6_backward pass is needed).
#define BN_RELU6_ARGS                                                                        \
    __global const float *r6_invstd, const uint r6_invstd_off, __global const float *r6_gamma, \
        const uint r6_gamma_off, __global const float *r6_beta_buf, const uint r6_beta_off,    \
        const uint relu6
#define BN_RELU6_CHANNEL(c)                                                                    \
    const float r6_scale = relu6 ? r6_invstd[r6_invstd_off + (c)] * r6_gamma[r6_gamma_off + (c)] \
                                 : 0.0f;                                                       \
    const float r6_beta = relu6 ? r6_beta_buf[r6_beta_off + (c)] : 0.0f;

// Launched like bn_stats_partial. Writes part[part_off + 2*(c*chunks + chunk) + {0, 1}] =
// {sum dy, sum dy * (x - mean[c])} over the chunk.
__kernel void bn_grad_partial(__global const float *x, const uint x_off, __global const float *dy,
                const uint dy_off, __global const float *mean, const uint mean_off, const uint C,
                const uint HW, const uint M, const uint chunk_len, const uint chunks,
                __global float *part, const uint part_off, BN_RELU6_ARGS) {
    __local float sum_dy_l[REDUCE_WG], sum_dy_xmu_l[REDUCE_WG];
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint chunk = get_group_id(0), c = get_group_id(1);
    if (chunk >= chunks || c >= C) return; // whole work-group: no barrier is skipped by part of it
    const uint start = chunk * chunk_len, end = min(M, start + chunk_len);
    const float mu = mean[mean_off + c];
    BN_RELU6_CHANNEL(c)

    float sum_dy = 0.0f, sum_dy_xmu = 0.0f;
    for (uint m = start + lid; m < end; m += L) {
        const uint idx = channel_index(m, c, C, HW);
        const float xv = x[x_off + idx];
        const float g = bn_relu6_grad(relu6, dy[dy_off + idx], xv, mu, r6_scale, r6_beta);
        sum_dy += g;
        sum_dy_xmu += g * (xv - mu);
    }
    sum_dy_l[lid] = sum_dy;
    sum_dy_xmu_l[lid] = sum_dy_xmu;
    WORK_GROUP_TREE(lid, step,
        sum_dy_l[lid] += sum_dy_l[lid + step];
        sum_dy_xmu_l[lid] += sum_dy_xmu_l[lid + step];)
    if (lid == 0) {
        part[part_off + 2 * (c * chunks + chunk)] = sum_dy_l[0];
        part[part_off + 2 * (c * chunks + chunk) + 1] = sum_dy_xmu_l[0];
    }
}

// One work-item per channel: sums the partials in chunk order into
// sums[sums_off + 2c + {0, 1}] = {sum dy, sum dy * xhat} (xhat = (x - mean) * invstd), and
// writes dbeta = sum dy / dgamma = sum dy * xhat where the matching flag is set.
__kernel void bn_grad_finalize(__global const float *part, const uint part_off, const uint chunks,
                               const uint C, __global const float *invstd, const uint invstd_off,
                               __global float *sums, const uint sums_off, __global float *dgamma,
                               const uint dgamma_off, const int write_dgamma,
                               __global float *dbeta, const uint dbeta_off,
                               const int write_dbeta) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    float sum_dy = 0.0f, sum_dy_xmu = 0.0f;
    for (uint chunk = 0; chunk < chunks; chunk++) {
        sum_dy += part[part_off + 2 * (c * chunks + chunk)];
        sum_dy_xmu += part[part_off + 2 * (c * chunks + chunk) + 1];
    }
    const float sum_dy_xhat = sum_dy_xmu * invstd[invstd_off + c];
    sums[sums_off + 2 * c] = sum_dy;
    sums[sums_off + 2 * c + 1] = sum_dy_xhat;
    if (write_dgamma) dgamma[dgamma_off + c] = sum_dy_xhat;
    if (write_dbeta) dbeta[dbeta_off + c] = sum_dy;
}

// Training-mode input gradient:
// dx = gamma * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M).
#define BN_TRAIN_DX_ARGS                                                                       \
    __global const float *x, const uint x_off, __global const float *dy, const uint dy_off,      \
        __global const float *mean, const uint mean_off, __global const float *invstd,           \
        const uint invstd_off, __global const float *gamma, const uint gamma_off,                \
        __global const float *sums, const uint sums_off, __global float *dx, const uint dx_off,  \
        const uint C, const uint HW, const uint M, const uint total,                             \
        __global const float *r6_beta_buf, const uint r6_beta_off, const uint relu6
BN_PER_ELEMENT(bn_backward_train_dx, BN_TRAIN_DX_ARGS,
    const float inv = invstd[invstd_off + c];
    const float mean_dy = sums[sums_off + 2 * c] / (float)M;
    const float mean_dy_xhat = sums[sums_off + 2 * c + 1] / (float)M;
    const float mu = mean[mean_off + c];
    const float g = gamma[gamma_off + c];
    const float r6_beta = relu6 ? r6_beta_buf[r6_beta_off + c] : 0.0f;,
    const float xv = x[x_off + i];
    const float dyv = bn_relu6_grad(relu6, dy[dy_off + i], xv, mu, inv * g, r6_beta);
    const float xhat = (xv - mu) * inv;
    dx[dx_off + i] = g * inv * (dyv - mean_dy - xhat * mean_dy_xhat);)

// Eval-mode input gradient: dx = dy * gamma * invstd (running statistics are constants).
#define BN_EVAL_DX_ARGS                                                                        \
    __global const float *dy, const uint dy_off, __global const float *invstd,                   \
        const uint invstd_off, __global const float *gamma, const uint gamma_off,                \
        __global float *dx, const uint dx_off, const uint C, const uint HW, const uint total
BN_PER_ELEMENT(bn_backward_eval_dx, BN_EVAL_DX_ARGS,
    const float scale = gamma[gamma_off + c] * invstd[invstd_off + c];,
    dx[dx_off + i] = dy[dy_off + i] * scale;)

// ---- CPU forms of the two *_partial kernels: same arguments, same partial layout (so the
// finalize kernels are shared), one work-item per (chunk, channel); the host makes chunks of
// whole planes, so an item walks its channel's planes, each HW contiguous values. Within a plane
// BN_LANES independent lane sums take vectors of BN_LANES values (LLVM keeps them in vector
// registers: PoCL's AVX-512 adds 16 values per instruction, where one running sum is bound by
// the add latency), and every BN_BLOCK vectors, or at a plane's end, the lanes are added in a
// fixed tree order into the item's total; a plane's last HW % BN_LANES values are added one by
// one after its vectors. So each lane sums at most BN_BLOCK values before they are folded in (a
// plain running sum over thousands of values loses accuracy the tree form keeps: the PyTorch
// golden test of the fine-tuned encoder's gradients fails with one), and the order depends only
// on the shape: deterministic. Global (chunks, C).

#ifndef BN_BLOCK
#define BN_BLOCK 64 // vectors per lane block
#endif
#ifndef BN_LANES
#define BN_LANES 16
#endif

#define BN_CAT_(a, b) a##b
#define BN_CAT(a, b) BN_CAT_(a, b)
#define BN_VF BN_CAT(float, BN_LANES)
#define BN_VI BN_CAT(int, BN_LANES)
#define BN_VLOAD BN_CAT(vload, BN_LANES)
#define BN_VSTORE BN_CAT(vstore, BN_LANES)

// The lanes of v added in a fixed tree order (cl/common.clh lane_tree_sum).
inline float bn_lane_sum(const BN_VF v) {
    float lane[BN_LANES];
    BN_VSTORE(v, 0, lane);
    return lane_tree_sum(lane, BN_LANES);
}

// Sum over planes [n0, n1) of channel c of f(x) (BN_SUM_VEC on the BN_LANES values from element
// index `at`, BN_SUM_ONE on the one value there), into `total`, in the order described above.
#define BN_PLANE_SUM(total, n0, n1, BN_SUM_VEC, BN_SUM_ONE)                                    \
    for (uint n = (n0); n < (n1); n++) {                                                      \
        const size_t plane = ((size_t)n * C + c) * HW;                                        \
        const uint vec_end = HW - HW % BN_LANES;                                              \
        for (uint b = 0; b < vec_end; b += BN_BLOCK * BN_LANES) {                              \
            BN_VF lanes = (BN_VF)(0.0f);                                                      \
            for (uint i = b; i < min(vec_end, b + BN_BLOCK * BN_LANES); i += BN_LANES)        \
                lanes += BN_SUM_VEC(plane + i);                                               \
            total += bn_lane_sum(lanes);                                                      \
        }                                                                                     \
        for (uint i = vec_end; i < HW; i++) total += BN_SUM_ONE(plane + i);                   \
    }

// bn_stats_partial's {mean, sum of squared deviations} of the chunk, by two passes (the chunk's
// sum, then the squared deviations from its mean): exact enough without Welford's division.
__kernel void bn_stats_rows(__global const float *x, const uint x_off, const uint C, const uint HW,
                            const uint M, const uint chunk_len, const uint chunks,
                            __global float *part, const uint part_off) {
    const uint chunk = get_global_id(0), c = get_global_id(1);
    if (chunk >= chunks || c >= C) return;
    const uint start = chunk * chunk_len, end = min(M, start + chunk_len);
    const uint n0 = start / HW, n1 = end / HW; // whole planes
    __global const float *xs = x + x_off;
    float sum = 0.0f;
#define BN_X_VEC(at) BN_VLOAD(0, xs + (at))
#define BN_X_ONE(at) xs[at]
    BN_PLANE_SUM(sum, n0, n1, BN_X_VEC, BN_X_ONE)
    const float mean = sum / (float)(end - start);
    float m2 = 0.0f;
#define BN_SQ_VEC(at) ((BN_X_VEC(at) - mean) * (BN_X_VEC(at) - mean))
#define BN_SQ_ONE(at) ((xs[at] - mean) * (xs[at] - mean))
    BN_PLANE_SUM(m2, n0, n1, BN_SQ_VEC, BN_SQ_ONE)
    part[part_off + 2 * (c * chunks + chunk)] = mean;
    part[part_off + 2 * (c * chunks + chunk) + 1] = m2;
}

// bn_relu6_grad on BN_LANES values at once (the same fma, so the same mask).
inline BN_VF bn_relu6_grad_vec(const uint relu6, const BN_VF dy, const BN_VF x, const float mean,
                               const float scale, const float beta) {
    if (!relu6) return dy;
    const BN_VF v = fma(x - mean, (BN_VF)(scale), (BN_VF)(beta));
    const BN_VI inside = (v > (BN_VF)(0.0f)) & (v < (BN_VF)(6.0f));
    return select((BN_VF)(0.0f), dy, inside);
}

// bn_grad_partial's {sum dy, sum dy * (x - mean[c])} of the chunk (dy through the fused ReLU6's
// mask when relu6 != 0).
__kernel void bn_grad_rows(__global const float *x, const uint x_off, __global const float *dy,
                           const uint dy_off, __global const float *mean, const uint mean_off,
                           const uint C, const uint HW, const uint M, const uint chunk_len,
                           const uint chunks, __global float *part, const uint part_off,
                           BN_RELU6_ARGS) {
    const uint chunk = get_global_id(0), c = get_global_id(1);
    if (chunk >= chunks || c >= C) return;
    const uint start = chunk * chunk_len, end = min(M, start + chunk_len);
    const uint n0 = start / HW, n1 = end / HW; // whole planes
    const float mu = mean[mean_off + c];
    BN_RELU6_CHANNEL(c)
    __global const float *xs = x + x_off, *gs = dy + dy_off;
    float sum_dy = 0.0f, sum_dy_xmu = 0.0f;
    // both sums in one pass over x and dy, each in the order of BN_PLANE_SUM
    for (uint n = n0; n < n1; n++) {
        const size_t plane = ((size_t)n * C + c) * HW;
        const uint vec_end = HW - HW % BN_LANES;
        for (uint b = 0; b < vec_end; b += BN_BLOCK * BN_LANES) {
            BN_VF lanes_dy = (BN_VF)(0.0f), lanes_dy_xmu = (BN_VF)(0.0f);
            for (uint i = b; i < min(vec_end, b + BN_BLOCK * BN_LANES); i += BN_LANES) {
                const BN_VF xv = BN_VLOAD(0, xs + plane + i);
                const BN_VF g = bn_relu6_grad_vec(relu6, BN_VLOAD(0, gs + plane + i), xv, mu,
                                                  r6_scale, r6_beta);
                lanes_dy += g;
                lanes_dy_xmu += g * (xv - mu);
            }
            sum_dy += bn_lane_sum(lanes_dy);
            sum_dy_xmu += bn_lane_sum(lanes_dy_xmu);
        }
        for (uint i = vec_end; i < HW; i++) {
            const float xv = xs[plane + i];
            const float g = bn_relu6_grad(relu6, gs[plane + i], xv, mu, r6_scale, r6_beta);
            sum_dy += g;
            sum_dy_xmu += g * (xv - mu);
        }
    }
    part[part_off + 2 * (c * chunks + chunk)] = sum_dy;
    part[part_off + 2 * (c * chunks + chunk) + 1] = sum_dy_xmu;
}
