// Numerics: whether a range holds a non-finite float (NaN or +-Inf), and the global gradient
// norm for clipping (end of file). Non-finite check: a deterministic
// two-pass reduction (no atomics), for the gradient check of every training step and the
// --check-numerics debug mode. The reduction sums x - x, which is +0 for every finite x and NaN
// for NaN and +-Inf (Inf - Inf); a sum with a NaN term is NaN. Without fast-math options (we
// never pass them) the compiler may not fold x - x to 0. Plain float arithmetic: every
// implementation and checker (Oclgrind) handles it alike.

// REDUCE_WG and work_group_sum: cl/common.clh (prepended by the loader).

// Pass 1: work-group g sums x[off + i] - x[off + i] for i = g*wg + lid + k*(groups*wg), writing
// partial[g] (0 or NaN).
__kernel void nonfinite_partial(__global const float *x, const uint x_off, const uint n,
                                __global float *partial) {
    __local float scratch[REDUCE_WG];
    const uint stride = get_global_size(0);
    float acc = 0.0f;
    for (uint i = get_global_id(0); i < n; i += stride) {
        const float v = x[x_off + i];
        acc += v - v;
    }
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

// CPU form of pass 1 (the host's choice on devices that run long loops, see
// oclseg_use_row_kernels): item g walks its own chunk [g*chunk_len, (g+1)*chunk_len) of
// consecutive values with NONFINITE_LANES independent lane sums in a vector register and no
// barrier (PoCL runs a work-group's tree as a loop per barrier level, slower than the data pass
// itself), then adds the lanes in a fixed order: partial[g] is 0 or NaN, like the tree form's.
#ifndef NONFINITE_LANES
#define NONFINITE_LANES 16
#endif
#define NF_CAT_(a, b) a##b
#define NF_CAT(a, b) NF_CAT_(a, b)
#define NF_VF NF_CAT(float, NONFINITE_LANES)
__kernel void nonfinite_rows(__global const float *x, const uint x_off, const uint n,
                             const uint chunk_len, const uint chunks, __global float *partial) {
    const uint g = get_global_id(0);
    if (g >= chunks) return;
    const uint start = g * chunk_len, end = min(n, start + chunk_len);
    __global const float *xs = x + x_off;
    NF_VF lanes = (NF_VF)(0.0f);
    uint i = start;
    for (; i + NONFINITE_LANES <= end; i += NONFINITE_LANES) {
        const NF_VF v = NF_CAT(vload, NONFINITE_LANES)(0, xs + i);
        lanes += v - v;
    }
    float lane[NONFINITE_LANES];
    NF_CAT(vstore, NONFINITE_LANES)(lanes, 0, lane);
    float acc = lane_tree_sum(lane, NONFINITE_LANES);
    for (; i < end; i++) {
        const float v = xs[i];
        acc += v - v;
    }
    partial[g] = acc;
}

// Pass 2 (one work-group): out[out_off] = sum of the partials (0: all finite; NaN: not).
__kernel void nonfinite_finish(__global const float *partial, const uint groups,
                               __global float *out, const uint out_off) {
    __local float scratch[REDUCE_WG];
    float acc = 0.0f;
    for (uint g = get_local_id(0); g < groups; g += get_local_size(0)) acc += partial[g];
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) out[out_off] = sum;
}

// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_, norm 2), deterministic:
// pass 1: work-group g sums g_i^2 over i = g*wg + lid + k*(groups*wg) into partial[g].
__kernel void grad_sumsq_partial(__global const float *grad, const uint off, const uint n,
                                 __global float *partial) {
    __local float scratch[REDUCE_WG];
    float acc = 0.0f;
    for (uint i = get_global_id(0); i < n; i += get_global_size(0)) {
        const float g = grad[off + i];
        acc += g * g;
    }
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

// Pass 2 (one work-group): norm = sqrt(sum of partials); out[0] = norm,
// out[1] = min(1, max_norm / (norm + 1e-6)) (PyTorch's clip coefficient).
__kernel void grad_clip_coef(__global const float *partial, const uint groups,
                             const float max_norm, __global float *out) {
    __local float scratch[REDUCE_WG];
    float acc = 0.0f;
    for (uint g = get_local_id(0); g < groups; g += get_local_size(0)) acc += partial[g];
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) {
        const float norm = sqrt(sum);
        out[0] = norm;
        out[1] = fmin(1.0f, max_norm / (norm + 1e-6f));
    }
}

// Pass 3: grad[off + i] *= coef[1].
__kernel void grad_scale(__global float *grad, const uint off, const uint n,
                         __global const float *coef) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    grad[off + i] *= coef[1];
}
