// Depthwise 3x3 convolution (groups = C, padding 1, stride 1 or 2, no bias): forward, input
// gradient (gather form, no atomics) and weight gradient (deterministic two-pass reduction).
// Tensors are NCHW float32 passed as (buffer, uint element offset); weights are (C, 1, 3, 3).
// Global sizes are rounded up by the host, so every kernel bounds-checks its ids.

// REDUCE_WG (largest work-group size of depthwise_dw_partial) and WORK_GROUP_TREE:
// cl/common.clh (prepended by the loader).

#define KSIZE 3
#define PAD 1
#define TAPS (KSIZE * KSIZE)

// The argument list of the two direct kernels: (src, w) -> dst, the sizes, the stride.
#define DIRECT_ARGS(src, dst)                                                                   \
    __global const float *src, const uint src##_off, __global const float *w, const uint w_off, \
        __global float *dst, const uint dst##_off, const uint C, const int H, const int W,      \
        const int Ho, const int Wo, const uint NC, const int stride

// Their prologue: the work-item's column, row and image plane (bounds-checked), its channel c,
// the source plane `src`p and the channel's 9 weights wp.
#define DIRECT_PROLOGUE(col, row, cols, rows, src, src_plane)                                   \
    const int col = (int)get_global_id(0), row = (int)get_global_id(1);                         \
    const uint nc = (uint)get_global_id(2);                                                     \
    if (col >= cols || row >= rows || nc >= NC) return;                                         \
    const uint c = nc % C;                                                                      \
    __global const float *src##p = src + src##_off + (size_t)nc * (uint)(src_plane);            \
    __global const float *wp = w + w_off + c * TAPS;

// Runs `...` for every tap (kh, kw) whose input position (ih, iw) = (ih0 + kh, iw0 + kw) lies
// inside the H x W input (padding taps are skipped), in a fixed order.
#define FOR_EACH_TAP(ih0, iw0, ...)                                                              \
    for (int kh = 0; kh < KSIZE; kh++) {                                                        \
        const int ih = (ih0) + kh;                                                              \
        if (ih < 0 || ih >= H) continue;                                                        \
        for (int kw = 0; kw < KSIZE; kw++) {                                                    \
            const int iw = (iw0) + kw;                                                          \
            if (iw < 0 || iw >= W) continue;                                                    \
            __VA_ARGS__                                                                         \
        }                                                                                       \
    }

// y[n, c, oh, ow] = sum_{kh, kw} x[n, c, oh*stride - 1 + kh, ow*stride - 1 + kw] * w[c, kh, kw]
// (taps outside the input are zero padding). Global (Wo, Ho, N*C).
// x (N, C, H, W), w (C, 1, 3, 3), y (N, C, Ho, Wo)
__kernel void depthwise_forward(DIRECT_ARGS(x, y)) {
    DIRECT_PROLOGUE(ow, oh, Wo, Ho, x, H * W)
    const int ih0 = oh * stride - PAD, iw0 = ow * stride - PAD;
    float acc = 0.0f;
    FOR_EACH_TAP(ih0, iw0, acc += xp[ih * W + iw] * wp[kh * KSIZE + kw];)
    y[y_off + ((size_t)nc * (uint)Ho + (uint)oh) * (uint)Wo + (uint)ow] = acc;
}

// Gather form of the input gradient: input pixel (ih, iw) was read by output (oh, ow) through
// tap (kh, kw) iff oh*stride - 1 + kh == ih, so
//   dx[n, c, ih, iw] = sum over such (kh, kw) of dy[n, c, oh, ow] * w[c, kh, kw].
// Each work-item owns one dx element: no atomics, fixed summation order. Global (W, H, N*C).
// dy (N, C, Ho, Wo), w (C, 1, 3, 3), dx (N, C, H, W)
__kernel void depthwise_backward_input(DIRECT_ARGS(dy, dx)) {
    DIRECT_PROLOGUE(iw, ih, W, H, dy, Ho * Wo)
    __global const float *gp = dyp;
    // stride is 1 or 2 (host-checked): t / stride = t >> shift, t % stride = t & odd_mask for
    // t >= 0. (Shifts also avoid the div/rem pair LLVM rewrites with `freeze`, which Oclgrind's
    // uninitialised-value checker cannot run.)
    const int shift = stride >> 1, odd_mask = stride - 1;
    // Output column reached through tap kw, or -1 if none (wrong parity or outside).
    int ow_of[KSIZE];
    for (int kw = 0; kw < KSIZE; kw++) {
        const int t = iw + PAD - kw;
        ow_of[kw] = (t >= 0 && (t & odd_mask) == 0 && (t >> shift) < Wo) ? t >> shift : -1;
    }
    float acc = 0.0f;
    for (int kh = 0; kh < KSIZE; kh++) {
        const int t = ih + PAD - kh;
        if (t < 0 || (t & odd_mask) != 0) continue;
        const int oh = t >> shift;
        if (oh >= Ho) continue;
        for (int kw = 0; kw < KSIZE; kw++) {
            if (ow_of[kw] < 0) continue;
            acc += gp[oh * Wo + ow_of[kw]] * wp[kh * KSIZE + kw];
        }
    }
    dx[dx_off + ((size_t)nc * (uint)H + (uint)ih) * (uint)W + (uint)iw] = acc;
}

