/* C view of the CLBlast C++ tuning API (src/runtime/tune_clblast.cpp): tuners and parameter retrieval. */
#ifndef OCLSEG_RUNTIME_TUNE_CLBLAST_H
#define OCLSEG_RUNTIME_TUNE_CLBLAST_H

#include <stddef.h>

#include "oclseg/tuning.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs clblast::TuneXgemm<float> (kernel "Xgemm") or clblast::TuneXgemmDirect<float>
 * ("XgemmDirect") on m x n x k with the given search fraction; the best parameters go to *out.
 * Returns CLBlast's status (0 = success); C++ exceptions are caught and returned as -9999. */
int oclseg_clblast_tune(cl_command_queue queue, const char *kernel, size_t m, size_t n, size_t k,
                        double fraction, oclseg_clblast_params *out);

/* The parameters CLBlast currently uses for `kernel` on `device` (single precision): its
 * database entry, or the last override. Returns CLBlast's status. */
int oclseg_clblast_retrieve(cl_device_id device, const char *kernel, oclseg_clblast_params *out);

#ifdef __cplusplus
}
#endif

#endif
