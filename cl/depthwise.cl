// Depthwise 3x3 convolution (groups = C, padding 1, stride 1 or 2, no bias): forward, input
// gradient (gather form, no atomics) and weight gradient (deterministic two-pass reduction).
// Tensors are NCHW float32 passed as (buffer, uint element offset); weights are (C, 1, 3, 3).
// Global sizes are rounded up by the host, so every kernel bounds-checks its ids.

// REDUCE_WG (largest work-group size of depthwise_dw_partial) and WORK_GROUP_TREE:
// cl/common.clh (prepended by the loader).

#define KSIZE 3
#define PAD 1
#define TAPS (KSIZE * KSIZE)

// The argument list shared by the forward and input-gradient kernels (host: run_direct):
// src (N, C, H, W) or dy (N, C, Ho, Wo), w (C, 1, 3, 3), dst likewise, then the geometry.
#define DIRECT_ARGS(src, dst)                                                                     \
    __global const float *src, const uint src##_off, __global const float *w, const uint w_off,  \
        __global float *dst, const uint dst##_off, const uint C, const int H, const int W,       \
        const int Ho, const int Wo, const uint NC, const int stride

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
// (taps outside the input are zero padding), for one output element of plane xp.
inline float forward_at(__global const float *xp, __global const float *wp, const int H,
                        const int W, const int oh, const int ow, const int stride) {
    const int ih0 = oh * stride - PAD, iw0 = ow * stride - PAD;
    float acc = 0.0f;
    FOR_EACH_TAP(ih0, iw0, acc += xp[ih * W + iw] * wp[kh * KSIZE + kw];)
    return acc;
}

// One work-item per output element. Global (Wo, Ho, N*C).
__kernel void depthwise_forward(DIRECT_ARGS(x, y)) {
    const int ow = (int)get_global_id(0), oh = (int)get_global_id(1);
    const uint nc = (uint)get_global_id(2);
    if (ow >= Wo || oh >= Ho || nc >= NC) return;
    const uint c = nc % C;
    __global const float *xp = x + x_off + (size_t)nc * (uint)(H * W);
    y[y_off + ((size_t)nc * (uint)Ho + (uint)oh) * (uint)Wo + (uint)ow] =
        forward_at(xp, w + w_off + c * TAPS, H, W, oh, ow, stride);
}

// Gather form of the input gradient: input pixel (ih, iw) was read by output (oh, ow) through
// tap (kh, kw) iff oh*stride - 1 + kh == ih, so
//   dx[n, c, ih, iw] = sum over such (kh, kw) of dy[n, c, oh, ow] * w[c, kh, kw]
// for one element of plane gp (dy): no atomics, fixed summation order (kh, then kw).
inline float backward_input_at(__global const float *gp, __global const float *wp, const int Ho,
                               const int Wo, const int ih, const int iw, const int stride) {
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
    return acc;
}