// Weight gradient, pass 1: dw[c, tap] = sum over (n, oh, ow) of dy[n,c,oh,ow] * x[n,c,ih,iw].
// The M = N*Ho*Wo positions of a channel are split into `chunks` contiguous ranges of
// `chunk_len`; work-group (chunk, c) has L items (L = local size, a power of two <= REDUCE_WG:
// the host lowers it where the device allows less), item i takes positions start + i,
// start + i + L, ... (coalesced), keeps 9 private sums, and the group adds them with a
// fixed-order local-memory tree. Result: part[part_off + (c*chunks + chunk)*9 + tap].
// With chunks == 1 that is exactly the (C, 1, 3, 3) layout, so the host points `part` at dw.
// Global (L * chunks, C), local (L, 1).
__kernel void depthwise_dw_partial(__global const float *x, const uint x_off,   // (N, C, H, W)
                     __global const float *dy, const uint dy_off, // (N, C, Ho, Wo)
                     __global float *part, const uint part_off,   // (C, chunks, 9)
                     const uint N, const uint C, const int H, const int W, const int Ho,
                     const int Wo, const int stride, const uint chunks, const uint chunk_len) {
    __local float sums[TAPS * REDUCE_WG]; // (9, REDUCE_WG)
    const uint lid = (uint)get_local_id(0), L = (uint)get_local_size(0);
    const uint chunk = (uint)get_group_id(0), c = (uint)get_group_id(1);
    const uint hw_out = (uint)(Ho * Wo), M = N * hw_out;
    const uint start = chunk * chunk_len;
    const uint end = min(M, start + chunk_len);
    float acc[TAPS];
    for (int t = 0; t < TAPS; t++) acc[t] = 0.0f;
    if (c < C) {
        for (uint m = start + lid; m < end; m += L) {
            const uint n = m / hw_out, r = m - n * hw_out;
            const int oh = (int)(r / (uint)Wo), ow = (int)(r - (uint)oh * (uint)Wo);
            const size_t nc = (size_t)n * C + c;
            const float g = dy[dy_off + nc * hw_out + r];
            __global const float *xp = x + x_off + nc * (uint)(H * W);
            const int ih0 = oh * stride - PAD, iw0 = ow * stride - PAD;
            FOR_EACH_TAP(ih0, iw0, acc[kh * KSIZE + kw] += g * xp[ih * W + iw];)
        }
    }
    for (int t = 0; t < TAPS; t++) sums[t * REDUCE_WG + lid] = acc[t];
    WORK_GROUP_TREE(lid, span,
        for (int t = 0; t < TAPS; t++)
            sums[t * REDUCE_WG + lid] += sums[t * REDUCE_WG + lid + span];)
    if (c < C && lid < TAPS) part[part_off + ((size_t)c * chunks + chunk) * TAPS + lid] =
        sums[lid * REDUCE_WG];
}

// Weight gradient, pass 2: dw[c, tap] = sum over chunk (in order) of part[(c*chunks + chunk)*9
// + tap]. One work-item per (c, tap); global (C*9).
__kernel void depthwise_dw_finish(__global const float *part, const uint part_off, // (C,chunks,9)
                                  __global float *dw, const uint dw_off,           // (C, 1, 3, 3)
                                  const uint C, const uint chunks) {
    const uint i = (uint)get_global_id(0); // c * 9 + tap
    if (i >= C * TAPS) return;
    const uint c = i / TAPS, tap = i - c * TAPS;
    __global const float *p = part + part_off + (size_t)c * chunks * TAPS + tap;
    float acc = 0.0f;
    for (uint k = 0; k < chunks; k++) acc += p[(size_t)k * TAPS];
    dw[dw_off + i] = acc;
}
