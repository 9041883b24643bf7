/* The per-device context: cl_context + in-order queue, the probed -cl-std, and teardown. */
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "oclseg/env.h"
#include "oclseg/runtime.h"
#include "oclseg/tuning.h"
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
        oclseg_cl_created(OCLSEG_CL_PROGRAM);
        err = clBuildProgram(prog, 1, &ctx->info.device, candidates[i], NULL, NULL);
        clReleaseProgram(prog);
        oclseg_cl_released(OCLSEG_CL_PROGRAM);
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
    ctx->env = *oclseg_env_get();
    ctx->profiling = profiling;
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform, 0};
    ctx->context = clCreateContext(props, 1, &dev->device, NULL, NULL, &err);
    int st = OCLSEG_OK;
    CL_CHECK_GOTO(err, st, fail);
    oclseg_cl_created(OCLSEG_CL_CONTEXT);
    ctx->queue = clCreateCommandQueue(ctx->context, dev->device,
                                      profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    CL_CHECK_GOTO(err, st, fail);
    oclseg_cl_created(OCLSEG_CL_QUEUE);
    probe_cl_std(ctx);
    oclseg_tuning_apply(ctx); /* the device's GEMM tuning file, if any (never fails) */
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
    oclseg_prof_reset(ctx);
    free(ctx->prof);
    free(ctx->gemm_choices);
    free(ctx->gemm_rec);
    oclseg_programs_release(ctx);
    if (ctx->scratch) oclseg_buffer_free(ctx, ctx->scratch);
    if (ctx->gemm_pack) oclseg_buffer_free(ctx, ctx->gemm_pack);
    if (ctx->queue) {
        clReleaseCommandQueue(ctx->queue);
        oclseg_cl_released(OCLSEG_CL_QUEUE);
    }
    if (ctx->context) {
        clReleaseContext(ctx->context);
        oclseg_cl_released(OCLSEG_CL_CONTEXT);
        /* CLBlast caches programs (holding our context) per device: empty it with the last
         * context, so the driver really frees everything. */
        if (oclseg_cl_live(OCLSEG_CL_CONTEXT) == 0) CLBlastClearCache();
    }
    free(ctx);
}

cl_event *oclseg_prof_slot(oclseg_ctx *ctx, const char *name) {
    if (!ctx->profiling) return NULL;
    if (ctx->prof_count == ctx->prof_cap) {
        size_t cap = ctx->prof_cap ? 2 * ctx->prof_cap : 1024;
        oclseg_prof_record *p = realloc(ctx->prof, cap * sizeof *p);
        if (!p) return NULL; /* profiling is best effort */
        ctx->prof = p;
        ctx->prof_cap = cap;
    }
    oclseg_prof_record *r = &ctx->prof[ctx->prof_count++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->event = NULL;
    return &r->event;
}

void oclseg_prof_reset(oclseg_ctx *ctx) {
    for (size_t i = 0; i < ctx->prof_count; i++)
        if (ctx->prof[i].event) clReleaseEvent(ctx->prof[i].event);
    ctx->prof_count = 0;
}

int oclseg_prof_collect(oclseg_ctx *ctx, char (**names)[48], double **ms, int *count) {
    *names = NULL;
    *ms = NULL;
    *count = 0;
    CL_CHECK(clFinish(ctx->queue));
    char (*nm)[48] = calloc(ctx->prof_count + 1, sizeof *nm);
    double *t = calloc(ctx->prof_count + 1, sizeof *t);
    if (!nm || !t) {
        free(nm);
        free(t);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    int n = 0;
    for (size_t i = 0; i < ctx->prof_count; i++) {
        cl_ulong start = 0, end = 0;
        if (!ctx->prof[i].event ||
            clGetEventProfilingInfo(ctx->prof[i].event, CL_PROFILING_COMMAND_START, sizeof start,
                                    &start, NULL) != CL_SUCCESS ||
            clGetEventProfilingInfo(ctx->prof[i].event, CL_PROFILING_COMMAND_END, sizeof end, &end,
                                    NULL) != CL_SUCCESS)
            continue;
        int j = 0;
        while (j < n && strcmp(nm[j], ctx->prof[i].name) != 0) j++;
        if (j == n) snprintf(nm[n++], 48, "%s", ctx->prof[i].name);
        t[j] += (end - start) / 1e6;
    }
    for (int a = 1; a < n; a++) /* insertion sort by time, descending */
        for (int b = a; b > 0 && t[b] > t[b - 1]; b--) {
            double tt = t[b];
            t[b] = t[b - 1];
            t[b - 1] = tt;
            char tmp[48];
            memcpy(tmp, nm[b], 48);
            memcpy(nm[b], nm[b - 1], 48);
            memcpy(nm[b - 1], tmp, 48);
        }
    oclseg_prof_reset(ctx);
    *names = nm;
    *ms = t;
    *count = n;
    return OCLSEG_OK;
}

int oclseg_use_row_kernels(oclseg_ctx *ctx) {
    if (ctx->row_kernels != OCLSEG_ROWS_AUTO) return ctx->row_kernels == OCLSEG_ROWS_ON;
    const int forced = ctx->env.row_kernels;
    if (forced != OCLSEG_ROWS_AUTO) return forced == OCLSEG_ROWS_ON;
    return (ctx->info.type & CL_DEVICE_TYPE_CPU) != 0 && oclseg_device_runs_long_loops(ctx);
}