// One work-item per dx element. Global (W, H, N*C).
__kernel void depthwise_backward_input(DIRECT_ARGS(dy, dx)) {
    const int iw = (int)get_global_id(0), ih = (int)get_global_id(1);
    const uint nc = (uint)get_global_id(2);
    if (iw >= W || ih >= H || nc >= NC) return;
    const uint c = nc % C;
    __global const float *gp = dy + dy_off + (size_t)nc * (uint)(Ho * Wo);
    dx[dx_off + ((size_t)nc * (uint)H + (uint)ih) * (uint)W + (uint)iw] =
        backward_input_at(gp, w + w_off + c * TAPS, Ho, Wo, ih, iw, stride);
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

// ---- CPU forms: one work-item per row (PoCL and llvmpipe run a work-group's items in a loop on
// one core, so a row with its bounds checks hoisted out of the interior beats an item per
// element). Same sums in the same order as the kernels above; the edge columns call them.

// Forward, one output row (oh, plane nc) per work-item. Global (Ho, N*C).
__kernel void depthwise_forward_rows(DIRECT_ARGS(x, y)) {
    const int oh = (int)get_global_id(0);
    const uint nc = (uint)get_global_id(1);
    if (oh >= Ho || nc >= NC) return;
    __global const float *xp = x + x_off + (size_t)nc * (uint)(H * W);
    __global const float *wp = w + w_off + (nc % C) * TAPS;
    __global float *yp = y + y_off + ((size_t)nc * (uint)Ho + (uint)oh) * (uint)Wo;
    const int ih0 = oh * stride - PAD;
    // interior columns: ow >= 1 and ow * stride + 1 <= W - 1 (all three taps inside)
    const int ow_end = min(Wo, (W - 2) / stride + 1);
    if (ih0 < 0 || ih0 + 2 >= H || ow_end <= 1) { // a row touching the padding: checked path
        for (int ow = 0; ow < Wo; ow++) yp[ow] = forward_at(xp, wp, H, W, oh, ow, stride);
        return;
    }
    float wk[TAPS];
    for (int t = 0; t < TAPS; t++) wk[t] = wp[t];
    __global const float *r0 = xp + ih0 * W - PAD, *r1 = r0 + W, *r2 = r1 + W;
    yp[0] = forward_at(xp, wp, H, W, oh, 0, stride);
    for (int ow = 1; ow < ow_end; ow++) {
        const int iw = ow * stride;
        float acc = 0.0f;
        acc += r0[iw] * wk[0];
        acc += r0[iw + 1] * wk[1];
        acc += r0[iw + 2] * wk[2];
        acc += r1[iw] * wk[3];
        acc += r1[iw + 1] * wk[4];
        acc += r1[iw + 2] * wk[5];
        acc += r2[iw] * wk[6];
        acc += r2[iw + 1] * wk[7];
        acc += r2[iw + 2] * wk[8];
        yp[ow] = acc;
    }
    for (int ow = ow_end; ow < Wo; ow++) yp[ow] = forward_at(xp, wp, H, W, oh, ow, stride);
}

// Stride 2, one dx row ih: input row ih is read through tap kh by output row oh iff
// 2 oh + kh - 1 == ih, so an even row gets kh = 1 (oh = ih / 2) and an odd row kh = 0
// (oh = (ih + 1) / 2) then kh = 2 (oh = (ih - 1) / 2); likewise an even column kw = 1
// (ow = iw / 2), an odd one kw = 0 (ow = (iw + 1) / 2) then kw = 2 (ow = (iw - 1) / 2). Sums in
// backward_input_at's order (kh, then kw ascending). Rows or columns that reach past the output
// take the checked path.
inline void backward_input_row_s2(__global const float *gp, __global const float *wp,
                                  __global float *dp, const int H, const int W, const int Ho,
                                  const int Wo, const int ih) {
    const int odd_row = ih & 1;
    if ((odd_row && (ih + 1) / 2 >= Ho) || (!odd_row && ih / 2 >= Ho)) {
        for (int iw = 0; iw < W; iw++) dp[iw] = backward_input_at(gp, wp, Ho, Wo, ih, iw, 2);
        return;
    }
    // the (one or two) taps of this row: dy rows and weight rows, in kh order
    const int taps = odd_row ? 2 : 1;
    __global const float *g_a = gp + (odd_row ? (ih + 1) / 2 : ih / 2) * Wo;
    __global const float *g_b = gp + (odd_row ? (ih - 1) / 2 : 0) * Wo;
    const int kh_a = odd_row ? 0 : 1;
    const float wa0 = wp[kh_a * KSIZE], wa1 = wp[kh_a * KSIZE + 1], wa2 = wp[kh_a * KSIZE + 2];
    const float wb0 = wp[2 * KSIZE], wb1 = wp[2 * KSIZE + 1], wb2 = wp[2 * KSIZE + 2];
    // columns iw < 2 Wo - 1 have every output column they need (odd iw: ow = (iw + 1) / 2 < Wo)
    const int iw_end = min(W, 2 * Wo - 1);
    for (int iw = 0; iw < iw_end; iw++) {
        const int j = iw >> 1;
        float acc = 0.0f;
        if ((iw & 1) == 0) {
            acc += g_a[j] * wa1;
            if (taps == 2) acc += g_b[j] * wb1;
        } else {
            acc += g_a[j + 1] * wa0;
            acc += g_a[j] * wa2;
            if (taps == 2) {
                acc += g_b[j + 1] * wb0;
                acc += g_b[j] * wb2;
            }
        }
        dp[iw] = acc;
    }
    for (int iw = iw_end; iw < W; iw++) dp[iw] = backward_input_at(gp, wp, Ho, Wo, ih, iw, 2);
}

// Input gradient, one dx row (ih, plane nc) per work-item. Global (H, N*C). Stride 1 interior:
// dx[ih][iw] = sum_{kh, kw} dy[ih + 1 - kh][iw + 1 - kw] * w[kh][kw] for 1 <= iw <= Wo - 2;
// stride 2: backward_input_row_s2; the edges take the checked per-element path.
__kernel void depthwise_backward_input_rows(DIRECT_ARGS(dy, dx)) {
    const int ih = (int)get_global_id(0);
    const uint nc = (uint)get_global_id(1);
    if (ih >= H || nc >= NC) return;
    __global const float *gp = dy + dy_off + (size_t)nc * (uint)(Ho * Wo);
    __global const float *wp = w + w_off + (nc % C) * TAPS;
    __global float *dp = dx + dx_off + ((size_t)nc * (uint)H + (uint)ih) * (uint)W;
    if (stride == 2) {
        backward_input_row_s2(gp, wp, dp, H, W, Ho, Wo, ih);
        return;
    }
    // interior rows for stride 1: output rows ih + 1 - kh all inside for kh = 0..2
    if (ih < 1 || ih + 1 >= Ho || Wo < 3) {
        for (int iw = 0; iw < W; iw++) dp[iw] = backward_input_at(gp, wp, Ho, Wo, ih, iw, stride);
        return;
    }
    float wk[TAPS];
    for (int t = 0; t < TAPS; t++) wk[t] = wp[t];
    // g_kh points at dy row ih + 1 - kh, shifted so that g_kh[iw + 1 - kw] is the tap's element
    __global const float *g0 = gp + (ih + 1) * Wo, *g1 = g0 - Wo, *g2 = g1 - Wo;
    dp[0] = backward_input_at(gp, wp, Ho, Wo, ih, 0, stride);
    for (int iw = 1; iw + 1 < Wo; iw++) {
        float acc = 0.0f;
        acc += g0[iw + 1] * wk[0];
        acc += g0[iw] * wk[1];
        acc += g0[iw - 1] * wk[2];
        acc += g1[iw + 1] * wk[3];
        acc += g1[iw] * wk[4];
        acc += g1[iw - 1] * wk[5];
        acc += g2[iw + 1] * wk[6];
        acc += g2[iw] * wk[7];
        acc += g2[iw - 1] * wk[8];
        dp[iw] = acc;
    }
    for (int iw = max(1, Wo - 1); iw < W; iw++)
        dp[iw] = backward_input_at(gp, wp, Ho, Wo, ih, iw, stride);
}

// Weight gradient, CPU form: one work-item per channel c sums dy * shifted x over the images in
// order, rows in order, straight into dw[c, tap] (a CPU has far fewer cores than channels; no
// partials, no second pass). Global (C).
// Within a row that touches no padding, runs of DW_LANES interior columns go through vectors:
// each tap keeps DW_LANES lane sums (9 vector registers), loading DW_LANES dy values and, per
// tap, the DW_LANES x values under them (stride 2: every second of 2 * DW_LANES). The other
// columns add into the scalar sums as before; at the end each tap's lanes are added in a fixed
// tree order (cl/common.clh lane_tree_sum) to its scalar sum: deterministic, and shorter add
// chains than one running sum.
#ifndef DW_LANES
#define DW_LANES 8 // 8 or 16 (8 measured faster on PoCL with AVX-512: docs/performance.md)
#endif
#define DW_CAT_(a, b) a##b
#define DW_CAT(a, b) DW_CAT_(a, b)
#define DW_VF DW_CAT(float, DW_LANES)
#define DW_VLOAD DW_CAT(vload, DW_LANES)
#if DW_LANES == 16
#define DW_VLOAD_S2(p) ((float16)(vload16(0, (p)).even, vload16(0, (p) + 16).even))
#else
#define DW_VLOAD_S2(p) (vload16(0, (p)).even)
#endif
__kernel void depthwise_dw_rows(__global const float *x, const uint x_off,   // (N, C, H, W)
                                __global const float *dy, const uint dy_off, // (N, C, Ho, Wo)
                                __global float *dw, const uint dw_off,       // (C, 1, 3, 3)
                                const uint N, const uint C, const int H, const int W,
                                const int Ho, const int Wo, const int stride) {
    const uint c = (uint)get_global_id(0);
    if (c >= C) return;
    float acc[TAPS];
    DW_VF lanes[TAPS];
    for (int t = 0; t < TAPS; t++) {
        acc[t] = 0.0f;
        lanes[t] = (DW_VF)(0.0f);
    }
    const int ow_end = min(Wo, (W - 2) / stride + 1);
    for (uint n = 0; n < N; n++) {
        const size_t nc = (size_t)n * C + c;
        __global const float *xp = x + x_off + nc * (uint)(H * W);
        __global const float *gp = dy + dy_off + nc * (uint)(Ho * Wo);
        for (int oh = 0; oh < Ho; oh++) {
            const int ih0 = oh * stride - PAD;
            __global const float *g = gp + oh * Wo;
            const int row_inside = ih0 >= 0 && ih0 + 2 < H;
            // vector runs [1, vec_end): DW_LANES outputs, all interior, every load inside the
            // row (stride 2 loads 2 * DW_LANES values from column 2 * ow - 1 + kw)
            int vec_end = 1;
            if (row_inside) {
                while (vec_end + DW_LANES <= ow_end &&
                       (stride == 1 || 2 * vec_end + 2 * DW_LANES <= W - 1)) {
                    const DW_VF gv = DW_VLOAD(0, g + vec_end);
                    __global const float *r = xp + ih0 * W + vec_end * stride - PAD;
                    for (int kh = 0; kh < KSIZE; kh++)
                        for (int kw = 0; kw < KSIZE; kw++) {
                            __global const float *q = r + kh * W + kw;
                            lanes[kh * KSIZE + kw] += gv * (stride == 1 ? DW_VLOAD(0, q)
                                                                        : DW_VLOAD_S2(q));
                        }
                    vec_end += DW_LANES;
                }
            }
            // the remaining columns: 0, then [vec_end, Wo)
            for (int ow = 0; ow < Wo; ow = ow == 0 ? vec_end : ow + 1) {
                const int iw0 = ow * stride - PAD;
                if (row_inside && ow >= 1 && ow < ow_end) { // interior: no checks
                    __global const float *r = xp + ih0 * W + iw0;
                    const float gv = g[ow];
                    for (int kh = 0; kh < KSIZE; kh++)
                        for (int kw = 0; kw < KSIZE; kw++)
                            acc[kh * KSIZE + kw] += gv * r[kh * W + kw];
                    continue;
                }
                FOR_EACH_TAP(ih0, iw0, acc[kh * KSIZE + kw] += g[ow] * xp[ih * W + iw];)
            }
        }
    }
    for (int t = 0; t < TAPS; t++) {
        float lane[DW_LANES];
        DW_CAT(vstore, DW_LANES)(lanes[t], 0, lane);
        dw[dw_off + c * TAPS + t] = acc[t] + lane_tree_sum(lane, DW_LANES);
    }
}
