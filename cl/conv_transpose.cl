// ConvTranspose2d helper kernels: col2im gather (+ bias) for the forward, im2col of dy for the
// backward, and a two-pass deterministic per-channel sum of dy for the bias gradient.
// Layouts: x (N, Cin, H, W), w (Cin, Cout, KH, KW), y/dy (N, Cout, Ho, Wo) with
// Ho = (H - 1) * stride - 2 * pad + KH; a column buffer holds `nb` images as
// cols (nb, Cout*KH*KW, H*W), row index (co * KH + ky) * KW + kx, column index iy * W + ix.
// Element (iy, ix) of cols row (co, ky, kx) lands on output (iy*stride - pad + ky, ix*stride - pad + kx).
// Every kernel takes (buffer, uint element offset) pairs and bounds-checks its global id.

// Work-items are 3-D so that no kernel needs both x / y and x % y of the same operands: LLVM
// rewrites such a pair with a `freeze` instruction, which Oclgrind's uninitialised-value
// checker cannot run.

// y[n, co, oy, ox] = bias[co] + sum of the cols entries that land on (oy, ox), gathered in a
// fixed order (iy ascending, then ix ascending), so the result is deterministic (no atomics).
// flags bit 0: add the bias; bit 1: apply ReLU (bias + ReLU fused; NaN stays NaN as in
// PyTorch). Work-items (Wo, Ho, nb * Cout) over the nb images of the chunk (the
// host passes y_off and cols_off already advanced to the chunk's first image).
__kernel void convt_col2im(__global const float *cols, const uint cols_off,
                           __global const float *bias, const uint bias_off, const uint flags,
                           __global float *y, const uint y_off, const uint nb, const uint cout,
                           const uint h, const uint w, const uint ho, const uint wo,
                           const uint kh, const uint kw, const uint stride, const uint pad) {
    const uint ox = get_global_id(0), oy = get_global_id(1), nc = get_global_id(2);
    if (ox >= wo || oy >= ho || nc >= nb * cout) return;
    const uint hw = h * w;
    // cols of image n, channel co (nc = n * cout + co): (KH*KW, H*W)
    const uint base = cols_off + nc * kh * kw * hw;
    // oy = iy * stride - pad + ky with 0 <= ky < KH  <=>  iy in [iy_begin, iy_last]:
    // iy <= (oy + pad) / stride and iy * stride > oy + pad - KH.
    const uint oyp = oy + pad, oxp = ox + pad;
    const uint iy_begin = oyp + 1 >= kh ? (oyp + 1 - kh + stride - 1) / stride : 0;
    const uint ix_begin = oxp + 1 >= kw ? (oxp + 1 - kw + stride - 1) / stride : 0;
    const uint iy_end = min(oyp / stride + 1, h), ix_end = min(oxp / stride + 1, w);
    float acc = 0.0f;
    for (uint iy = iy_begin; iy < iy_end; iy++) {
        const uint ky = oyp - iy * stride;
        for (uint ix = ix_begin; ix < ix_end; ix++) {
            const uint kx = oxp - ix * stride;
            acc += cols[base + (ky * kw + kx) * hw + iy * w + ix];
        }
    }
    if (flags & 1u) acc += bias[bias_off + nc % cout];
    if ((flags & 2u) && !isnan(acc)) acc = fmax(acc, 0.0f);
    y[y_off + (nc * ho + oy) * wo + ox] = acc;
}

