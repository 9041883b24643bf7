// Probes of what a device's OpenCL implementation really does (src/runtime/device_probe.c).

// One work-item adds `n` ones read from memory in a loop and then `n` more in a second loop:
// out[0] = n and out[1] = n on an implementation that runs loops to the end. Mesa's llvmpipe
// (rusticl) ends every loop of a work-item once 65535 iterations in all have run
// (tools/repro/llvmpipe_loop_limit.c), so with n = 40000 it gives 40000 and 25534.
__kernel void loop_probe(__global const float *ones, const uint n, __global float *out) {
    float first = 0.0f, second = 0.0f;
    for (uint i = 0; i < n; i++) first += ones[i];
    for (uint i = 0; i < n; i++) second += ones[n - 1 - i];
    out[0] = first;
    out[1] = second;
}
