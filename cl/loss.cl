// Loss and metrics: mean binary cross-entropy with logits (+ its gradient) as a deterministic
// two-pass reduction, and per-image confusion counts for IoU/Dice.

// REDUCE_WG, WORK_GROUP_TREE and work_group_sum: cl/common.clh (prepended by the loader).

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
    WORK_GROUP_TREE(lid, active, scratch[lid] += scratch[lid + active];)
    if (lid < 4u) {
        const uint4 total = scratch[0];
        const uint value = lid == 0u ? total.x : lid == 1u ? total.y : lid == 2u ? total.z : total.w;
        counts[counts_off + 4u * image + lid] = value;
    }
}

// Soft Dice on sigmoid probabilities, per image i (smooth = DICE_SMOOTH):
//   D_i = (2 sum_j p_j y_j + smooth) / (sum_j p_j + sum_j y_j + smooth),  loss = 1 - mean_i D_i.
#ifndef DICE_SMOOTH
#define DICE_SMOOTH 1.0f
#endif

// Pass 1, one work-group per image: sums[2i] = sum p*y, sums[2i+1] = sum p + sum y (fixed-order
// strided loop per item, then a tree over local memory: deterministic).
__kernel void dice_sums(__global const float *x, const uint x_off, __global const float *y,
                        const uint y_off, const uint per_image, __global float *sums) {
    __local float scratch[REDUCE_WG];
    const uint lid = get_local_id(0), image = get_group_id(0);
    const uint base = image * per_image;
    float inter = 0.0f, total = 0.0f;
    for (uint i = lid; i < per_image; i += get_local_size(0)) {
        const float p = stable_sigmoid(x[x_off + base + i]), t = y[y_off + base + i];
        inter += p * t;
        total += p + t;
    }
    inter = work_group_sum(scratch, inter);
    total = work_group_sum(scratch, total);
    if (lid == 0) {
        sums[2 * image] = inter;
        sums[2 * image + 1] = total;
    }
}

// Pass 2 (one work-group): loss[off] = (accumulate ? loss[off] : 0) + 1 - mean_i D_i.
__kernel void dice_finish(__global const float *sums, const uint images, const int accumulate,
                          __global float *loss, const uint loss_off) {
    __local float scratch[REDUCE_WG];
    float acc = 0.0f;
    for (uint i = get_local_id(0); i < images; i += get_local_size(0))
        acc += (2.0f * sums[2 * i] + DICE_SMOOTH) / (sums[2 * i + 1] + DICE_SMOOTH);
    const float sum = work_group_sum(scratch, acc);
    if (get_local_id(0) == 0) {
        const float dice_loss = 1.0f - sum / (float)images;
        loss[loss_off] = accumulate ? loss[loss_off] + dice_loss : dice_loss;
    }
}

// Gradient, one item per element j of image i, with I = sums[2i], S = sums[2i+1] + smooth:
//   dloss/dx_j = -(1/N) * (2 y_j S - (2 I + smooth)) / S^2 * p_j (1 - p_j),
// written (accumulate = 0) or added (accumulate = 1) to grad.
__kernel void dice_grad(__global const float *x, const uint x_off, __global const float *y,
                        const uint y_off, const uint per_image, const uint n,
                        __global const float *sums, const float inv_images, const int accumulate,
                        __global float *grad, const uint grad_off) {
    const uint j = get_global_id(0);
    if (j >= n) return;
    const uint image = j / per_image;
    const float inter = sums[2 * image], s = sums[2 * image + 1] + DICE_SMOOTH;
    const float xj = x[x_off + j], t = y[y_off + j];
    // p (1 - p) = e / (1 + e)^2 with e = exp(-|x|): no cancellation in 1 - p for large |x|
    const float e = exp(-fabs(xj)), dp = e / ((1.0f + e) * (1.0f + e));
    const float dd = (2.0f * t * s - (2.0f * inter + DICE_SMOOTH)) / (s * s);
    const float g = -inv_images * dd * dp;
    grad[grad_off + j] = accumulate ? grad[grad_off + j] + g : g;
}
