// Elementwise activations and residual add: relu, relu6, add, sigmoid (forward and backward).
// Every kernel takes (buffer, element offset) pairs and the element count; global size is
// rounded up by the host, so each kernel bounds-checks.

__kernel void relu_forward(__global const float *x, const uint x_off, __global float *y,
                           const uint y_off, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    // fmax would turn NaN into 0; keep NaN visible as PyTorch's relu does.
    const float v = x[x_off + i];
    y[y_off + i] = isnan(v) ? v : fmax(v, 0.0f);
}

__kernel void relu_backward(__global const float *y, const uint y_off, __global const float *dy,
                            const uint dy_off, __global float *dx, const uint dx_off,
                            const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    dx[dx_off + i] = y[y_off + i] > 0.0f ? dy[dy_off + i] : 0.0f;
}

__kernel void relu6_forward(__global const float *x, const uint x_off, __global float *y,
                            const uint y_off, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    // fmin/fmax would turn NaN into a number; keep NaN visible as PyTorch does.
    const float v = x[x_off + i];
    y[y_off + i] = isnan(v) ? v : fmin(fmax(v, 0.0f), 6.0f);
}

__kernel void relu6_backward(__global const float *y, const uint y_off, __global const float *dy,
                             const uint dy_off, __global float *dx, const uint dx_off,
                             const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float v = y[y_off + i];
    dx[dx_off + i] = (v > 0.0f && v < 6.0f) ? dy[dy_off + i] : 0.0f;
}

__kernel void add_forward(__global const float *a, const uint a_off, __global const float *b,
                          const uint b_off, __global float *y, const uint y_off, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = a[a_off + i] + b[b_off + i];
}

__kernel void sigmoid_forward(__global const float *x, const uint x_off, __global float *y,
                              const uint y_off, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float v = x[x_off + i];
    // Stable in both tails: exp of a non-positive number never overflows.
    const float e = exp(-fabs(v));
    y[y_off + i] = v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
