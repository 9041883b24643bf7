// Bilinear resize, align_corners=False, to any output size (PyTorch's F.interpolate with
// size=(Ho, Wo)): forward, and a deterministic gather-form backward (no atomics).
// Source coordinate per axis (PyTorch's area_pixel_compute_source_index, float arithmetic):
//   scale = in / out, src = max(scale * (dst + 0.5) - 0.5, 0), i0 = (int)src,
//   i1 = i0 + (i0 < in - 1), lambda1 = src - i0, lambda0 = 1 - lambda1.
// x (N, C, H, W), y (N, C, Ho, Wo); work-items (width, height, N*C) over the output (forward)
// or the input (backward), bounds-checked. (3-D ids also avoid a div/rem pair, which LLVM
// rewrites with a `freeze` instruction that Oclgrind's uninitialised-value checker cannot run.)

// PyTorch evaluates scale * (dst + 0.5) - 0.5 as a rounded multiply then a rounded subtract;
// a fused multiply-add could move i0 across an integer and change which pixels are read.
#pragma OPENCL FP_CONTRACT OFF

// Source position of output index dst along one axis: lower index, upper index, upper weight.
inline void source_index(const float scale, const uint dst, const uint in, uint *i0, uint *i1,
                         float *lambda1) {
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    src = src < 0.0f ? 0.0f : src;
    const uint lo = (uint)src; // src >= 0: truncation is floor
    *i0 = lo;
    *i1 = lo + (lo < in - 1 ? 1u : 0u);
    *lambda1 = src - (float)lo;
}

__kernel void upsample_bilinear_forward(__global const float *x, const uint x_off,
                                        __global float *y, const uint y_off, const uint planes,
                                        const uint h, const uint w, const uint ho, const uint wo,
                                        const float scale_h, const float scale_w) {
    const uint ox = get_global_id(0), oy = get_global_id(1), plane = get_global_id(2);
    if (ox >= wo || oy >= ho || plane >= planes) return;
    uint y0, y1, x0, x1;
    float ly1, lx1;
    source_index(scale_h, oy, h, &y0, &y1, &ly1);
    source_index(scale_w, ox, w, &x0, &x1, &lx1);
    const float ly0 = 1.0f - ly1, lx0 = 1.0f - lx1;
    __global const float *p = x + x_off + plane * h * w;
    y[y_off + (plane * ho + oy) * wo + ox] = ly0 * (lx0 * p[y0 * w + x0] + lx1 * p[y0 * w + x1]) +
                   ly1 * (lx0 * p[y1 * w + x0] + lx1 * p[y1 * w + x1]);
}

// First output index whose source position may touch input index `idx` (either as i0 or i1):
// that needs src >= idx - 1, i.e. dst >= (idx - 0.5) / scale - 0.5; one index of slack on each
// side absorbs float rounding, and the loops below test the exact forward condition.
inline uint window_begin(const float scale, const uint idx) {
    const float d = ((float)idx - 0.5f) / scale - 0.5f;
    return d <= 1.0f ? 0u : (uint)d - 1u;
}

// One past the last output index that may touch `idx`: needs src < idx + 1.
inline uint window_end(const float scale, const uint idx, const uint out) {
    const float d = ((float)idx + 1.5f) / scale - 0.5f + 2.0f;
    return d >= (float)out ? out : (uint)d;
}

// Weight with which output index dst reads input index idx along one axis (0 if it does not).
inline float axis_weight(const float scale, const uint dst, const uint in, const uint idx) {
    uint i0, i1;
    float l1;
    source_index(scale, dst, in, &i0, &i1, &l1);
    return (i0 == idx ? 1.0f - l1 : 0.0f) + (i1 == idx ? l1 : 0.0f);
}

// dx[n, c, iy, ix] = sum over the outputs (oy, ox) that read (iy, ix) of
// dy[n, c, oy, ox] * wy(oy) * wx(ox), summed oy ascending then ox ascending: deterministic.
__kernel void upsample_bilinear_backward(__global const float *dy, const uint dy_off,
                                         __global float *dx, const uint dx_off,
                                         const uint planes, const uint h, const uint w,
                                         const uint ho, const uint wo, const float scale_h,
                                         const float scale_w) {
    const uint ix = get_global_id(0), iy = get_global_id(1), plane = get_global_id(2);
    if (ix >= w || iy >= h || plane >= planes) return;
    __global const float *g = dy + dy_off + plane * ho * wo;
    const uint oy_begin = window_begin(scale_h, iy), oy_end = window_end(scale_h, iy, ho);
    const uint ox_begin = window_begin(scale_w, ix), ox_end = window_end(scale_w, ix, wo);
    float acc = 0.0f;
    for (uint oy = oy_begin; oy < oy_end; oy++) {
        const float wy = axis_weight(scale_h, oy, h, iy);
        if (wy == 0.0f) continue;
        float row = 0.0f;
        for (uint ox = ox_begin; ox < ox_end; ox++) {
            const float wx = axis_weight(scale_w, ox, w, ix);
            if (wx != 0.0f) row += wx * g[oy * wo + ox];
        }
        acc += wy * row;
    }
    dx[dx_off + (plane * h + iy) * w + ix] = acc;
}
