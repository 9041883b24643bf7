// Helpers around CLBlast's GEMM: summing a batch of GEMM results in a fixed order.

// dst[i] = (accumulate ? dst[i] : 0) + sum_{s < count} src[src_off + s * slice + i], s ascending:
// the same order as accumulating the GEMMs one by one, and independent of timing.
__kernel void sum_slices(__global const float *src, const uint src_off, const uint slice,
                         const uint count, __global float *dst, const uint dst_off,
                         const uint accumulate) {
    const uint i = get_global_id(0);
    if (i >= slice) return;
    float acc = accumulate ? dst[dst_off + i] : 0.0f;
    for (uint s = 0; s < count; s++) acc += src[src_off + s * slice + i];
    dst[dst_off + i] = acc;
}
