// Loss and metrics: mean binary cross-entropy with logits (+ its gradient) as a deterministic
// two-pass reduction, and per-image confusion counts for IoU/Dice.

#ifndef REDUCE_WG
#define REDUCE_WG 64 // largest work-group size of the reductions (a power of two)
#endif

// The reduction kernels run with a power-of-two work-group size <= REDUCE_WG chosen by the host
// (REDUCE_WG lowered to what the kernel allows on the device), so their local arrays hold
// REDUCE_WG items and their loops use get_local_size(0).

// Sums v over the work-group in a fixed order (tree over local memory). All items get the sum.
static float work_group_sum(__local float *scratch, float v) {
    const uint lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint active = get_local_size(0) / 2; active > 0; active >>= 1) {
        if (lid < active) scratch[lid] += scratch[lid + active];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float sum = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); // scratch may be reused right after
    return sum;
}

// Numerically stable sigmoid: exp of a non-positive number never overflows.
static float stable_sigmoid(float x) {
    const float e = exp(-fabs(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// Pass 1: work-group g sums l_i = max(x,0) - x*y + log1p(exp(-|x|)) over the elements
// i = g*wg + lid + k*(groups*wg), k = 0, 1, ... (fixed order), writing partial[g].
// With with_grad (a constant in each kernel below), also writes
// grad_i = (sigmoid(x_i) - y_i) / numel, as PyTorch divides (sigmoid - y) * 1 by numel.
static void bce_partial_body(__global const float *x, const uint x_off, __global const float *y,
                             const uint y_off, __global float *grad, const uint grad_off,
                             const int with_grad, const uint n, const float numel,
                             __global float *partial, __local float *scratch) {
    const uint stride = get_global_size(0);
    float acc = 0.0f;
    for (uint i = get_global_id(0); i < n; i += stride) {
        const float xi = x[x_off + i], yi = y[y_off + i];
        acc += fmax(xi, 0.0f) - xi * yi + log1p(exp(-fabs(xi)));
        if (with_grad) grad[grad_off + i] = (stable_sigmoid(xi) - yi) / numel;
    }
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = sum;
}

// Loss only (grad and grad_off are not used and may be NULL / 0).
__kernel void bce_partial(__global const float *x, const uint x_off, __global const float *y,
                          const uint y_off, __global float *grad, const uint grad_off,
                          const uint n, const float numel, __global float *partial) {
    __local float scratch[REDUCE_WG];
    bce_partial_body(x, x_off, y, y_off, grad, grad_off, 0, n, numel, partial, scratch);
}

__kernel void bce_partial_grad(__global const float *x, const uint x_off,
                               __global const float *y, const uint y_off, __global float *grad,
                               const uint grad_off, const uint n, const float numel,
                               __global float *partial) {
    __local float scratch[REDUCE_WG];
    bce_partial_body(x, x_off, y, y_off, grad, grad_off, 1, n, numel, partial, scratch);
}

// Pass 2 (one work-group): sums the partials in a fixed order and writes the mean to loss[off].
__kernel void bce_finish(__global const float *partial, const uint groups, const float numel,
                         __global float *loss, const uint loss_off) {
    __local float scratch[REDUCE_WG];
    float acc = 0.0f;
    for (uint g = get_local_id(0); g < groups; g += get_local_size(0)) acc += partial[g];
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) loss[loss_off] = sum / numel;
}

// One work-group per image: counts (TP, TP+FP, TP+FN, TN) over the image's `per_image`
// elements, pred = x > logit_threshold, truth = y > 0.5. Integer sums: exact in any order.
__kernel void seg_counts(__global const float *x, const uint x_off, __global const float *y,
                         const uint y_off, const uint per_image, const float logit_threshold,
                         __global uint *counts, const uint counts_off) {
    __local uint4 scratch[REDUCE_WG];
    const uint lid = get_local_id(0), image = get_group_id(0);
    const uint base = image * per_image;
    uint4 acc = (uint4)(0u);
    for (uint i = lid; i < per_image; i += get_local_size(0)) {
        const uint pred = x[x_off + base + i] > logit_threshold;
        const uint truth = y[y_off + base + i] > 0.5f;
        acc += (uint4)(pred & truth, pred, truth, (pred | truth) ^ 1u);
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint active = get_local_size(0) / 2; active > 0; active >>= 1) {
        if (lid < active) scratch[lid] += scratch[lid + active];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid < 4u) {
        const uint4 total = scratch[0];
        const uint value = lid == 0u ? total.x : lid == 1u ? total.y : lid == 2u ? total.z : total.w;
        counts[counts_off + 4u * image + lid] = value;
    }
}
