// Channel concatenation (torch.cat(dim=1)) and its backward split: one kernel copying a block of
// `c` channels of every image from one NCHW tensor into another at a channel offset. Forward:
// y[:, 0:Ca] = a, y[:, Ca:Ca+Cb] = b (two launches); backward: da = dy[:, 0:Ca],
// db = dy[:, Ca:] (two launches). Work-items (H*W, c, N), bounds-checked; pure copies, so the
// results are exact.
__kernel void copy_channels(__global const float *src, const uint src_off, const uint src_c,
                            const uint src_c0, __global float *dst, const uint dst_off,
                            const uint dst_c, const uint dst_c0, const uint c, const uint hw,
                            const uint n) {
    const uint i = get_global_id(0), ch = get_global_id(1), img = get_global_id(2);
    if (i >= hw || ch >= c || img >= n) return;
    dst[dst_off + (img * dst_c + dst_c0 + ch) * hw + i] =
        src[src_off + (img * src_c + src_c0 + ch) * hw + i];
}
