// Reproducer: Oclgrind 21.10 gives a new buffer the uninitialised-value state of a released one.
//
// Oclgrind tracks which bytes of a global buffer are initialised in a shadow keyed by the
// buffer's slot (index), sized when the slot is first used. Releasing a buffer does not drop that
// shadow, and a new buffer that gets the same slot inherits it, with the old size: kernel stores
// past the old size are not recorded and loads there read as uninitialised; host writes replace
// the shadow by one the size of the write (so a fill, or a write at an offset, leaves a short one).
// Each mode writes every element of a 16-float buffer `big` with a kernel from initialised data
// and then reads all of it, which must give no report:
//   grow: a 4-float buffer was written by a kernel and released before `big` was created:
//         12 false "Uninitialized value written" reports (elements 4..15);
//   fill: `big` was first filled with clEnqueueFillBuffer: 15 false reports (elements 1..15);
//   hide: like grow with a 16-float buffer, and `big` is never written: no report, although
//         every value read is uninitialised (16 reports without the released buffer: `fresh`).
//     cc -O2 -o /tmp/stale_shadow tools/repro/oclgrind_stale_shadow.c -lOpenCL
//     oclgrind --uninitialized /tmp/stale_shadow grow|fill|hide|fresh
#include <string.h>

#include "repro.h"

enum { BIG = 16, INPUT = 64 };

static const char *kernel_source =
    "__kernel void copy(__global const float *src, __global float *dst) {\n"
    "    dst[get_global_id(0)] = src[get_global_id(0)];\n"
    "}\n"
    "__kernel void threshold(__global const float *x, __global float *out) {\n"
    "    out[get_global_id(0)] = x[get_global_id(0)] > 0.0f ? 1.0f : 0.0f;\n"
    "}\n";

/* kernel(a, b) over n work-items, finished. */
static void run(const repro_device *r, cl_kernel kernel, cl_mem a, cl_mem b, size_t n) {
    CHECK(clSetKernelArg(kernel, 0, sizeof a, &a));
    CHECK(clSetKernelArg(kernel, 1, sizeof b, &b));
    CHECK(clEnqueueNDRangeKernel(r->queue, kernel, 1, NULL, &n, NULL, 0, NULL, NULL));
    CHECK(clFinish(r->queue));
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "grow";
    if (strcmp(mode, "grow") && strcmp(mode, "fill") && strcmp(mode, "hide") &&
        strcmp(mode, "fresh")) {
        fprintf(stderr, "usage: %s grow|fill|hide|fresh\n", argv[0]);
        return 2;
    }
    cl_platform_id platform;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    cl_device_id device;
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    repro_device r = repro_open(device, kernel_source);
    cl_kernel copy = repro_kernel(&r, "copy"), threshold = repro_kernel(&r, "threshold");

    float input[INPUT];
    for (int i = 0; i < INPUT; i++) input[i] = (float)i - 3.0f;
    cl_mem in = repro_buffer(&r, sizeof input, input);
    cl_mem out = repro_buffer(&r, BIG * sizeof(float), NULL);
    if (!strcmp(mode, "grow") || !strcmp(mode, "hide")) {
        const size_t floats = !strcmp(mode, "grow") ? 4 : BIG;
        /* written by a kernel, then released */
        cl_mem earlier = repro_buffer(&r, floats * sizeof(float), NULL);
        run(&r, copy, in, earlier, floats);
        CHECK(clReleaseMemObject(earlier));
    }
    cl_mem big = repro_buffer(&r, BIG * sizeof(float), NULL);
    if (!strcmp(mode, "fill")) {
        const float zero = 0.0f;
        CHECK(clEnqueueFillBuffer(r.queue, big, &zero, sizeof zero, 0, BIG * sizeof(float), 0,
                                  NULL, NULL));
    }
    if (strcmp(mode, "hide") && strcmp(mode, "fresh")) run(&r, copy, in, big, BIG);
    run(&r, threshold, big, out, BIG);
    printf("%s: done (reports expected: %s)\n", mode,
           strcmp(mode, "hide") && strcmp(mode, "fresh") ? "none" : "16, big is never written");
    CHECK(clReleaseMemObject(big));
    CHECK(clReleaseMemObject(out));
    CHECK(clReleaseMemObject(in));
    CHECK(clReleaseKernel(threshold));
    CHECK(clReleaseKernel(copy));
    repro_close(&r);
    return 0;
}
