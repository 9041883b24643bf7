/* Kernel argument builder for the ops: arguments set in order, each typed, the index counting itself. */
#ifndef OCLSEG_RUNTIME_KARGS_H
#define OCLSEG_RUNTIME_KARGS_H

#include <stdint.h>

#include "oclseg/tensor.h"

/* One launch's arguments:
 *     kargs a = karg_begin(k);
 *     karg_tensor(&a, x);          // buffer + uint element offset
 *     karg_u32(&a, n);             // a kernel `uint`
 *     TRY(karg_end(&a));
 * The first failure — clSetKernelArg, or a value that does not fit the kernel's type — is logged
 * with the kernel's name and the argument index, later calls do nothing, and karg_end returns it. */
typedef struct kargs {
    cl_kernel kernel;
    cl_uint next;   /* index of the next argument */
    int status;
} kargs;

kargs karg_begin(cl_kernel kernel);
void karg_mem(kargs *a, cl_mem buf);
/* The tensor's buffer and its element offset as a uint (the view must end below 2^32 floats). */
void karg_tensor(kargs *a, const oclseg_tensor *t);
/* A uint: v must be below 2^32. */
void karg_u32(kargs *a, size_t v);
/* An int: v must fit in 32 bits. */
void karg_i32(kargs *a, long v);
void karg_f32(kargs *a, float v);
void karg_u64(kargs *a, uint64_t v);
/* A __local buffer of `bytes`. */
void karg_local(kargs *a, size_t bytes);
int karg_end(const kargs *a);

#endif
