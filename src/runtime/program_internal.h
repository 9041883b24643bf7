/* Internals shared by the runtime's program/kernel cache and context teardown. */
#ifndef OCLSEG_PROGRAM_INTERNAL_H
#define OCLSEG_PROGRAM_INTERNAL_H

#include "oclseg/runtime.h"

struct oclseg_program_entry {
    char *key; /* program name + "|" + defines */
    cl_program program;
    struct oclseg_program_entry *next;
};

struct oclseg_kernel_entry {
    char *key; /* program key + "|" + kernel name */
    cl_kernel kernel;
    size_t wg_limit; /* CL_KERNEL_WORK_GROUP_SIZE */
    struct oclseg_kernel_entry *next;
};

void oclseg_programs_release(oclseg_ctx *ctx);

/* Per-device kernel -D table (work-group sizes, vector widths; not GEMM tuning): device-name
 * match, else vendor match, else the default. */
const char *oclseg_device_defines(const oclseg_device_info *dev, const char *program_name);

#endif
