// The reproducers' plumbing: OpenCL error checks, one device's context, queue and program.
#ifndef OCLSEG_TOOLS_REPRO_H
#define OCLSEG_TOOLS_REPRO_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

/* Exits 2 with the call, file and line when an OpenCL call fails. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        const cl_int err_ = (call);                                                                \
        if (err_ != CL_SUCCESS) {                                                                  \
            fprintf(stderr, "%s:%d: %s failed: OpenCL error %d\n", __FILE__, __LINE__, #call,      \
                    (int)err_);                                                                    \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* A context, an in-order queue and a built program from source on one device. */
typedef struct repro_device {
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
} repro_device;

static inline repro_device repro_open(cl_device_id device, const char *source) {
    repro_device r = {device, NULL, NULL, NULL};
    cl_int err;
    r.context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    r.queue = clCreateCommandQueue(r.context, device, 0, &err);
    CHECK(err);
    r.program = clCreateProgramWithSource(r.context, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(r.program, 1, &device, "", NULL, NULL));
    return r;
}

static inline cl_kernel repro_kernel(const repro_device *r, const char *name) {
    cl_int err;
    cl_kernel k = clCreateKernel(r->program, name, &err);
    CHECK(err);
    return k;
}

static inline cl_mem repro_buffer(const repro_device *r, size_t bytes, const void *init) {
    cl_int err;
    cl_mem b = clCreateBuffer(r->context, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes, (void *)init, &err);
    CHECK(err);
    return b;
}

static inline void repro_close(repro_device *r) {
    CHECK(clReleaseProgram(r->program));
    CHECK(clReleaseCommandQueue(r->queue));
    CHECK(clReleaseContext(r->context));
}

#endif
