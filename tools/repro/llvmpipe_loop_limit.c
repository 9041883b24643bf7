// Reproducer: llvmpipe (Mesa rusticl) ends a work-item's loops after 65535 iterations in all.
//
// One work-item sums n ones in a first loop and n ones in a second loop. An OpenCL device must
// report n and n; llvmpipe (Mesa 22.3.6, LLVM 15) counts the iterations of all loops of the
// work-item together against gallivm's LP_MAX_TGSI_LOOP_ITERATIONS (65535) and then leaves each
// loop after its current iteration, so n = 40000 gives 40000 and 25534, and n = 70000 gives 65535
// and 1. Runs on every device of every platform; exit status 1 if any device miscounts.
//     cc -O2 -o /tmp/loop_limit tools/repro/llvmpipe_loop_limit.c -lOpenCL
//     RUSTICL_ENABLE=llvmpipe /tmp/loop_limit [n ...]
#include "repro.h"

static const char *kernel_source =
    "__kernel void two_loops(__global const float *ones, const uint n, __global float *out) {\n"
    "    float first = 0.0f, second = 0.0f;\n"
    "    for (uint i = 0; i < n; i++) first += ones[i];\n"
    "    for (uint i = 0; i < n; i++) second += ones[i];\n"
    "    out[0] = first;\n"
    "    out[1] = second;\n"
    "}\n";

/* Runs two_loops with n on the device; returns 1 if it miscounted. */
static int run_on(cl_platform_id platform, cl_device_id device, cl_uint n) {
    char platform_name[256], device_name[256];
    CHECK(clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof platform_name, platform_name, NULL));
    CHECK(clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof device_name, device_name, NULL));
    repro_device r = repro_open(device, kernel_source);
    cl_kernel kernel = repro_kernel(&r, "two_loops");
    float *ones = malloc(n * sizeof *ones);
    if (!ones) exit(2);
    for (cl_uint i = 0; i < n; i++) ones[i] = 1.0f;
    cl_mem ones_buf = repro_buffer(&r, n * sizeof *ones, ones);
    cl_mem out_buf = repro_buffer(&r, 2 * sizeof(float), NULL);
    CHECK(clSetKernelArg(kernel, 0, sizeof ones_buf, &ones_buf));
    CHECK(clSetKernelArg(kernel, 1, sizeof n, &n));
    CHECK(clSetKernelArg(kernel, 2, sizeof out_buf, &out_buf));
    const size_t one = 1;
    CHECK(clEnqueueNDRangeKernel(r.queue, kernel, 1, NULL, &one, &one, 0, NULL, NULL));
    float out[2];
    CHECK(clEnqueueReadBuffer(r.queue, out_buf, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    const int wrong = out[0] != (float)n || out[1] != (float)n;
    printf("%-28.28s %-36.36s n %6u: loops counted %6.0f and %6.0f%s\n", platform_name,
           device_name, n, out[0], out[1], wrong ? "  WRONG" : "");
    free(ones);
    CHECK(clReleaseMemObject(out_buf));
    CHECK(clReleaseMemObject(ones_buf));
    CHECK(clReleaseKernel(kernel));
    repro_close(&r);
    return wrong;
}

int main(int argc, char **argv) {
    cl_uint sizes[16] = {30000, 40000, 70000};
    int count = 3;
    if (argc > 1) {
        count = argc - 1 < 16 ? argc - 1 : 16;
        for (int i = 0; i < count; i++) sizes[i] = (cl_uint)strtoul(argv[i + 1], NULL, 10);
    }
    cl_platform_id platforms[8];
    cl_uint platform_count = 0;
    CHECK(clGetPlatformIDs(8, platforms, &platform_count));
    int wrong = 0;
    for (cl_uint p = 0; p < platform_count; p++) {
        cl_device_id devices[8];
        cl_uint device_count = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 8, devices, &device_count) !=
            CL_SUCCESS)
            continue; /* a platform without devices (Clover without a driver) */
        for (cl_uint d = 0; d < device_count; d++)
            for (int i = 0; i < count; i++) wrong |= run_on(platforms[p], devices[d], sizes[i]);
    }
    return wrong;
}