// cols[n * img_stride + (co, ky, kx) * row_stride + iy * W + ix] =
// dy[n, co, iy*stride - pad + ky, ix*stride - pad + kx], 0 outside dy: conv2d's im2col of dy
// (stride, pad) producing an H x W output grid. img_stride = rows*H*W, row_stride = H*W is one
// (rows, HW) matrix per image; img_stride = H*W, row_stride = nb*H*W is one (rows, nb*HW)
// matrix for the chunk (the weight gradient's single GEMM). Work-items (W, H, Cout), each
// writing its KH*KW column entries for every image of the chunk (adjacent work-items write
// adjacent addresses). dy_off and cols_off point at the chunk's first image.
__kernel void convt_im2col(__global const float *dy, const uint dy_off, __global float *cols,
                           const uint cols_off, const uint nb, const uint cout, const uint h,
                           const uint w, const uint ho, const uint wo, const uint kh,
                           const uint kw, const uint stride, const uint pad,
                           const uint img_stride, const uint row_stride) {
    const uint ix = get_global_id(0), iy = get_global_id(1), co = get_global_id(2);
    if (ix >= w || iy >= h || co >= cout) return;
    for (uint n = 0; n < nb; n++) {
        __global const float *plane = dy + dy_off + (n * cout + co) * ho * wo; // dy[n, co]
        __global float *out = cols + cols_off + n * img_stride + co * kh * kw * row_stride +
                              iy * w + ix;
        for (uint ky = 0; ky < kh; ky++) {
            // Signed: iy * stride + ky may be smaller than pad.
            const int oy = (int)(iy * stride + ky) - (int)pad;
            const int row_ok = oy >= 0 && oy < (int)ho;
            for (uint kx = 0; kx < kw; kx++) {
                const int ox = (int)(ix * stride + kx) - (int)pad;
                const int ok = row_ok && ox >= 0 && ox < (int)wo;
                out[(ky * kw + kx) * row_stride] = ok ? plane[(uint)oy * wo + (uint)ox] : 0.0f;
            }
        }
    }
}

// packed[(c * nb + n) * HW + p] = x[x_off + (n * C + c) * HW + p]: the chunk's images side by
// side per channel, a (C, nb*HW) matrix, for the weight gradient's single GEMM.
// Work-items (HW, C, nb).
__kernel void convt_pack_images(__global const float *x, const uint x_off, __global float *packed,
                                const uint packed_off, const uint nb, const uint channels,
                                const uint hw) {
    const uint p = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (p >= hw || c >= channels || n >= nb) return;
    packed[packed_off + (c * nb + n) * hw + p] = x[x_off + (n * channels + c) * hw + p];
}

// Bias gradient, pass 1: partial[co * parts + p] = sum over images n ascending, then pixels
// p, p + parts, p + 2*parts, ... < Ho*Wo, of dy[n, co, pixel]. Each work-item sums its own
// sequence in a fixed order, independent of the work-group size; adjacent work-items read
// adjacent addresses. parts <= Ho*Wo. Work-items (parts, Cout).
// sum += v with the rounding error of each addition kept in comp (Neumaier's variant of Kahan).
inline void neumaier_add(float *sum, float *comp, const float v) {
    const float t = *sum + v;
    *comp += fabs(*sum) >= fabs(v) ? (*sum - t) + v : (v - t) + *sum;
    *sum = t;
}

__kernel void convt_bias_partial(__global const float *dy, const uint dy_off,
                                 __global float *partial, const uint partial_off,
                                 const uint batch, const uint cout, const uint plane,
                                 const uint parts) {
    const uint p = get_global_id(0);
    const uint co = get_global_id(1);
    if (p >= parts || co >= cout) return;
    // Neumaier-compensated sum: thousands of terms per channel, and PyTorch's CPU reduction is
    // far more accurate than a plain float32 running sum.
    float acc = 0.0f, comp = 0.0f;
    for (uint n = 0; n < batch; n++) {
        __global const float *g = dy + dy_off + (n * cout + co) * plane;
        for (uint pixel = p; pixel < plane; pixel += parts) neumaier_add(&acc, &comp, g[pixel]);
    }
    partial[partial_off + co * parts + p] = acc + comp;
}

// Bias gradient, pass 2: dbias[co] = sum of the `parts` partials of channel co, in order.
__kernel void convt_bias_final(__global const float *partial, const uint partial_off,
                               const uint parts, __global float *dbias, const uint dbias_off,
                               const uint cout) {
    const uint co = get_global_id(0);
    if (co >= cout) return;
    float acc = 0.0f, comp = 0.0f;
    for (uint p = 0; p < parts; p++) neumaier_add(&acc, &comp, partial[partial_off + co * parts + p]);
    dbias[dbias_off + co] = acc + comp;
}
