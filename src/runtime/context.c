/* The per-device context: cl_context + in-order queue, the probed -cl-std, and teardown. */
#include <stdlib.h>
#include <string.h>

#include "oclseg/runtime.h"
#include "runtime/program_internal.h"

/* Finds the newest "-cl-std=CLx.y" (<= 1.2, the dialect our kernels are written in) that the
 * compiler accepts by building a tiny probe program; "" if none is accepted. */
static void probe_cl_std(oclseg_ctx *ctx) {
    static const char *candidates[] = {"-cl-std=CL1.2", "-cl-std=CL1.1", ""};
    static const char *probe_src = "__kernel void probe(__global float *x) { x[0] = 1.0f; }\n";
    int major = 1, minor = 0;
    sscanf(ctx->info.opencl_c_version, "OpenCL C %d.%d", &major, &minor);
    int version = major * 10 + minor;
    for (int i = 0; i < 3; i++) {
        if (i == 0 && version < 12) continue;
        cl_int err;
        cl_program prog = clCreateProgramWithSource(ctx->context, 1, &probe_src, NULL, &err);
        if (err != CL_SUCCESS) break;
        err = clBuildProgram(prog, 1, &ctx->info.device, candidates[i], NULL, NULL);
        clReleaseProgram(prog);
        if (err == CL_SUCCESS) {
            snprintf(ctx->cl_std, sizeof ctx->cl_std, "%s", candidates[i]);
            return;
        }
    }
    ctx->cl_std[0] = '\0';
}

int oclseg_ctx_create_for(oclseg_ctx **out, const oclseg_device_info *dev, int profiling) {
    *out = NULL;
    oclseg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return OCLSEG_ERR_OUT_OF_MEMORY;
    ctx->info = *dev;
    ctx->profiling = profiling;
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform, 0};
    ctx->context = clCreateContext(props, 1, &dev->device, NULL, NULL, &err);
    int st = OCLSEG_OK;
    CL_CHECK_GOTO(err, st, fail);
    ctx->queue = clCreateCommandQueue(ctx->context, dev->device,
                                      profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    CL_CHECK_GOTO(err, st, fail);
    probe_cl_std(ctx);
    *out = ctx;
    return OCLSEG_OK;
fail:
    oclseg_ctx_free(ctx);
    return st;
}

int oclseg_ctx_create(oclseg_ctx **out, const oclseg_ctx_options *opts) {
    oclseg_device_info dev;
    TRY(oclseg_device_choose(opts ? opts->device_spec : NULL, &dev));
    TRY(oclseg_ctx_create_for(out, &dev, opts ? opts->profiling : 0));
    (*out)->verbose = opts ? opts->verbose : 0;
    return OCLSEG_OK;
}

void oclseg_ctx_free(oclseg_ctx *ctx) {
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    oclseg_programs_release(ctx);
    if (ctx->scratch) oclseg_buffer_free(ctx, ctx->scratch, ctx->scratch_bytes);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->context) clReleaseContext(ctx->context);
    free(ctx);
}
