// Conv2d (groups 1) kernels around the CLBlast GEMMs: im2col, col2im (gather), bias add, bias gradient.
// Column layout for a chunk of `count` images: cols (count, K, P), K = Cin*KH*KW ordered
// (ci, ky, kx) like a weight row (Cin, KH, KW), P = Ho*Wo ordered (oy, ox) like an output plane.
// Every kernel takes (buffer, uint element offset) pairs; the host rounds global sizes up, so each
// kernel bounds-checks its ids.

// No kernel here computes both a quotient and a remainder of the same values: LLVM turns such
// pairs into `freeze` instructions, which Oclgrind's uninitialized-value checker cannot run.
// The 3D ranges hand out the coordinates directly instead.

// x (count, Cin, H, W) -> cols (count, K, P); taps outside the padded input read as 0.
// One work-item per (output pixel, image-channel) writes that pixel's KH*KW taps.
// Global: (Wo, Ho, count*Cin).
__kernel void im2col(__global const float *x, const uint x_off, __global float *cols,
                     const uint cols_off, const uint count, const uint cin, const uint h,
                     const uint w, const uint kh, const uint kw, const uint ho, const uint wo,
                     const int stride_h, const int stride_w, const int pad_h, const int pad_w) {
    const uint ox = get_global_id(0), oy = get_global_id(1);
    const uint plane_row = get_global_id(2); // b*Cin + ci
    if (ox >= wo || oy >= ho || plane_row >= count * cin) return;
    const uint plane = ho * wo;
    // (b*K + ci*KH*KW) * P = plane_row * KH*KW * P: the first of this channel's tap rows
    const uint out_base = cols_off + plane_row * kh * kw * plane + oy * wo + ox;
    const uint in_base = x_off + plane_row * h * w;
    const int iy0 = (int)oy * stride_h - pad_h, ix0 = (int)ox * stride_w - pad_w;
    for (uint ky = 0; ky < kh; ky++) {
        const int iy = iy0 + (int)ky;
        const int row_ok = iy >= 0 && iy < (int)h;
        for (uint kx = 0; kx < kw; kx++) {
            const int ix = ix0 + (int)kx;
            float v = 0.0f;
            if (row_ok && ix >= 0 && ix < (int)w) v = x[in_base + (uint)iy * w + (uint)ix];
            cols[out_base + (ky * kw + kx) * plane] = v;
        }
    }
}

// First output index o >= 0 with o*stride <= t - (k - 1), i.e. whose tap k-1 or lower reaches t.
uint first_output(const int t, const uint k, const int stride) {
    const int lowest = t - (int)k + 1; // o*stride >= lowest
    return lowest <= 0 ? 0u : (uint)((lowest + stride - 1) / stride);
}

// cols (count, K, P) -> dx (count, Cin, H, W): each input element sums the column entries that
// im2col copied it to (a gather: deterministic, no atomics), over the outputs oy, ox that see
// it, in ascending order. Global: (W, H, count*Cin).
__kernel void col2im(__global const float *cols, const uint cols_off, __global float *dx,
                     const uint dx_off, const uint count, const uint cin, const uint h,
                     const uint w, const uint kh, const uint kw, const uint ho, const uint wo,
                     const int stride_h, const int stride_w, const int pad_h, const int pad_w) {
    const uint ix = get_global_id(0), iy = get_global_id(1);
    const uint plane_row = get_global_id(2); // b*Cin + ci
    if (ix >= w || iy >= h || plane_row >= count * cin) return;
    const uint plane = ho * wo;
    const int ty = (int)iy + pad_h, tx = (int)ix + pad_w; // position in the padded input
    // output oy sees ty through tap ky = ty - oy*stride_h, valid when 0 <= ky < KH
    const uint oy_begin = first_output(ty, kh, stride_h);
    const uint oy_end = min((uint)(ty / stride_h) + 1u, ho);
    const uint ox_begin = first_output(tx, kw, stride_w);
    const uint ox_end = min((uint)(tx / stride_w) + 1u, wo);
    const uint col_base = cols_off + plane_row * kh * kw * plane;
    float sum = 0.0f;
    for (uint oy = oy_begin; oy < oy_end; oy++) {
        const uint ky = (uint)(ty - (int)oy * stride_h);
        for (uint ox = ox_begin; ox < ox_end; ox++) {
            const uint kx = (uint)(tx - (int)ox * stride_w);
            sum += cols[col_base + (ky * kw + kx) * plane + oy * wo + ox];
        }
    }
    dx[dx_off + plane_row * h * w + iy * w + ix] = sum;
}

// y (N, Cout, P) += bias[c]. Global: (P, Cout, N).
__kernel void bias_add(__global float *y, const uint y_off, __global const float *bias,
                       const uint bias_off, const uint n, const uint cout, const uint plane) {
    const uint p = get_global_id(0), c = get_global_id(1), img = get_global_id(2);
    if (p >= plane || c >= cout || img >= n) return;
    y[y_off + (img * cout + c) * plane + p] += bias[bias_off + c];
}

// dbias[c] = sum over n, p of dy (N, Cout, P). One work-group per channel; its size (a power
// of two chosen by the host from the device's limit, so fixed per device) sets the order: lane l
// sums elements l, l + size, ... of each image plane in image order, then a fixed tree combines
// the lanes, so the result is the same bits on every run. partial: one float per lane.
// Global: (Cout * local size).
__kernel void bias_grad(__global const float *dy, const uint dy_off, __global float *dbias,
                        const uint dbias_off, const uint n, const uint cout, const uint plane,
                        __local float *partial) {
    const uint c = get_group_id(0);
    const uint lane = get_local_id(0), lanes = get_local_size(0);
    /* Each lane sums n * plane / lanes terms of mixed sign (the head's sigmoid - target): a plain
     * running sum loses ~sqrt(terms) ulps of the partial sums, which on a device with few lanes
     * (rusticl) was 50x float32 PyTorch's error for the skip head's bias. Kahan-compensated, the
     * lane's sum is within a couple of ulps whatever the lane count (no reassociation: we never
     * build with fast-math). */
    float sum = 0.0f, carry = 0.0f;
    if (c < cout) {
        for (uint img = 0; img < n; img++) {
            const uint base = dy_off + (img * cout + c) * plane;
            for (uint p = lane; p < plane; p += lanes) {
                const float term = dy[base + p] - carry;
                const float next = sum + term;
                carry = (next - sum) - term;
                sum = next;
            }
        }
    }
    partial[lane] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint half_width = lanes / 2; half_width > 0; half_width >>= 1) {
        if (lane < half_width) partial[lane] += partial[lane + half_width];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lane == 0 && c < cout) dbias[dbias_off + c] = partial[0];
}
