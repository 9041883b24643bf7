/* Kernel argument builder: typed arguments in order, range-checked, first failure kept. */
#include <limits.h>
#include <stdio.h>

#include "runtime/kargs.h"

kargs karg_begin(cl_kernel kernel) {
    kargs a = {kernel, 0, OCLSEG_OK};
    return a;
}

static void fail(kargs *a, int status, const char *why) {
    char name[128] = "?";
    clGetKernelInfo(a->kernel, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
    OCLSEG_ERROR("kernel %s, argument %u: %s", name, a->next, why);
    a->status = status;
}

static void set(kargs *a, size_t size, const void *value) {
    if (a->status != OCLSEG_OK) return;
    cl_int err = clSetKernelArg(a->kernel, a->next, size, value);
    if (err != CL_SUCCESS) {
        char why[96];
        snprintf(why, sizeof why, "clSetKernelArg failed: %s", oclseg_status_str(err));
        fail(a, err, why);
        return;
    }
    a->next++;
}

void karg_mem(kargs *a, cl_mem buf) { set(a, sizeof buf, &buf); }

void karg_tensor(kargs *a, const oclseg_tensor *t) {
    karg_mem(a, t->buf);
    if (a->status == OCLSEG_OK && t->off + oclseg_tensor_numel(t) > (size_t)UINT32_MAX) {
        fail(a, OCLSEG_ERR_INVALID_ARG, "the tensor ends beyond 2^32 floats");
        return;
    }
    karg_u32(a, t->off);
}

void karg_u32(kargs *a, size_t v) {
    if (a->status == OCLSEG_OK && v > (size_t)UINT32_MAX) {
        fail(a, OCLSEG_ERR_INVALID_ARG, "value does not fit a uint");
        return;
    }
    cl_uint u = (cl_uint)v;
    set(a, sizeof u, &u);
}

void karg_i32(kargs *a, long v) {
    if (a->status == OCLSEG_OK && (v < INT_MIN || v > INT_MAX)) {
        fail(a, OCLSEG_ERR_INVALID_ARG, "value does not fit an int");
        return;
    }
    cl_int i = (cl_int)v;
    set(a, sizeof i, &i);
}

void karg_f32(kargs *a, float v) {
    cl_float f = v;
    set(a, sizeof f, &f);
}

void karg_u64(kargs *a, uint64_t v) {
    cl_ulong u = v;
    set(a, sizeof u, &u);
}

void karg_local(kargs *a, size_t bytes) { set(a, bytes, NULL); }

int karg_end(const kargs *a) { return a->status; }
