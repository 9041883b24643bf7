// Dropout with a counter-based Philox4x32-10 mask (forward and backward share one kernel).
// The mask is regenerated from (seed, step, element index), never stored, and uses only 32-bit
// integer arithmetic (mul_hi), so it is bit-identical on every device and to the host version
// op_dropout_mask_host in src/ops/dropout.c.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// Philox4x32-10 (Salmon et al. 2011): 10 rounds, the key bumped between rounds.
static uint4 philox4x32_10(uint4 ctr, uint2 key) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            key.x += PHILOX_W0;
            key.y += PHILOX_W1;
        }
        const uint hi0 = mul_hi(PHILOX_M0, ctr.x), lo0 = PHILOX_M0 * ctr.x;
        const uint hi1 = mul_hi(PHILOX_M1, ctr.z), lo1 = PHILOX_M1 * ctr.z;
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

// u in [0, 1) from the top 24 bits of a word: exact in float, identical everywhere.
static float philox_uniform(uint word) { return (float)(word >> 8) * 0x1.0p-24f; }

// y = x * noise, noise = (u >= p) ? scale : 0, as PyTorch multiplies by the scaled mask (so a
// NaN in a dropped element stays NaN). Used for the forward (x -> y) and the backward
// (dy -> dx) alike. Each work-item handles the 4 consecutive elements of one Philox call:
// counter = (group index as 64 bits, step as 64 bits), key = (seed low, seed high). group_off
// shifts the group index: a slice starting at element 4 * group_off gets the mask those elements
// have in the whole tensor (a data-parallel rank's images of the global batch).
// y may alias x (each element is read, then written, by the same work-item).
__kernel void dropout_apply(__global const float *x, const uint x_off, __global float *y,
                            const uint y_off, const uint n, const float p, const float scale,
                            const uint seed_lo, const uint seed_hi, const uint step_lo,
                            const uint step_hi, const uint group_off) {
    const uint group = get_global_id(0);
    if (group >= n / 4u + (n % 4u != 0u)) return; // written so that nothing overflows
    const uint first = group * 4u;
    const uint4 bits = philox4x32_10((uint4)(group + group_off, 0u, step_lo, step_hi), (uint2)(seed_lo, seed_hi));
    const uint words[4] = {bits.x, bits.y, bits.z, bits.w};
    for (uint j = 0; j < 4u && first + j < n; j++) {
        const float noise = philox_uniform(words[j]) >= p ? scale : 0.0f;
        y[y_off + first + j] = x[x_off + first + j] * noise;
    }
}
