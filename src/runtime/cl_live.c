/* Counts of live OpenCL objects created by oclseg (contexts, queues, programs, kernels, buffers,
 * events), so tests and `main` can assert that everything was released. */
#include <stdatomic.h>
#include <stdio.h>

#include "oclseg/runtime.h"

static atomic_long live[OCLSEG_CL_KINDS];
static const char *kind_names[OCLSEG_CL_KINDS] = {"context", "command queue", "program",
                                                  "kernel",  "buffer",        "event"};

void oclseg_cl_created(oclseg_cl_kind kind) { atomic_fetch_add(&live[kind], 1); }
void oclseg_cl_released(oclseg_cl_kind kind) { atomic_fetch_sub(&live[kind], 1); }
long oclseg_cl_live(oclseg_cl_kind kind) { return atomic_load(&live[kind]); }

static long live_total(void) {
    long total = 0;
    for (int k = 0; k < OCLSEG_CL_KINDS; k++) total += atomic_load(&live[k]);
    return total;
}

int oclseg_cl_check_released(void) {
    if (live_total() == 0) return OCLSEG_OK;
    char list[256] = "";
    size_t used = 0;
    for (int k = 0; k < OCLSEG_CL_KINDS; k++) {
        long n = atomic_load(&live[k]);
        if (n != 0 && used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%ld %s(s)",
                                     used ? ", " : "", n, kind_names[k]);
    }
    OCLSEG_ERROR("OpenCL objects still alive at exit: %s (a release is missing)", list);
    return OCLSEG_ERR_INTERNAL;
}
