/* Device buffers with accounting and an injectable allocation fault, the shared scratch
 * workspace, and blocking host<->device copies. */
#include <stdlib.h>
#include <string.h>

#include "oclseg/runtime.h"

static long alloc_counter;

int oclseg_buffer_create(oclseg_ctx *ctx, size_t bytes, const char *what, cl_mem *out) {
    *out = NULL;
    if (bytes == 0) bytes = 4;
    const long fault_at = ctx->env.fault_alloc;
    cl_int err = CL_SUCCESS;
    if (fault_at > 0 && ++alloc_counter == fault_at) {
        err = CL_MEM_OBJECT_ALLOCATION_FAILURE; /* injected (tests) */
    } else if (bytes > ctx->info.max_alloc) {
        err = CL_INVALID_BUFFER_SIZE;
    } else {
        *out = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    }
    if (err != CL_SUCCESS) {
        OCLSEG_ERROR("cannot allocate %.1f MiB of device memory for %s on '%s' (%s; device max "
                     "single allocation %.1f MiB, in use %.1f MiB): try a smaller --batch or --size",
                     bytes / 1048576.0, what ? what : "a buffer", ctx->info.name,
                     oclseg_status_str(err), ctx->info.max_alloc / 1048576.0,
                     ctx->live_bytes / 1048576.0);
        *out = NULL;
        return err == CL_INVALID_BUFFER_SIZE ? OCLSEG_ERR_OUT_OF_MEMORY : err;
    }
    oclseg_cl_created(OCLSEG_CL_MEM);
    ctx->live_buffers++;
    ctx->live_bytes += bytes;
    if (ctx->live_bytes > ctx->peak_bytes) ctx->peak_bytes = ctx->live_bytes;
    return OCLSEG_OK;
}

void oclseg_buffer_free(oclseg_ctx *ctx, cl_mem buf) {
    if (!buf) return;
    /* The buffer knows its size (a 0-byte request was created as 4), so the accounting matches
     * what oclseg_buffer_create added without the caller recomputing it. */
    size_t bytes = 0;
    if (clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS) bytes = 0;
    if (bytes > ctx->live_bytes) bytes = ctx->live_bytes;
    clReleaseMemObject(buf);
    oclseg_cl_released(OCLSEG_CL_MEM);
    ctx->live_buffers--;
    ctx->live_bytes -= bytes;
}

int oclseg_host_buffer_create(oclseg_ctx *ctx, size_t bytes, cl_mem *buf, void **host) {
    *buf = NULL;
    *host = NULL;
    if (bytes == 0) bytes = 4;
    cl_int err = CL_SUCCESS;
    cl_mem b = clCreateBuffer(ctx->context, CL_MEM_READ_ONLY | CL_MEM_ALLOC_HOST_PTR, bytes, NULL,
                              &err);
    if (err == CL_SUCCESS) {
        void *p = clEnqueueMapBuffer(ctx->queue, b, CL_TRUE, CL_MAP_WRITE, 0, bytes, 0, NULL, NULL,
                                     &err);
        if (err == CL_SUCCESS && p) {
            oclseg_cl_created(OCLSEG_CL_MEM);
            ctx->live_buffers++;
            *buf = b;
            *host = p;
            return OCLSEG_OK;
        }
        clReleaseMemObject(b);
    }
    *host = malloc(bytes); /* the platform cannot: ordinary memory, the same bytes */
    return *host ? OCLSEG_OK : OCLSEG_ERR_OUT_OF_MEMORY;
}

void oclseg_host_buffer_free(oclseg_ctx *ctx, cl_mem buf, void *host) {
    if (!buf) {
        free(host);
        return;
    }
    if (clEnqueueUnmapMemObject(ctx->queue, buf, host, 0, NULL, NULL) == CL_SUCCESS)
        clFinish(ctx->queue);
    clReleaseMemObject(buf);
    oclseg_cl_released(OCLSEG_CL_MEM);
    ctx->live_buffers--;
}

int oclseg_buffer_grow(oclseg_ctx *ctx, cl_mem *buf, size_t *have, size_t bytes,
                       const char *what) {
    if (bytes > *have) {
        if (*buf) {
            CL_CHECK(clFinish(ctx->queue)); /* older work may still read the old buffer */
            oclseg_buffer_free(ctx, *buf);
            *buf = NULL;
            *have = 0;
        }
        TRY(oclseg_buffer_create(ctx, bytes, what, buf));
        *have = bytes;
    }
    return OCLSEG_OK;
}

int oclseg_scratch(oclseg_ctx *ctx, size_t bytes, cl_mem *out) {
    TRY(oclseg_buffer_grow(ctx, &ctx->scratch, &ctx->scratch_bytes, bytes,
                           "the shared scratch workspace"));
    *out = ctx->scratch;
    return OCLSEG_OK;
}

int oclseg_write(oclseg_ctx *ctx, cl_mem buf, size_t offset, size_t bytes, const void *src) {
    if (bytes == 0) return OCLSEG_OK;
    CL_CHECK(clEnqueueWriteBuffer(ctx->queue, buf, CL_TRUE, offset, bytes, src, 0, NULL, NULL));
    return OCLSEG_OK;
}

int oclseg_read(oclseg_ctx *ctx, cl_mem buf, size_t offset, size_t bytes, void *dst) {
    if (bytes == 0) return OCLSEG_OK;
    CL_CHECK(clEnqueueReadBuffer(ctx->queue, buf, CL_TRUE, offset, bytes, dst, 0, NULL, NULL));
    return OCLSEG_OK;
}

int oclseg_fill_f32(oclseg_ctx *ctx, cl_mem buf, size_t off, size_t count, float value) {
    if (count == 0) return OCLSEG_OK;
    CL_CHECK(clEnqueueFillBuffer(ctx->queue, buf, &value, sizeof value, off * sizeof(float),
                                 count * sizeof(float), 0, NULL, NULL));
    return OCLSEG_OK;
}

int oclseg_finish(oclseg_ctx *ctx) {
    CL_CHECK(clFinish(ctx->queue));
    return OCLSEG_OK;
}
