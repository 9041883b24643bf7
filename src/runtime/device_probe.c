/* Probes of what a device's OpenCL implementation really runs (cl/device_probe.cl), cached per context. */
#include "oclseg/runtime.h"

#include <stdio.h>
#include <stdlib.h>

#include "oclseg/status.h"

/* Runs loop_probe with n = 40000 (two loops in one work-item, 80000 iterations in all) and sets
 * *complete to whether both loops ran to the end. Raw OpenCL calls: the probe is not an op, so it
 * stays out of the launch/allocation counts and their fault hooks. */
static int probe_loops(oclseg_ctx *ctx, int *complete) {
    enum { N = 40000 };
    const cl_uint n = N;
    float *ones = malloc(N * sizeof *ones), out[2] = {0.0f, 0.0f};
    if (!ones) return OCLSEG_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    cl_kernel k;
    cl_mem ones_buf = NULL, out_buf = NULL;
    cl_int err;
    int st = oclseg_kernel_get(ctx, "device_probe", NULL, "loop_probe", &k);
    if (st != OCLSEG_OK) goto done;
    ones_buf = clCreateBuffer(ctx->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                              N * sizeof *ones, ones, &err);
    CL_CHECK_GOTO(err, st, done);
    out_buf = clCreateBuffer(ctx->context, CL_MEM_WRITE_ONLY, sizeof out, NULL, &err);
    CL_CHECK_GOTO(err, st, done);
    CL_CHECK_GOTO(clSetKernelArg(k, 0, sizeof ones_buf, &ones_buf), st, done);
    CL_CHECK_GOTO(clSetKernelArg(k, 1, sizeof n, &n), st, done);
    CL_CHECK_GOTO(clSetKernelArg(k, 2, sizeof out_buf, &out_buf), st, done);
    const size_t one = 1;
    CL_CHECK_GOTO(clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &one, &one, 0, NULL, NULL), st,
                  done);
    CL_CHECK_GOTO(clEnqueueReadBuffer(ctx->queue, out_buf, CL_TRUE, 0, sizeof out, out, 0, NULL,
                                      NULL),
                  st, done);
    *complete = out[0] == (float)N && out[1] == (float)N;
done:
    if (ones_buf) clReleaseMemObject(ones_buf);
    if (out_buf) clReleaseMemObject(out_buf);
    free(ones);
    return st;
}

int oclseg_device_runs_long_loops(oclseg_ctx *ctx) {
    if (ctx->long_loops == 0) {
        int complete = 0;
        int st = probe_loops(ctx, &complete);
        if (st != OCLSEG_OK)
            fprintf(stderr, "oclseg: warning: the loop probe failed on %s (%s); using the kernels "
                            "that loop least\n", ctx->info.name, oclseg_status_str(st));
        else if (!complete && ctx->verbose)
            fprintf(stderr, "oclseg: %s ends a work-item's loops early (llvmpipe's 65535 "
                            "iterations); using the kernels that loop least\n", ctx->info.name);
        ctx->long_loops = st == OCLSEG_OK && complete ? 1 : -1;
    }
    return ctx->long_loops > 0;
}
